import { sql, type SQL } from 'drizzle-orm';
import { lit, type FeedbackSaid, type Verdict } from '../domain/states.js';
import { feedbackOutcome } from '../analysis/feedback.js';
import type { Db } from '../db/client.js';
import { queueStateCounts } from '../queue/queue-counts.js';

export interface StatsFilter {
  /** null: every mailbox (admin). */
  mailbox: string | null;
  /** Analyses created since then; queue figures are always current. */
  since?: Date;
}

const ms = (v: unknown) => (v === null || v === undefined ? null : Math.round(Number(v)));

function countsBy(rows: { key: string | null; n: number | string }[]) {
  return Object.fromEntries(rows.map((r) => [r.key ?? 'none', Number(r.n)]));
}

/**
 * Timing percentiles cover the newest analyses, read row by row: at most this many, of the last
 * this many hours. A count, not only a time span, keeps the cost flat as a server grows (at 10
 * million analyses a year, a day holds 27,000, and sorting them made /stats 110 ms).
 */
export const TIMINGS_WINDOW_HOURS = 24;
export const TIMINGS_SAMPLE_ANALYSES = 2_000;

type CountRow = {
  status: string;
  verdict: string;
  category: string;
  n: string | number;
  cache_hits: string | number;
  prompt_tokens: string | number;
  completion_tokens: string | number;
};

/** How far back the timeline's minute and hour rollups are complete (their window is eight days). */
const TIMELINE_ROLLUP_DAYS = 7;

const sums = sql`status, verdict, category, n, cache_hits, prompt_tokens, completion_tokens`;

/**
 * Analysis counts and sums by status, verdict and category, from the rollups (kept exact by
 * triggers): whole UTC days after `since` from the daily ones (llm_stats_daily per mailbox,
 * llm_stats_server_daily for the server); the rest of `since`'s own day for the whole server from
 * the hours and minutes of the last week, and from rows only for the part of a minute before the
 * first whole one (at 10 million analyses a year, an hour's rows made the 1-hour overview grow with
 * the server); for a mailbox, and further back, from its rows. '' is a null verdict or category.
 */
function analysisCounts(db: Db, mailbox: string | null, since: Date | undefined) {
  const rollup = mailbox === null ? sql`llm_stats_server_daily where true` : sql`llm_stats_daily where mailbox = ${mailbox}`;
  const total = (parts: SQL) => db.rows<CountRow>(sql`
    select status, verdict, category, sum(n) as n, sum(cache_hits) as cache_hits, sum(prompt_tokens) as prompt_tokens,
           sum(completion_tokens) as completion_tokens
      from (${parts}) x group by 1, 2, 3`);
  if (!since) return total(sql`select ${sums} from ${rollup}`);
  const at = (d: Date) => sql`${d.toISOString()}::timestamptz`;
  const dayStart = new Date(Math.floor(since.getTime() / 86_400_000) * 86_400_000);
  const dayEnd = new Date(dayStart.getTime() + 86_400_000);
  const up = (d: Date, ms: number) => new Date(Math.min(Math.ceil(d.getTime() / ms) * ms, dayEnd.getTime()));
  const rows = (from: Date, to: Date) => sql`
    select status, coalesce(verdict, ''), coalesce(category, ''), 1, cache_hit::int, coalesce(prompt_tokens, 0), coalesce(completion_tokens, 0)
      from llm_email_analysis
     where ${mailbox === null ? sql`true` : sql`mailbox = ${mailbox}`} and created_at >= ${at(from)} and created_at < ${at(to)}`;
  const days = sql`select ${sums} from ${rollup} and day > ${dayStart.toISOString().slice(0, 10)}::date`;
  if (mailbox !== null || since.getTime() < Date.now() - TIMELINE_ROLLUP_DAYS * 86_400_000) {
    return total(sql`${days} union all ${rows(since, dayEnd)}`);
  }
  const minute = up(since, 60_000);
  const hour = up(since, 3_600_000);
  return total(sql`
    ${days}
    union all ${rows(since, minute)}
    union all select ${sums} from llm_stats_minutely where minute >= ${at(minute)} and minute < ${at(hour)}
    union all select ${sums} from llm_stats_hourly where hour >= ${at(hour)} and hour < ${at(dayEnd)}`);
}

type QualityCounts = { feedback: number; agree: number; false_junk: number; missed_junk: number; no_verdict: number; agreement: number | null };

const emptyQuality = (): QualityCounts => ({ feedback: 0, agree: 0, false_junk: 0, missed_junk: 0, no_verdict: 0, agreement: null });

