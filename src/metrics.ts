import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { sql } from 'drizzle-orm';
import { queueStateCounts } from './queue/queue-counts.js';
import type { Db } from './db/client.js';

/**
 * The event-loop delay histogram samples on a timer this often. prom-client's default, 10 ms, woke
 * an idle mailsight 100 times a second (strace); at 100 ms every stall long enough to matter to a
 * waiting Dovecot is still seen, and the webhook used 4.3-4.5 instead of 5.6 ms of CPU per push
 * with pushes about 30 ms apart (same run, this 2-vCPU VM).
 */
const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * Prometheus metrics for one service instance (own registry: several instances in one test process
 * must not share counters). Labels never carry mailbox names or content: low cardinality, no data.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly pushes: Counter<'outcome'>;
  readonly pushAuthFailures: Counter<'from'>;
  readonly apiRateLimited: Counter;
  readonly jobs: Counter<'outcome'>;
  readonly llmSeconds: Histogram;
  readonly tokens: Counter<'kind'>;
  readonly imapFetchSeconds: Histogram;
  readonly cache: Counter<'result'>;
  readonly dashboardSignIns: Counter<'method' | 'outcome'>;
  readonly feedback: Counter<'said' | 'how' | 'outcome'>;
  readonly campaignVerdicts: Counter<'when'>;

  constructor(opts: { db?: Db; processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.pushes = new Counter({
      name: 'mailsight_pushes_total',
      help: 'Push notifications received, by outcome (queued, duplicate, followed, feedback, expunged, ignored, rejected, unauthorized, forbidden, rate_limited, db_unavailable)',
      labelNames: ['outcome'],
      registers,
    });
    this.pushAuthFailures = new Counter({
      name: 'mailsight_push_auth_failures_total',
      help: 'Pushes with wrong or missing credentials, by where from: allowed (PUSH_ALLOW_FROM: never locked out) or other',
      labelNames: ['from'],
      registers,
    });
    this.dashboardSignIns = new Counter({
      name: 'mailsight_dashboard_sign_ins_total',
      help: 'Dashboard sign-ins by method (key, password: an IMAP LOGIN) and outcome (ok, refused: a wrong key or a password Dovecot refused, limited, unavailable: IMAP could not answer)',
      labelNames: ['method', 'outcome'],
      registers,
    });
    this.feedback = new Counter({
      name: 'mailsight_feedback_total',
      help: "Users' word on messages (said: junk, legit; how: keyword, move, dashboard, api) against mailsight's verdict (outcome: agree, false_junk, missed_junk, no_verdict)",
      labelNames: ['said', 'how', 'outcome'],
      registers,
    });
    this.campaignVerdicts = new Counter({
      name: 'mailsight_campaign_verdicts_total',
      help: "Verdicts given by a campaign (analysis/campaigns.ts): later (a new message of a marked campaign, no LLM call) or earlier (a message judged before, raised and acted on)",
      labelNames: ['when'],
      registers,
    });
    this.apiRateLimited = new Counter({
      name: 'mailsight_api_rate_limited_total',
      help: 'API requests refused with 429 because their key was over API_RATE_LIMIT',
      registers,
    });
    this.jobs = new Counter({
      name: 'mailsight_jobs_total',
      help: 'Jobs finished by the workers, by outcome (done, skipped, failed, dead, gone, stale, retried)',
      labelNames: ['outcome'],
      registers,
    });
    this.llmSeconds = new Histogram({
      name: 'mailsight_llm_request_seconds',
      help: 'Wall time of one LLM analysis (including a repair attempt)',
      buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300],
      registers,
    });
    this.tokens = new Counter({
      name: 'mailsight_llm_tokens_total',
      help: 'Tokens the model read (prompt) and wrote (completion)',
      labelNames: ['kind'],
      registers,
    });
    this.imapFetchSeconds = new Histogram({
      name: 'mailsight_imap_fetch_seconds',
      help: 'Time to fetch one message over IMAP (session reuse included)',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.cache = new Counter({
      name: 'mailsight_content_cache_total',
      help: 'Content-cache lookups by analysed messages: hit (no LLM call) or miss',
      labelNames: ['result'],
      registers,
    });
    if (opts.db) {
      const db = opts.db;
      new Gauge({
        name: 'mailsight_queue_jobs',
        help: 'Queue rows by state, read from the database at scrape time',
        labelNames: ['state'],
        registers,
        async collect() {
          this.reset();
          // Kept by triggers (queue/queue-counts.ts): a scrape reads a few rows, not the queue.
          const counts = await queueStateCounts(db).catch(() => ({})); // database down: the scrape still shows everything else
          for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
        },
      });
      new Gauge({
        name: 'mailsight_queue_oldest_age_seconds',
        help: 'Age of the oldest job waiting or running (0 when the queue is empty)',
        registers,
        async collect() {
          this.reset();
          const [row] = await db
            .rows<{ age: number | null }>(sql`
              select extract(epoch from now() - min(created_at))::float8 as age
              from llm_processing_queue where state in ('queued', 'processing')`)
            .catch(() => []);
          if (row) this.set(Number(row.age ?? 0));
        },
      });
    }
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'mailsight_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    }
  }

  /** The exposition text; a failing database read leaves the queue gauges empty and hides nothing else. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}
