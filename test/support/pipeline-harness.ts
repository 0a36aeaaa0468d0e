import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { claim, finishMany } from '../../src/analysis/jobs.js';
import { LlmClient } from '../../src/analysis/llm.js';
import { createPipeline, type JobOutcome, type MessageSource } from '../../src/analysis/pipeline.js';
import type { MessageKey } from '../../src/domain/message-key.js';
import type { ActHooks, ActionPlan, ActOutcome } from '../../src/mail/actions.js';
import type { FetchOutcome } from '../../src/mail/imap.js';
import { protectionFor } from '../../src/privacy/protection.js';
import { enqueue } from '../../src/queue/jobs.js';
import { startOllamaStandIn, type OllamaStandIn } from './ollama-stand-in.js';
import { openTestDb, silentLogger, testConfig, type Driver, type TestDb } from './services.js';

/**
 * The pipeline driven job by job, without IMAP: a fake message source (an in-memory mailbox that
 * records what is done to it) and the Ollama stand-in. Each job is enqueued, claimed and ended as
 * the worker does it (analysis/jobs.ts), so the claim's context and the end's records are real.
 */

export const UIDVALIDITY = 7;

/** What a test file drives the pipeline with: its database, the stand-in model, and a fresh fake mailbox per test. */
export interface Testbed {
  t: TestDb;
  ollama: OllamaStandIn;
  mailbox: FakeMailbox;
}

/**
 * Opens a test bed in the calling describe block: the database and the stand-in for the block
 * (beforeAll, closed in afterAll), a new FakeMailbox before each test. Its fields are set by those
 * hooks, so they are read inside tests, not when the block is declared.
 */
export function pipelineTestbed(driver: Driver): Testbed {
  const bed = {} as Testbed;
  beforeAll(async () => {
    bed.t = await openTestDb(driver);
    bed.ollama = await startOllamaStandIn();
  });
  afterAll(async () => {
    await bed.ollama?.close();
    await bed.t?.close();
  });
  beforeEach(() => {
    bed.mailbox = new FakeMailbox();
  });
  return bed;
}

export function message(id: string, subject: string, body: string, from = 'Sender <sender@example.net>') {
  return [`From: ${from}`, 'To: someone@example.test', `Subject: ${subject}`, `Message-ID: <${id}@example.net>`, 'Date: Sat, 21 Nov 2026 10:00:00 +0000', '', body, ''].join('\r\n');
}
export const PHISH = (id: string) => message(id, `Account suspended ${id}`, `Dear customer, verify your account within 24 hours or it will be closed: http://192.0.2.10/login?${id}`);

/** A mailbox in memory: messages by folder and UID, the folders' SPECIAL-USE flags, and what was done. */
export class FakeMailbox implements MessageSource {
  readonly messages = new Map<string, { raw: string; uidvalidity: number }>();
  readonly flags = new Map<string, string[]>();
  readonly fetched: MessageKey[] = [];
  readonly acted: { key: MessageKey; plan: ActionPlan }[] = [];

  put(key: MessageKey, raw: string, uidvalidity = key.uidvalidity) {
    this.messages.set(`${key.mailbox}/${key.folder}/${key.uid}`, { raw, uidvalidity });
  }

  async fetchMessage(key: MessageKey): Promise<FetchOutcome> {
    this.fetched.push(key);
    const m = this.messages.get(`${key.mailbox}/${key.folder}/${key.uid}`);
    if (!m) return { status: 'gone' };
    if (m.uidvalidity !== key.uidvalidity) return { status: 'stale', uidvalidity: m.uidvalidity };
    const raw = Buffer.from(m.raw);
    return { status: 'ok', raw, size: raw.length, truncated: false, ms: 1 };
  }

