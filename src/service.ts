import { FINISH_WRITES, JOB_CONTEXT } from './analysis/jobs.js';
import { serve } from '@hono/node-server';
import { AuditSink } from './analysis/audit.js';
import { createPipeline } from './analysis/pipeline.js';
import { llmClientFor, llmHostOf, type LlmClient } from './analysis/llm.js';
import { createApp } from './app.js';
import type { Config } from './config.js';
import { openDb, openPostgres, type Db } from './db/client.js';
import { migrate } from './db/migrate.js';
import type { ReadinessCheck } from './health/readiness.js';
import { errorText, type Logger } from './logger.js';
import { Metrics } from './metrics.js';
import { heartbeat, HEARTBEAT_MS, removeInstance } from './privacy/instances.js';
import { checkKeys } from './privacy/keys.js';
import { protectionFor, type ContentProtection } from './privacy/protection.js';
import { ImapSessions } from './mail/imap.js';
import { localBaseUrl, oxDriverLine, resolvePushCredentials } from './push/credentials.js';
import { resolveAdminKey } from './http/admin-key.js';
import { DASHBOARD } from './dashboard/views/layout.js';
import { announceService } from './running-service.js';
import { Reconciler } from './queue/reconcile.js';
import { QueueWaker } from './queue/wake.js';
import { releaseOrphans } from './queue/lifecycle.js';
import { instancePrefix, newWorkerId, WorkerPool, workerGone } from './queue/worker.js';
import { pruneCampaigns } from './analysis/campaigns.js';

/** How long in-flight requests and jobs get to finish on SIGTERM before we close anyway. */
const SHUTDOWN_GRACE_MS = 10_000;
/** Connections for the push endpoint: each answers in about a millisecond, so a few serve thousands per second. */
const PUSH_POOL_SIZE = 6;

/**
 * Says where the push credentials are. A generated password never goes into the log stream (logs
 * are shipped and kept): the log names its file, and the ready-to-paste driver line is printed
 * once to the terminal when there is one. `mailsight dovecot-config` prints it again at any time.
 */
function logPushCredentials(config: Config, logger: Logger) {
  const pushCredentials = resolvePushCredentials(config);
  if (!pushCredentials) {
    logger.warn('PUSH_AUTH=none: the push endpoint accepts requests without credentials');
  } else if (pushCredentials.generated) {
    logger.info(
      { file: pushCredentials.file },
      "generated a push password (kept in this file); print Dovecot's driver line with: mailsight dovecot-config --url <where Dovecot reaches mailsight>",
    );
    if (process.stderr.isTTY) {
      process.stderr.write(`\nPut this line in Dovecot's plugin { } block (shown once; the password is in ${pushCredentials.file}):\n\n  ${oxDriverLine(localBaseUrl(config), pushCredentials)}\n\n`);
    }
  } else if (pushCredentials.file) {
    logger.info({ file: pushCredentials.file }, 'push password read from file (print it with: cat <file>)');
  }
  return pushCredentials;
}

/**
 * The admin key: API_KEY, or the one a first start generated in DATA_DIR. Like the push password, a
 * generated key never goes into the log stream: it is printed once on the terminal, with where to
 * use it; the log names its file.
 */
function logAdminKey(config: Config, logger: Logger, baseUrl: string) {
  const admin = resolveAdminKey(config);
  const signIn = `${baseUrl}${DASHBOARD}`;
  if (admin.generated) {
    logger.info({ file: admin.file, dashboard: signIn }, 'API_KEY is unset: generated an admin key (kept in this file); sign in to the dashboard with it');
    if (process.stderr.isTTY) {
      process.stderr.write(`\nThe admin key (shown once; it is kept in ${admin.file}):\n\n  ${admin.key}\n\nSign in at ${signIn} with it, or send it to the API as the X-API-Key header.\n\n`);
    }
  } else if (admin.file) {
    logger.info({ file: admin.file, dashboard: signIn }, 'admin key read from file (print it with: cat <file>)');
  }
  return admin.key;
}

/** A pull's progress is logged at most this often (a 2 GB model on a slow link takes hours). */
const PULL_LOG_EVERY_MS = 30_000;

/**
 * OLLAMA_AUTO_PULL=true: the model is pulled when the server lacks it, in the background: the
 * service and its workers start at once (jobs wait for the model without spending attempts, as for
 * any LLM outage), and the pull has no overall time limit, only one on a stall. Otherwise
 * mailsight never asks Ollama to fetch anything. A failed pull is logged; /ready keeps reporting it.
 */
