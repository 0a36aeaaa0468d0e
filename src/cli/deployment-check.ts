import { OLLAMA_MIN_VERSION } from '../analysis/llm-backends.js';
import { llmClientFor, llmHostOf } from '../analysis/llm.js';
import type { Config } from '../config.js';
import { DatabaseInUseError, openDb, ping } from '../db/client.js';
import type { Logger } from '../logger.js';
import { errorText } from '../logger.js';
import { ImapError, ImapSessions } from '../mail/imap.js';
import { pushCoverage, type PushCoverage } from '../queue/coverage.js';
import { currentPushCredentials, localBaseUrl, PUSH_PATH } from '../push/credentials.js';
import { findRunningService } from '../running-service.js';

/** `mailsight check`: each part of a deployment tried once, with the fix for what fails. */

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

export interface CheckOptions {
  /** A mailbox to try the IMAP master login with. */
  mailbox?: string;
  /** Where the running service listens (default: this configuration's own address). */
  url?: string;
}

async function attempt(name: string, run: () => Promise<string>, fix: (err: unknown) => string): Promise<CheckResult> {
  try {
    return { name, ok: true, detail: await run() };
  } catch (err) {
    return { name, ok: false, detail: errorText(err), fix: fix(err) };
  }
}

/** Pushed mailboxes against those with mail in the last day: a mailbox that never pushes shows up here. */
export function coverageResult(c: PushCoverage): CheckResult {
  const name = 'push coverage';
  if (c.withMail === 0) return { name, ok: true, detail: 'no mail queued in the last 24 h' };
  const detail = `${c.pushed} of ${c.withMail} mailboxes with mail in the last 24 h were pushed for`;
  if (c.silent === 0) return { name, ok: true, detail };
  const names = `${c.silentNames.join(', ')}${c.silent > c.silentNames.length ? `, and ${c.silent - c.silentNames.length} more` : ''}`;
  return {
    name,
    ok: false,
    detail: `${detail}; ${c.silent} had mail that only the sweep found, none pushed: ${names}`,
    fix: "Dovecot does not push for these users. With the OX driver they lack the METADATA opt-in: opt every user in (dovecot/README.md, 'Every user'), or use the Lua driver, which needs none",
  };
}

/**
 * The embedded database admits one process: while the service holds it, its /ready says how the
 * database is (push coverage needs the database itself, so it is left out then).
 */
async function askRunningService(config: Config, inUse: DatabaseInUseError): Promise<string> {
  const service = findRunningService(config);
  if (!service) throw inUse;
  const ready = (await fetch(`${service.url}/ready`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.json())) as {
    components?: Record<string, { ok: boolean; error?: string }>;
  };
  const database = ready.components?.database;
  if (!database?.ok) throw new Error(`the running service (process ${service.pid}) reports its embedded database down: ${database?.error ?? 'no answer'}`);
  return `embedded database in ${config.dataDir}, held by the running service (process ${service.pid} at ${service.url}), which reports it ok`;
}