  async act(key: MessageKey, plan: ActionPlan, hooks?: ActHooks): Promise<ActOutcome> {
    this.acted.push({ key, plan });
    if (!plan.moveToJunk) return { status: 'done', keywords: plan.keywords };
    await hooks?.beforeMove?.('Junk');
    const movedTo = { folder: 'Junk', uid: 70 + key.uid };
    const m = this.messages.get(`${key.mailbox}/${key.folder}/${key.uid}`);
    if (m) {
      this.messages.delete(`${key.mailbox}/${key.folder}/${key.uid}`);
      this.messages.set(`${key.mailbox}/Junk/${movedTo.uid}`, m);
    }
    return { status: 'done', keywords: plan.keywords, movedTo };
  }

  /** The user's MOVE: the message leaves `from` and appears in `to` under `uid`. */
  move(from: MessageKey, to: MessageKey) {
    const m = this.messages.get(`${from.mailbox}/${from.folder}/${from.uid}`);
    if (!m) throw new Error(`no message at ${from.folder}/${from.uid}`);
    this.messages.delete(`${from.mailbox}/${from.folder}/${from.uid}`);
    this.messages.set(`${to.mailbox}/${to.folder}/${to.uid}`, { ...m, uidvalidity: to.uidvalidity });
  }

  async hasMessage(mailbox: string, folder: string, uid: number): Promise<boolean> {
    return this.messages.has(`${mailbox}/${folder}/${uid}`);
  }

  async folderFlags(_mailbox: string, folder: string): Promise<string[] | null> {
    return this.flags.get(folder) ?? [];
  }
}


/** The pipeline as the service builds it, on the harness's parts. */
function pipelineFor(t: TestDb, ollama: OllamaStandIn, source: MessageSource, config: Record<string, unknown>) {
  const cfg = testConfig({ llm: { host: ollama.url }, ...config });
  return createPipeline({
    db: t.db,
    source,
    llm: new LlmClient({ host: ollama.url, model: cfg.llm.model, timeoutMs: 5_000, numCtx: cfg.llm.numCtx }),
    config: cfg,
    logger: silentLogger,
    protection: protectionFor(cfg),
  });
}

/**
 * Runs every due job (as a worker does: claim with context, handle, end) until none is left, and
 * returns their outcomes in order.
 */
export function queueDrainer(bed: Testbed) {
  return async function drain(config: Record<string, unknown> = {}): Promise<{ job: MessageKey & { source: string }; outcome: JobOutcome }[]> {
    const { t } = bed;
    const handler = pipelineFor(t, bed.ollama, bed.mailbox, config);
    const done: { job: MessageKey & { source: string }; outcome: JobOutcome }[] = [];
    for (;;) {
      const jobs = await claim(t.db, { workerId: 'w', limit: 10, leaseMs: 60_000 });
      if (jobs.length === 0) return done;
      for (const job of jobs) {
        const outcome = await handler(job);
        await finishMany(t.db, 'w', [{ job, state: outcome.state, error: outcome.detail ?? null, records: outcome.records }]);
        done.push({ job: { mailbox: job.mailbox, folder: job.folder, uidvalidity: job.uidvalidity, uid: job.uid, source: job.source }, outcome });
      }
    }
  };
}

/** One job through the pipeline as the worker runs it: enqueue, claim (with its context), handle, end. */
export function jobRunner(bed: Testbed) {
  return async function runJob(key: MessageKey, config: Record<string, unknown> = {}, from: 'push' | 'api' | 'reconcile' = 'push'): Promise<JobOutcome> {
    const { t } = bed;
    await enqueue(t.db, { ...key, source: from });
    const handler = pipelineFor(t, bed.ollama, bed.mailbox, config);
    const [job] = await claim(t.db, { workerId: 'w', limit: 1, leaseMs: 60_000 });
    expect(job).toMatchObject(key);
    const outcome = await handler(job!);
    await finishMany(t.db, 'w', [{ job: job!, state: outcome.state, error: outcome.detail ?? null, records: outcome.records }]);
    return outcome;
  };
}