function pullModelInBackground(llm: LlmClient, config: Config, logger: Logger): Promise<void> {
  return (async () => {
    try {
      await llm.check();
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'LLM_MODEL_NOT_FOUND') return;
    }
    logger.info({ model: config.llm.model, host: llmHostOf(config) }, 'OLLAMA_AUTO_PULL: pulling the model');
    let logged = 0;
    await llm.pull((host, p) => {
      const now = Date.now();
      if (now - logged < PULL_LOG_EVERY_MS && p.status !== 'success') return;
      logged = now;
      const percent = p.total ? Math.floor((100 * (p.completed ?? 0)) / p.total) : undefined;
      logger.info({ model: config.llm.model, host, status: p.status, percent }, 'model pull progress');
    });
    logger.info({ model: config.llm.model }, 'model pulled');
  })().catch((err) => logger.error({ model: config.llm.model, err: errorText(err) }, 'model pull failed'));
}

/** Choices that weaken the IMAP connection are the operator's to make, but never silently. */
function warnAboutImapTls(config: Config, logger: Logger) {
  const { tlsVerify, starttls, secure } = config.imap;
  if (!tlsVerify) logger.warn('IMAP_TLS_VERIFY=false: the IMAP server\'s certificate is not checked (this connection only); prefer IMAP_TLS_CA_FILE');
  if (!secure && starttls === 'never') logger.warn('IMAP_STARTTLS=never: the master password goes to the IMAP server without TLS; only for a trusted local connection');
}

/** The analysis side: IMAP sessions, the model, the pipeline, workers and the sweep. */
function startProcessing(config: Config, db: Db, logger: Logger, waker: QueueWaker, metrics: Metrics, protection: ContentProtection) {
  const imap = new ImapSessions(config.imap, logger.child({ component: 'imap' }));
  warnAboutImapTls(config, logger);
  const llm = llmClientFor(config);
  const readiness: ReadinessCheck[] = [
    {
      name: 'imap',
      run: async () => {
        const { probe, login } = await imap.readiness();
        return {
          host: `${config.imap.host}:${config.imap.port}`,
          tls: probe.tls,
          ...(probe.certificateNames ? { certificate: probe.certificateNames, verify: probe.verified } : {}),
          masterUser: config.imap.masterUser,
          lastLogin: { outcome: login.outcome, at: login.at?.toISOString() },
          sessions: imap.openSessions,
        };
      },
    },
    { name: 'ollama', run: async () => ({ host: llmHostOf(config), ...(await llm.check()) }) },
  ];
  const p = config.processing;
  const workerId = newWorkerId();
  const audit = new AuditSink(config.auditFile, logger);
  const enabled = p.workers && imap.configured;
  if (p.workers && !imap.configured) {
    logger.warn('IMAP_MASTER_USER/IMAP_MASTER_PASSWORD not set: pushes are queued but not analysed until they are');
  }
  const pool = enabled
    ? new WorkerPool({
        db,
        logger: logger.child({ component: 'worker' }),
        handler: createPipeline({ db, source: imap, llm, config, logger, metrics, protection, audit }),
        onOutcome: (outcome) => metrics.jobs.inc({ outcome }),
        claimWith: JOB_CONTEXT,
        finishWrites: FINISH_WRITES,
        onRecorded: (entries) => audit.appendToFile(entries),
        concurrency: p.concurrentJobs,
        batchSize: p.batchSize,
        leaseMs: p.leaseSec * 1000,
        maxAttempts: p.maxAttempts,
        retryBaseMs: p.retryBaseMs,
        retryMaxMs: p.retryMaxMs,
        idlePollMs: p.intervalSec * 1000,
        workerId,
      })
    : undefined;
  const reconciler = enabled
    ? new Reconciler(
        {
          db,
          source: imap,
          logger: logger.child({ component: 'reconcile' }),
          batchSize: p.batchSize,
          owner: workerId,
          // Held across sweeps by renewing; a crashed leader's lease lapses after two periods.
          leaderLeaseMs: p.intervalSec * 2000,
          onQueued: () => waker.signal(),
          retentionDays: p.retentionDays,
          summaryDays: config.privacy.summaryDays,
          upkeep: () => pruneCampaigns(db, config.campaigns.windowHours),
        },
        p.intervalSec * 1000,
      )
    : undefined;
  let pulling: Promise<void> | undefined;
  return {
    imap,
    llm,
    pool,
    reconciler,
    readiness,
    workerId,
    get pulling() {
      return pulling;
    },
    async start() {
      // Not awaited here: workers start meanwhile. Kept, so a test or shutdown can wait for it.
      if (config.llm.autoPull) pulling = pullModelInBackground(llm, config, logger);
      if (!pool || !reconciler) return;
      // A predecessor on this host killed mid-job (kill -9, OOM, a container restart) left its
      // claims behind: take them back now instead of after their leases.
      const orphans = await releaseOrphans(db, instancePrefix(), (holder) => workerGone(holder, workerId));
      if (orphans > 0) logger.warn({ jobs: orphans }, 'took back the jobs of a previous process on this host that ended without releasing them');
      await waker.subscribe(() => pool.wake());
      pool.start();
      reconciler.start();
      logger.info({ workerId, concurrency: p.concurrentJobs, batchSize: p.batchSize, model: config.llm.model }, 'workers started');
    },
    async stop(graceMs: number) {
      await reconciler?.stop();
      await pool?.stop(graceMs);
      await imap.close();
    },
  };
}