export async function checkDeployment(config: Config, logger: Logger, o: CheckOptions): Promise<CheckResult[]> {
  let coverage: PushCoverage | undefined;
  const results: CheckResult[] = [{ name: 'configuration', ok: true, detail: config.configFile ? `valid (${config.configFile} and the environment)` : 'valid (environment)' }];

  results.push(
    await attempt(
      'database',
      async () => {
        let db;
        try {
          db = await openDb(config);
        } catch (err) {
          if (err instanceof DatabaseInUseError) return askRunningService(config, err);
          throw err;
        }
        try {
          await ping(db);
          coverage = await pushCoverage(db);
          return db.kind === 'postgres' ? 'PostgreSQL answers' : `embedded database in ${config.dataDir}`;
        } finally {
          await db.close();
        }
      },
      () => (config.databaseUrl ? 'check DATABASE_URL (host, port, user, password, database) and that PostgreSQL runs' : 'check that DATA_DIR is writable'),
    ),
  );
  if (coverage) results.push(coverageResult(coverage));

  const imap = new ImapSessions(config.imap, logger);
  const where = `${config.imap.host}:${config.imap.port}`;
  results.push(
    await attempt(
      'IMAP',
      async () => {
        if (!imap.configured) throw new ImapError('IMAP_NOT_CONFIGURED', 'IMAP_MASTER_USER and IMAP_MASTER_PASSWORD are not set', false);
        // Connection, TLS and CAPABILITY first, without a login: a TLS problem is named as such.
        const probe = await imap.probe();
        const tls =
          probe.tls === 'none'
            ? 'without TLS'
            : `over ${probe.tls === 'implicit' ? 'TLS' : 'STARTTLS'}, certificate for ${probe.certificateNames?.join(', ') || '(no names)'} ${probe.verified ? 'verified' : 'NOT verified (IMAP_TLS_VERIFY=false)'}`;
        if (!o.mailbox) return `${where} answers ${tls} (name a mailbox with --mailbox to try the master login)`;
        await imap.tryLogin(o.mailbox);
        return `master login as ${imap.loginFor(o.mailbox)} on ${where} works, ${tls}`;
      },
      (err) => {
        const e = err as ImapError;
        if (e.fix) return e.fix;
        if (e.code === 'IMAP_NOT_CONFIGURED') return 'set IMAP_MASTER_USER and IMAP_MASTER_PASSWORD (see dovecot/2.3/91-mailsight-master.conf)';
        if (e.code === 'IMAP_AUTH_FAILED')
          return `Dovecot refused ${o.mailbox ? imap.loginFor(o.mailbox) : 'the master user'}: check IMAP_MASTER_USER and IMAP_MASTER_PASSWORD against the master passdb (Mailcow: IMAP_MASTER_USER=<DOVECOT_MASTER_USER>@mailcow.local), and auth_master_user_separator (${config.imap.masterSeparator})`;
        return `check IMAP_HOST/IMAP_PORT (${where}) and that Dovecot's imap listener runs`;
      },
    ),
  );
  await imap.close();

  const llm = llmClientFor(config, 10_000);
  const llmHost = llmHostOf(config);
  const openai = config.llm.provider === 'openai';
  results.push(
    await attempt(
      openai ? 'LLM server' : 'Ollama',
      async () => {
        const info = await llm.check();
        const server = info.version ? `Ollama ${info.version}, ` : info.servedAs ? `served as ${info.servedAs}, ` : '';
        return `${llmHost} has ${config.llm.model} (${server}num_ctx ${info.numCtx}, prompts sized with ${info.tokenizer === 'exact' ? "the model's tokenizer" : 'a conservative estimate'})`;
      },
      (err) => {
        const code = (err as { code?: string }).code;
        if (code === 'LLM_SERVER_TOO_OLD') return `upgrade Ollama on ${llmHost} to ${OLLAMA_MIN_VERSION} or later (curl ${llmHost}/api/version shows its version)`;
        if (code === 'LLM_SCHEMA_REJECTED') return "the server cannot compile mailsight's output schema into a grammar: upgrade it; if that does not help, report it to mailsight with the server's name and version";
        const missing = code === 'LLM_MODEL_NOT_FOUND';
        if (openai) {
          return missing
            ? `load ${config.llm.model} on the server, or set OLLAMA_MODEL to a model it lists (curl ${llmHost}/models)`
            : `check LLM_BASE_URL (${llmHost}), LLM_API_KEY, and that the server runs (curl ${llmHost}/models)`;
        }
        return missing
          ? `run: ollama pull ${config.llm.model} (on ${llmHost}), or set OLLAMA_AUTO_PULL=true`
          : `check OLLAMA_HOST (${llmHost}) and that Ollama runs (curl ${llmHost}/api/version)`;
      },
    ),
  );

  const base = o.url ?? localBaseUrl(config);
  const creds = currentPushCredentials(config);
  results.push(
    await attempt(
      'push endpoint',
      async () => {
        if (creds === undefined) throw new Error('no push password yet: PUSH_PASSWORD is unset and the service has not generated one');
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
        // An event mailsight ignores: the endpoint answers 202 and stores nothing.
        const body = JSON.stringify({ driver: 'lua', event: 'MailsightCheck', user: 'check@mailsight.invalid', folder: 'INBOX', uidvalidity: 1, uid: 1 });
        const res = await fetch(new URL(PUSH_PATH, base), { method: 'POST', headers, body, signal: AbortSignal.timeout(5_000) });
        if (res.status === 401) throw new Error('401: the push credentials were refused');
        if (res.status !== 202) throw new Error(`answered ${res.status}`);
        return `${new URL(PUSH_PATH, base)} accepts the push credentials`;
      },
      (err) =>
        creds === undefined
          ? 'start the service once (it generates a password in DATA_DIR and prints the Dovecot line), or set PUSH_PASSWORD'
          : /401/.test(errorText(err))
          ? 'PUSH_USERNAME/PUSH_PASSWORD here differ from the running service\'s; print the driver line with: mailsight dovecot-config --url ...'
          : `start the service (npm start), or pass --url with the address Dovecot uses (now ${base})`,
    ),
  );
  return results;
}