/**
 * How mailsight's verdicts compare with what users said (llm_feedback): agreement, false junk
 * (junk by mailsight, legit by the user), missed junk (the reverse), overall, per verdict source,
 * per model and prompt version, and per UTC day. `agreement` is the share of feedback with a verdict
 * that agreed.
 */
export async function getQuality(db: Db, mailbox: string | null, since?: Date) {
  const rows = await db.rows<{ source: string; model: string; day: string; said: FeedbackSaid; verdict: Verdict | null; n: string }>(sql`
    select coalesce(verdict_source, '') as source, coalesce(model, '') || ' / ' || coalesce(prompt_version, '') as model,
           to_char(at at time zone 'UTC', 'YYYY-MM-DD') as day, said, verdict, count(*) as n
      from llm_feedback
     where ${mailbox === null ? sql`true` : sql`mailbox = ${mailbox}`} and ${since ? sql`at >= ${since.toISOString()}::timestamptz` : sql`true`}
     group by 1, 2, 3, 4, 5`);
  const overall = emptyQuality();
  const bySource: Record<string, QualityCounts> = {};
  const byModel: Record<string, QualityCounts> = {};
  const byDay: Record<string, QualityCounts> = {};
  for (const r of rows) {
    const n = Number(r.n);
    const outcome = feedbackOutcome(r.verdict, r.said);
    const groups = [overall];
    if (r.verdict) groups.push((bySource[r.source || 'none'] ??= emptyQuality()), (byModel[r.model] ??= emptyQuality()));
    groups.push((byDay[r.day] ??= emptyQuality()));
    for (const g of groups) {
      g.feedback += n;
      g[outcome] += n;
    }
  }
  for (const g of [overall, ...Object.values(bySource), ...Object.values(byModel), ...Object.values(byDay)]) {
    const judged = g.feedback - g.no_verdict;
    g.agreement = judged > 0 ? Math.round((g.agree / judged) * 1000) / 1000 : null;
  }
  return { ...overall, by_source: bySource, by_model: byModel, by_day: byDay };
}

/** Counts, queue health, timing percentiles, cache savings, tokens and verdict quality: what /stats and the dashboard show. */
export async function getStats(db: Db, f: StatsFilter) {
  const inMailbox: SQL = f.mailbox === null ? sql`true` : sql`mailbox = ${f.mailbox}`;
  const timingsFrom = new Date(Math.max(f.since?.getTime() ?? 0, Date.now() - TIMINGS_WINDOW_HOURS * 3_600_000));
  const [byState, [oldest], counts, [timings], quality] = await Promise.all([
    // A mailbox's rows are a prefix of the queue's unique key; the whole server's are counted by triggers.
    f.mailbox === null
      ? queueStateCounts(db)
      : db.rows<{ key: string; n: number }>(sql`select state as key, count(*) as n from llm_processing_queue where ${inMailbox} group by state`).then(countsBy),
    db.rows<{ oldest: number | null }>(sql`
      select extract(epoch from now() - min(created_at))::float8 as oldest
      from llm_processing_queue where ${inMailbox} and state in (${lit('queued', 'processing')})`),
    analysisCounts(db, f.mailbox, f.since),
    db.rows<Record<string, unknown>>(sql`
      select
        percentile_cont(0.5) within group (order by total_ms) filter (where status = ${lit('analyzed')}) as total_p50,
        percentile_cont(0.95) within group (order by total_ms) filter (where status = ${lit('analyzed')}) as total_p95,
        percentile_cont(0.5) within group (order by llm_ms) filter (where status = ${lit('analyzed')} and not cache_hit) as llm_p50,
        percentile_cont(0.95) within group (order by llm_ms) filter (where status = ${lit('analyzed')} and not cache_hit) as llm_p95
      from (select status, cache_hit, total_ms, llm_ms from llm_email_analysis
             where ${inMailbox} and created_at >= ${timingsFrom.toISOString()}::timestamptz
             order by created_at desc limit ${TIMINGS_SAMPLE_ANALYSES}) newest`),
    getQuality(db, f.mailbox, f.since),
  ]);
  const by = (key: 'status' | 'verdict' | 'category', onlyAnalysed: boolean) => {
    const out: Record<string, number> = {};
    for (const r of counts) {
      if (onlyAnalysed && r.status !== 'analyzed') continue;
      const k = r[key] || 'none';
      out[k] = (out[k] ?? 0) + Number(r.n);
    }
    return out;
  };
  const sum = (field: 'cache_hits' | 'prompt_tokens' | 'completion_tokens') => counts.reduce((acc, r) => acc + Number(r[field]), 0);
  return {
    mailbox: f.mailbox,
    since: f.since?.toISOString() ?? null,
    queue: {
      by_state: byState,
      depth: (byState.queued ?? 0) + (byState.processing ?? 0),
      oldest_age_sec: oldest?.oldest == null ? null : Math.round(Number(oldest.oldest)),
    },
    analyses: {
      by_status: by('status', false),
      by_verdict: by('verdict', true),
      by_category: by('category', true),
    },
    timings_ms: {
      from: timingsFrom.toISOString(),
      processing: { p50: ms(timings!.total_p50), p95: ms(timings!.total_p95) },
      llm: { p50: ms(timings!.llm_p50), p95: ms(timings!.llm_p95) },
    },
    content_cache: { llm_calls_saved: sum('cache_hits') },
    tokens: {
      prompt: sum('prompt_tokens'),
      completion: sum('completion_tokens'),
      total: sum('prompt_tokens') + sum('completion_tokens'),
    },
    quality,
  };
}

