import type { Db } from '../db/client.js';
import { errorText, type Logger } from '../logger.js';

export const QUEUE_CHANNEL = 'mailsight_queue';
/**
 * Pushes within this window share one NOTIFY. Local workers are woken at once; other instances
 * learn of new work at most this much later, which an analysis of seconds does not notice. At 5 ms,
 * deliveries a few ms apart each paid a NOTIFY round trip (0.26 ms of CPU here, 0.12 ms in
 * Postgres, per push); at 50 ms, one in about eight does.
 */
const NOTIFY_COALESCE_MS = 50;

/**
 * Tells workers that new jobs are queued. In this process at once; on Postgres also to every other
 * instance through one coalesced NOTIFY, sent after the push was answered (off Dovecot's clock).
 * A per-row trigger would do the same inside each INSERT, but it serialises commits (-30% push
 * throughput measured), so the notification is sent here instead.
 */
export class QueueWaker {
  private readonly listeners = new Set<() => void>();
  private pending?: NodeJS.Timeout;
  private sending: Promise<void> = Promise.resolve();
  private unlisten?: () => Promise<void>;

  /**
   * Without parameters the driver sends it as one simple query: one round trip. With the channel
   * as a parameter, postgres.js first asked the server for the parameter types: two per NOTIFY.
   */
  private readonly notifyStatement: ReturnType<Db['direct']>;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {
    this.notifyStatement = db.direct({ sql: `select pg_notify('${QUEUE_CHANNEL}', '')`, params: [] });
  }

  /** Subscribes `fn` to wake-ups from this process and (on Postgres) from other instances. */
  async subscribe(fn: () => void): Promise<void> {
    this.listeners.add(fn);
    if (this.db.kind === 'postgres' && !this.unlisten) {
      this.unlisten = await this.db.listen(QUEUE_CHANNEL, () => this.fire());
    }
  }

  private fire() {
    for (const fn of this.listeners) fn();
  }

  /** A job was queued. */
  signal() {
    this.fire();
    if (this.db.kind !== 'postgres' || this.pending) return;
    this.pending = setTimeout(() => this.notify(), NOTIFY_COALESCE_MS);
  }

  private notify() {
    this.pending = undefined;
    this.sending = this.notifyStatement({})
      .then(() => {})
      .catch((err) => this.logger.warn({ err: errorText(err) }, 'queue NOTIFY failed; other instances find the job on their next poll'));
  }

  async close(): Promise<void> {
    // A wake-up still waiting out its coalescing delay is sent now, not dropped (a CLI run ends here).
    if (this.pending) {
      clearTimeout(this.pending);
      this.notify();
    }
    await this.sending;
    await this.unlisten?.().catch(() => {});
    this.listeners.clear();
  }
}
