import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Db } from '../db/client.js';
import { errorText, type Logger } from '../logger.js';
import { backoffMs } from '../util/backoff.js';
import { processAlive } from '../util/process-alive.js';
import type { JobError } from './job-error.js';
import { claim, extendLeases, finishMany, nextCursor, nextDueAt, release, retry, type ClaimCursor, type ClaimWith, type Ending, type FinalState, type FinishWrites, type Job } from './lifecycle.js';

export interface HandlerOutcome<R = unknown> {
  state: FinalState;
  detail?: string;
  llmCalls?: number;
  /** What to record with the job's end, in the same statement (`finishWrites`). */
  records?: R[];
}

/** X: what a claim brings along with each job (`claimWith`); R: what a job's end records (`finishWrites`). */
export type WorkerPoolOptions<X extends object = Record<never, never>, R = unknown> = PoolSettings<X, R> &
  // A handler that reads more than the queue row needs the claim to bring it: then claimWith is required.
  (keyof X extends never ? { claimWith?: ClaimWith<X> } : { claimWith: ClaimWith<X> });

interface PoolSettings<X extends object, R> {
  db: Db;
  logger: Logger;
  handler: (job: Job<NoInfer<X>>) => Promise<HandlerOutcome<R>>;
  /** Statements a job's end also runs (with its records). */
  finishWrites?: FinishWrites<R>;
  concurrency: number;
  batchSize: number;
  leaseMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Longest idle sleep: a safety net for wake-ups that never came (another instance's retry). */
  idlePollMs?: number;
  workerId?: string;
  /** Counts job outcomes (mailsight_jobs_total). */
  onOutcome?: (outcome: FinalState | 'retried') => void;
  /** Called with the records written with a job's end, once they are. */
  onRecorded?: (records: R[]) => Promise<void>;
}

/** After a failed claim (database down), try again in this long. */
const CLAIM_ERROR_PAUSE_MS = 1_000;
/** An outage's job waits at least this long, plus up to the jitter (so a recovered service is not hit all at once). */
const MIN_OUTAGE_WAIT_MS = 200;
const OUTAGE_JITTER_MS = 250;
const DEFAULT_IDLE_POLL_MS = 30_000;
/** Jobs claimed beyond the free slots, ready to start the moment a slot frees. */
const PREFETCH_JOBS = 1;

/** `<host>:<pid>:<random>`: the host is the instance's identity across restarts (a container keeps its host name). */
export function newWorkerId(): string {
  const id = `${instancePrefix()}${process.pid}:${randomBytes(3).toString('hex')}`;
  thisProcessWorkers.add(id);
  return id;
}

/** Worker ids made in this process: alive whatever their pid says (several instances in one process, as tests run them). */
const thisProcessWorkers = new Set<string>();

export const instancePrefix = () => `${hostname()}:`;

/**
 * Whether the worker that holds a job is gone: another worker id of this host whose process no
 * longer runs, or whose pid is now this process's own (a container restarted: node is pid 1 again).
 */
export function workerGone(holder: string, self: string): boolean {
  if (holder === self || thisProcessWorkers.has(holder) || !holder.startsWith(instancePrefix())) return false;
  const pid = Number(holder.slice(instancePrefix().length).split(':')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  return !processAlive(pid);
}

/**
 * Claims jobs in batches and runs up to `concurrency` at once. Wakes on wake() (a push arrived),
 * when a job finishes, or when the next retry or expired lease falls due; never polls faster.
 * Held jobs' leases are renewed, so only a dead process's jobs expire and return.
 */
export class WorkerPool<X extends object = Record<never, never>, R = unknown> {
  readonly workerId: string;
  readonly stats = { claimed: 0, done: 0, skipped: 0, failed: 0, dead: 0, gone: 0, stale: 0, retried: 0, llmCalls: 0 };
  private readonly buffer: Job<X>[] = [];
  private readonly running = new Map<number, Promise<void>>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private stopping = false;
  private timer?: NodeJS.Timeout;
  private heartbeat?: NodeJS.Timeout;
  private heartbeatRun: Promise<void> = Promise.resolve();
  private idleWaiters: (() => void)[] = [];
  /** Where this pool's last claim walk ended: the next one's window of mailboxes starts there. */
  private cursor?: ClaimCursor;
  /** After a failed claim (database down), wake-ups wait until then instead of hammering it. */
  private pausedUntil = 0;
  private readonly endings: { ending: Ending<R>; settle: (err: unknown, held?: boolean) => void }[] = [];
  private flushing: Promise<void> | null = null;

  constructor(private readonly opts: WorkerPoolOptions<X, R>) {
    this.workerId = opts.workerId ?? newWorkerId();
  }

  start() {
    const every = Math.max(500, Math.floor(this.opts.leaseMs / 3));
    this.heartbeat = setInterval(() => {
      this.heartbeatRun = this.renewLeases();
    }, every);
    this.heartbeat.unref();
    this.wake();
  }

  /** Something may be runnable now. Cheap and safe to call often: concurrent calls coalesce. */
  wake() {
    if (this.stopping) return;
    const paused = this.pausedUntil - Date.now();
    if (paused > 0) {
      this.sleep(paused);
      return;
    }
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    clearTimeout(this.timer);
    this.pumping = this.pump().finally(() => {
      this.pumping = null;
      if (this.pumpAgain) {
        this.pumpAgain = false;
        this.wake();
      }
    });
  }

  /** True when nothing is held or running (tests and benchmarks wait on it). */
  get idle(): boolean {
    return this.buffer.length === 0 && this.running.size === 0 && !this.pumping;
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        this.startBuffered();
        // Claimed for the free slots plus PREFETCH_JOBS, so a slot that frees starts its next job at
        // once instead of waiting for a claim. No more than that: a job held here waits behind the
        // running ones while another mailbox's newer message could have had its turn.
        const want = this.opts.concurrency - this.running.size + PREFETCH_JOBS - this.buffer.length;
        if (this.stopping || want <= 0 || Date.now() < this.pausedUntil) break;
        const limit = Math.min(this.opts.batchSize, want);
        const jobs = await claim<X>(this.opts.db, { workerId: this.workerId, limit, leaseMs: this.opts.leaseMs, with: this.opts.claimWith, after: this.cursor });
        this.cursor = nextCursor(jobs, this.cursor);
        this.stats.claimed += jobs.length;
        this.buffer.push(...jobs);
        if (jobs.length < limit) {
          // The queue has nothing more runnable for now: start what came, and stop asking.
          this.startBuffered();
          break;
        }
      }
    } catch (err) {
      this.opts.logger.error({ err: errorText(err), retryInMs: CLAIM_ERROR_PAUSE_MS }, 'claiming jobs failed');
      this.pausedUntil = Date.now() + CLAIM_ERROR_PAUSE_MS;
      this.sleep(CLAIM_ERROR_PAUSE_MS);
      return;
    }
    // Nothing runnable now but a slot is free: sleep until the next retry or lease falls due (a
    // running job's end or a push wakes us sooner).
    if (this.buffer.length === 0 && this.running.size < this.opts.concurrency && !this.stopping) {
      if (this.running.size === 0) for (const w of this.idleWaiters.splice(0)) w();
      await this.sleepUntilDue();
    }
  }