export interface TimelineFilter {
  mailbox: string | null;
  /** How far back, in minutes (at most MAX_TIMELINE_MINUTES: the rollups keep eight days). */
  minutes: number;
  /** About this many points; a bucket is a whole number of minutes. */
  buckets?: number;
  /**
   * Where the counts come from: the whole server's from the per-minute rollups, a mailbox's from its
   * analyses (a few hundred rows at most). `rows` reads the analyses for the whole server too: what a
   * test compares the rollups with.
   */
  source?: 'rollups' | 'rows';
  /** The end of the window (default: now). */
  now?: Date;
}

export interface TimelinePoint {
  at: string;
  analyzed: number;
  failed: number;
  by_verdict: Record<string, number>;
  by_category: Record<string, number>;
  llm_ms: { p50: number | null; p95: number | null };
}

/** Latency bins are 5 % wide (llm_latency_bin in drizzle/0016): bin b holds up to 1.05^b ms. */
const LATENCY_BIN_RATIO = 1.05;

/**
 * The p-th percentile (0..1, nearest rank) of a latency histogram (bin -> count), as its bin's
 * upper bound in ms: at most 5 % above the exact value. null when empty.
 */
export function histogramPercentile(bins: Map<number, number>, p: number): number | null {
  const total = [...bins.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (const bin of [...bins.keys()].sort((a, b) => a - b)) {
    seen += bins.get(bin)!;
    if (seen >= rank) return Math.round(LATENCY_BIN_RATIO ** bin);
  }
  return null;
}

/**
 * The bucket of a timeline: about `buckets` of them over the window, a whole number of minutes, and
 * of whole hours for windows of a day or more (24 of an hour for a day, 28 of six hours for a week).
 */
export function timelineBucketSec(minutes: number, buckets: number): number {
  const grain = minutes >= 1_440 ? 3_600 : 60;
  return Math.max(grain, Math.ceil((minutes * 60) / buckets / grain) * grain);
}

/**
 * Analyses over time, bucketed: how many per bucket, the verdict and category mix, and LLM latency
 * p50/p95 (calls only, not cache hits; from 5 %-wide bins). Every bucket of the window is present,
 * empty ones with zeros, so a chart's x axis is time. What /stats?timeline_minutes= and the
 * dashboard's charts show. The whole server's comes from the per-minute rollups (at 10 million
 * analyses a year, reading a day's 27,000 rows took 104 ms), a mailbox's from its rows.
 */
export async function getTimeline(db: Db, f: TimelineFilter) {
  const bucketSec = timelineBucketSec(f.minutes, f.buckets ?? 30);
  const end = Math.floor((f.now ?? new Date()).getTime() / 1000 / bucketSec) * bucketSec + bucketSec;
  const start = end - Math.ceil((f.minutes * 60) / bucketSec) * bucketSec;
  const bucket = (column: string) => sql`(floor(extract(epoch from ${sql.raw(column)}) / ${bucketSec}) * ${bucketSec})::bigint`;
  const fromRollups = f.mailbox === null && f.source !== 'rows';
  // Buckets of whole hours read the hourly rollups: a day of them is a few hundred rows at any size.
  const grain = bucketSec % 3_600 === 0 ? 'hour' : 'minute';
  const counts = sql.raw(`llm_stats_${grain}ly`);
  const latencies = sql.raw(`llm_latency_${grain}ly`);
  const inWindow = sql`${f.mailbox === null ? sql`true` : sql`mailbox = ${f.mailbox}`} and created_at >= to_timestamp(${start})`;
  const [countRows, latency] = await Promise.all([
    db.rows<{ b: string; status: string; verdict: string; category: string; n: string }>(
      fromRollups
        ? sql`select ${bucket(grain)} as b, status, verdict, category, sum(n) as n
                from ${counts} where ${sql.raw(grain)} >= to_timestamp(${start}) group by 1, 2, 3, 4`
        : sql`select ${bucket('created_at')} as b, status, coalesce(verdict, '') as verdict, coalesce(category, '') as category, count(*) as n
                from llm_email_analysis where ${inWindow} group by 1, 2, 3, 4`,
    ),
    db.rows<{ b: string; bin: number; n: string }>(
      fromRollups
        ? sql`select ${bucket(grain)} as b, bin, sum(n) as n from ${latencies} where ${sql.raw(grain)} >= to_timestamp(${start}) group by 1, 2`
        : sql`select ${bucket('created_at')} as b, llm_latency_bin(llm_ms) as bin, count(*) as n from llm_email_analysis
               where ${inWindow} and status = ${lit('analyzed')} and not cache_hit and llm_ms is not null group by 1, 2`,
    ),
  ]);
  const points = new Map<number, TimelinePoint>();
  for (let t = start; t < end; t += bucketSec) {
    points.set(t, { at: new Date(t * 1000).toISOString(), analyzed: 0, failed: 0, by_verdict: {}, by_category: {}, llm_ms: { p50: null, p95: null } });
  }
  for (const r of countRows) {
    const p = points.get(Number(r.b));
    if (!p) continue;
    const n = Number(r.n);
    if (r.status === 'failed') p.failed += n;
    if (r.status !== 'analyzed') continue;
    p.analyzed += n;
    p.by_verdict[r.verdict || 'none'] = (p.by_verdict[r.verdict || 'none'] ?? 0) + n;
    p.by_category[r.category || 'none'] = (p.by_category[r.category || 'none'] ?? 0) + n;
  }
  const histograms = new Map<number, Map<number, number>>();
  for (const r of latency) {
    const h = histograms.get(Number(r.b)) ?? new Map<number, number>();
    h.set(Number(r.bin), (h.get(Number(r.bin)) ?? 0) + Number(r.n));
    histograms.set(Number(r.b), h);
  }
  for (const [b, h] of histograms) {
    const p = points.get(b);
    if (p) p.llm_ms = { p50: histogramPercentile(h, 0.5), p95: histogramPercentile(h, 0.95) };
  }
  return { minutes: f.minutes, bucket_sec: bucketSec, points: [...points.values()] };
}

/** The newest failures, from the queue (jobs that ended failed or dead) and from stored analyses. */
export async function recentFailures(db: Db, mailbox: string | null, limit = 10) {
  const inMailbox: SQL = mailbox === null ? sql`true` : sql`mailbox = ${mailbox}`;
  const rows = await db.rows<{ mailbox: string; folder: string; uidvalidity: number; uid: number; state: string; reason: string | null; at: Date | string }>(sql`
    (select mailbox, folder, uidvalidity, uid, state, last_error as reason, updated_at as at
       from llm_processing_queue where ${inMailbox} and state in (${lit('failed', 'dead')})
      order by updated_at desc limit ${limit})
    union all
    (select mailbox, folder, uidvalidity, uid, 'failed' as state, error as reason, updated_at as at
       from llm_email_analysis where ${inMailbox} and status = ${lit('failed')}
      order by updated_at desc limit ${limit})
    order by at desc limit ${limit}`);
  return rows.map((r) => ({ ...r, uidvalidity: Number(r.uidvalidity), uid: Number(r.uid), at: new Date(r.at) }));
}

/** Mailboxes with analyses, the most recently active first (the admin's way into a mailbox), from the rollup. */
export async function mailboxSummaries(db: Db, limit = 100) {
  const rows = await db.rows<{ mailbox: string; analyses: string; phishing: string; latest: Date | string }>(sql`
    select mailbox, analyses, phishing, latest from llm_stats_mailbox order by latest desc, mailbox limit ${limit}`);
  return rows.map((r) => ({ mailbox: r.mailbox, analyses: Number(r.analyses), phishing: Number(r.phishing), latest: new Date(r.latest) }));
}