/** Database, HTTP listener, workers and sweep, wired together; returns a stop() that drains them. */
export async function startService(config: Config, logger: Logger) {
  const db = await openDb(config);
  await migrate(db, config.databaseUrl);
  logger.info({ driver: db.kind, dataDir: db.kind === 'pglite' ? config.dataDir : undefined }, 'database ready');
  const protection = protectionFor(config);
  try {
    await checkKeys(db, protection.sealer, logger);
  } catch (err) {
    await db.close();
    throw err;
  }

  const pushCredentials = logPushCredentials(config, logger);
  const adminKey = logAdminKey(config, logger, localBaseUrl(config));
  // Pushes get their own connections: Dovecot holds each delivery until we answer, so a push must
  // never wait for a pool busy with worker queries. Embedded PGlite is one connection anyway.
  const pushDb = config.databaseUrl
    ? openPostgres(config.databaseUrl, {
        max: PUSH_POOL_SIZE,
        synchronousCommit: config.push.synchronousCommit,
        applicationName: 'mailsight-push',
      })
    : db;
  const waker = new QueueWaker(db, logger);
  const metrics = new Metrics({ db });
  const processing = startProcessing(config, db, logger, waker, metrics, protection);

  const app = createApp({
    config,
    db,
    pushDb,
    logger,
    pushCredentials,
    adminKey,
    readiness: processing.readiness,
    onQueued: () => waker.signal(),
    imap: processing.imap,
    metrics,
    protection,
  });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host });
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  logger.info({ address }, 'listening');
  const port = typeof address === 'object' && address ? address.port : config.port;
  let unannounce = () => {};
  try {
    unannounce = announceService(config, localBaseUrl({ ...config, port }));
  } catch (err) {
    // Only the CLI beside an embedded database needs it; the service itself does not.
    logger.warn({ dataDir: config.dataDir, err: errorText(err) }, 'could not write service.json in DATA_DIR: the CLI will not find this service');
  }
  await processing.start();

  // Which key this instance seals with, for rotate-key (privacy/instances.ts).
  const keyId = protection.sealer?.currentId ?? null;
  const beat = () => heartbeat(db, processing.workerId, keyId, logger).catch((err) => logger.warn({ err: errorText(err) }, 'instance heartbeat failed'));
  await beat();
  let beating: Promise<void> | undefined;
  const heartbeatTimer = setInterval(() => (beating = beat()), HEARTBEAT_MS);
  heartbeatTimer.unref();

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      logger.info('shutting down');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Dovecot keeps connections alive: idle ones would hold close() open forever.
      (server as import('node:http').Server).closeIdleConnections?.();
      await processing.stop(SHUTDOWN_GRACE_MS);
      clearInterval(heartbeatTimer);
      await beating;
      await removeInstance(db, processing.workerId).catch(() => {});
      await Promise.race([closed, new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS).unref())]);
      await waker.close();
      unannounce();
      if (pushDb !== db) await pushDb.close();
      await db.close();
      logger.info('stopped');
    })());
  return {
    server,
    db,
    app,
    stop,
    address,
    pool: processing.pool,
    imap: processing.imap,
    waker,
    /** The background model pull (OLLAMA_AUTO_PULL), while one runs. */
    get pulling() {
      return processing.pulling;
    },
  };
}