  /**
   * Starts buffered jobs while slots are free. Not while paused: a job claimed before an outage was
   * seen (the prefetched one, or a claim in flight when it came) waits for the pause like the rest.
   */
  private startBuffered() {
    if (Date.now() < this.pausedUntil) return;
    while (!this.stopping && this.running.size < this.opts.concurrency && this.buffer.length > 0) {
      const job = this.buffer.shift()!;
      const run = this.run(job).finally(() => {
        this.running.delete(job.id);
        this.wake();
      });
      this.running.set(job.id, run);
    }
  }

  private sleep(ms: number) {
    clearTimeout(this.timer);
    if (this.stopping) return;
    this.timer = setTimeout(() => this.wake(), ms);
    this.timer.unref();
  }

  private async sleepUntilDue() {
    const cap = this.opts.idlePollMs ?? DEFAULT_IDLE_POLL_MS;
    let ms = cap;
    try {
      const at = await nextDueAt(this.opts.db);
      if (at) ms = Math.min(cap, Math.max(10, at.getTime() - Date.now() + 5));
    } catch {
      ms = CLAIM_ERROR_PAUSE_MS;
    }
    this.sleep(ms);
  }

  private async run(job: Job<X>): Promise<void> {
    const log = this.opts.logger.child({ jobId: job.id, mailbox: job.mailbox, folder: job.folder, uid: job.uid, attempt: job.attempts });
    const started = performance.now();
    const { db, maxAttempts } = this.opts;
    try {
      let outcome: HandlerOutcome<R>;
      if (job.attempts > maxAttempts) {
        // Claimed again after its lease expired this many times: the job itself kills its worker.
        outcome = { state: 'dead', detail: `gave up after ${maxAttempts} attempts; last: ${job.lastError ?? 'lease expired (worker died)'}` };
      } else {
        try {
          outcome = await this.opts.handler(job);
        } catch (err) {
          // A JobError, or anything else (treated as transient: unknown trouble gets the retries).
          const e = err as Partial<JobError>;
          const reason = `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
          const outage = e.outageMs !== undefined && e.transient !== false;
          if (!outage && e.transient === false) {
            outcome = { state: 'failed', detail: reason };
          } else if (!outage && job.attempts >= maxAttempts) {
            outcome = { state: 'dead', detail: `gave up after ${job.attempts} attempts; last: ${reason}` };
          } else {
            // An outage of a service the job needs: back without spending an attempt, and no claims
            // until it may be up again (the other jobs would only find it down too).
            const delay = outage
              ? Math.max(MIN_OUTAGE_WAIT_MS, e.outageMs!) + Math.floor(Math.random() * OUTAGE_JITTER_MS)
              : backoffMs(job.attempts, this.opts.retryBaseMs, this.opts.retryMaxMs);
            await retry(db, job, reason, delay, { refund: outage });
            if (outage) this.pausedUntil = Math.max(this.pausedUntil, Date.now() + delay);
            this.stats.retried++;
            this.opts.onOutcome?.('retried');
            if (outage) log.warn({ err: reason, retryInMs: delay, outage: true }, 'service unavailable; job waits without spending an attempt');
            else log.warn({ err: reason, retryInMs: delay }, 'job failed; will retry');
            return;
          }
        }
      }
      const held = await this.end(job, outcome.state, outcome.detail ?? null, outcome.records);
      if (held && outcome.records?.length) await this.opts.onRecorded?.(outcome.records);
      this.stats[outcome.state]++;
      this.opts.onOutcome?.(outcome.state);
      this.stats.llmCalls += outcome.llmCalls ?? 0;
      const line = { state: outcome.state, detail: outcome.detail, ms: Math.round(performance.now() - started), held };
      if (outcome.state === 'failed' || outcome.state === 'dead') log.error(line, 'job finished');
      else log.info(line, 'job finished');
    } catch (err) {
      // The database failed us while recording the outcome: the lease expires and the job returns.
      log.error({ err: errorText(err) }, 'could not record job outcome; it returns after its lease');
    }
  }

  /**
   * Records a job's end. Ends that arrive while a write is in flight go together in the next one
   * (group commit): under load, one statement ends many jobs.
   */
  private end(job: Job<X>, state: FinalState, error: string | null, records?: R[]): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.endings.push({ ending: { job, state, error, records }, settle: (err, held) => (err ? reject(err) : resolve(held!)) });
      this.flushing ??= this.flushEndings();
    });
  }

  private async flushEndings() {
    while (this.endings.length > 0) {
      const batch = this.endings.splice(0);
      try {
        const held = await finishMany(this.opts.db, this.workerId, batch.map((b) => b.ending), this.opts.finishWrites);
        for (const b of batch) b.settle(null, held.has(b.ending.job.id));
      } catch (err) {
        for (const b of batch) b.settle(err);
      }
    }
    this.flushing = null;
  }

  private async renewLeases() {
    const ids = [...this.running.keys(), ...this.buffer.map((j) => j.id)];
    try {
      await extendLeases(this.opts.db, ids, this.workerId, this.opts.leaseMs);
    } catch (err) {
      this.opts.logger.warn({ err: errorText(err), jobs: ids.length }, 'could not renew leases');
    }
  }

  /** Resolves when nothing is runnable right now and nothing is running (tests, benchmarks). */
  whenIdle(): Promise<void> {
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops claiming, gives buffered jobs back, waits up to `graceMs` for running ones, then gives
   * those back too (their handlers are idempotent: a later run redoes what they had not recorded).
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    await this.pumping;
    await this.heartbeatRun;
    const buffered = this.buffer.splice(0).map((j) => j.id);
    const released = await release(this.opts.db, buffered, this.workerId).catch(() => 0);
    const all = Promise.all(this.running.values());
    let timedOut = false;
    await Promise.race([all, new Promise<void>((r) => setTimeout(() => { timedOut = true; r(); }, graceMs).unref())]);
    await this.flushing;
    let abandoned = 0;
    if (timedOut) abandoned = await release(this.opts.db, [...this.running.keys()], this.workerId).catch(() => 0);
    this.opts.logger.info({ released: released + abandoned }, 'workers stopped');
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
