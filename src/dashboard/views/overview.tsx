import type { FC } from 'hono/jsx';
import type { getStats, getTimeline, mailboxSummaries, recentFailures, TimelinePoint } from '../../queries/stats.js';
import type { ComponentState } from '../../health/readiness.js';
import { Lines, seriesClass, StackedBars } from './charts.js';
import { Layout, Table, Time, urls, type PageContext } from './layout.js';

export interface OverviewData {
  health: Record<string, ComponentState>;
  stats: Awaited<ReturnType<typeof getStats>>;
  timeline: Awaited<ReturnType<typeof getTimeline>>;
  failures: Awaited<ReturnType<typeof recentFailures>>;
  mailboxes: Awaited<ReturnType<typeof mailboxSummaries>>;
}

export const WINDOWS = [
  { minutes: 60, label: 'last hour' },
  { minutes: 360, label: 'last 6 hours' },
  { minutes: 1440, label: 'last 24 hours' },
] as const;

const fmt = (v: number | null | undefined, unit = '') => (v === null || v === undefined ? '–' : `${v.toLocaleString('en')}${unit}`);

function age(sec: number | null): string {
  if (sec === null) return 'none waiting';
  if (sec < 90) return `${sec} s`;
  if (sec < 5400) return `${Math.round(sec / 60)} min`;
  return `${Math.round(sec / 3600)} h`;
}

/** Keys seen anywhere in the window, the most frequent first, so colours stay put between buckets. */
function keysOf(points: TimelinePoint[], field: 'by_verdict' | 'by_category'): string[] {
  const total = new Map<string, number>();
  for (const p of points) for (const [k, n] of Object.entries(p[field])) total.set(k, (total.get(k) ?? 0) + n);
  return [...total.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
}

const Health: FC<{ health: Record<string, ComponentState> }> = ({ health }) => (
  <ul class="health">
    {Object.entries(health).map(([name, s]) => (
      <li>
        <span class={`badge ${s.ok ? 'ok' : 'bad'}`}>{s.ok ? 'ok' : 'down'}</span> <strong>{name}</strong>{' '}
        <span class="muted">
          {s.ok ? `${s.latencyMs} ms` : s.error}
          {typeof s.model === 'string' ? ` · model ${s.model}` : ''}
        </span>
      </li>
    ))}
  </ul>
);

type QualityCounts = OverviewData['stats']['quality'];

/**
 * How verdicts compare with what users said (Junk / Not junk, moves, the API): the evidence for
 * turning DRY_RUN off, and for comparing models (per model and prompt version).
 */
const Quality: FC<{ q: QualityCounts }> = ({ q }) => {
  if (q.feedback === 0) return <p class="muted">No feedback yet: users' Junk / Not junk buttons (Lua driver), their moves out of Junk (and into it, with the Lua driver), and their word given here on a message or through the API show up here.</p>;
  const pct = (x: number | null) => (x === null ? '–' : `${Math.round(x * 1000) / 10} %`);
  return (
    <>
      <dl class="facts" data-testid="quality">
        <dt>Feedback</dt>
        <dd>{fmt(q.feedback)}</dd>
        <dt>Agreement</dt>
        <dd data-testid="agreement">{pct(q.agreement)}</dd>
        <dt>False junk (rescued)</dt>
        <dd data-testid="false-junk">{fmt(q.false_junk)}</dd>
        <dt>Missed junk</dt>
        <dd data-testid="missed-junk">{fmt(q.missed_junk)}</dd>
      </dl>
      <Table
        labelledBy="h-quality"
        rows={[...Object.entries(q.by_source).map(([k, v]) => ({ k: `source: ${k}`, v })), ...Object.entries(q.by_model).map(([k, v]) => ({ k, v }))]}
        empty=""
        columns={[
          ['By', (r) => r.k],
          ['Agreement', (r) => pct(r.v.agreement)],
          ['False junk', (r) => fmt(r.v.false_junk)],
          ['Missed junk', (r) => fmt(r.v.missed_junk)],
        ]}
      />
    </>
  );
};

export const Overview: FC<{ page: PageContext; data: OverviewData; minutes: number }> = ({ page, data, minutes }) => {
  const { stats, timeline } = data;
  const pts = timeline.points;
  const perMinute = timeline.bucket_sec / 60;
  const verdictKeys = keysOf(pts, 'by_verdict');
  const categoryKeys = keysOf(pts, 'by_category');
  const analysedInWindow = pts.reduce((s, p) => s + p.analyzed, 0);
  return (
    <Layout title="Overview" page={page}>
      <h1>Overview</h1>
      <div class="grid">
        <section class="card" aria-labelledby="h-health">
          <h2 id="h-health">Health</h2>
          <Health health={data.health} />
        </section>
        <section class="card" aria-labelledby="h-queue">
          <h2 id="h-queue">Queue</h2>
          <dl class="facts">
            <dt>Waiting or running</dt>
            <dd data-testid="queue-depth">{fmt(stats.queue.depth)}</dd>
            <dt>Oldest job</dt>
            <dd>{age(stats.queue.oldest_age_sec)}</dd>
            {Object.entries(stats.queue.by_state).map(([k, n]) => (
              <>
                <dt>{k}</dt>
                <dd>{fmt(n)}</dd>
              </>
            ))}
          </dl>
        </section>
      </div>
      <div class="kpis" aria-label="Totals">
        <div class="kpi">
          <span class="v" data-testid="analysed-total">{fmt(Number(stats.analyses.by_status.analyzed ?? 0))}</span>
          <span class="k">analysed in all</span>
        </div>
        <div class="kpi">
          <span class="v">{fmt(Math.round((analysedInWindow / Math.max(1, minutes)) * 10) / 10)}</span>
          <span class="k">analysed per minute, {WINDOWS.find((w) => w.minutes === minutes)?.label ?? `${minutes} min`}</span>
        </div>
        <div class="kpi">
          <span class="v">{fmt(stats.timings_ms.llm.p50, ' ms')}</span>
          <span class="k">LLM time p50 (p95 {fmt(stats.timings_ms.llm.p95, ' ms')})</span>
        </div>
        <div class="kpi">
          <span class="v">{fmt(stats.content_cache.llm_calls_saved)}</span>
          <span class="k">LLM calls saved by the content cache</span>
        </div>
        <div class="kpi">
          <span class="v">{fmt(stats.tokens.total)}</span>
          <span class="k">tokens used</span>
        </div>
      </div>

      <h2>Over time</h2>
      <nav aria-label="Time window">
        <p>
          {WINDOWS.map((w, i) => (
            <>
              {i > 0 ? ' · ' : ''}
              <a href={`${urls.home}?minutes=${w.minutes}`} aria-current={w.minutes === minutes ? 'page' : undefined}>
                {w.label}
              </a>
            </>
          ))}
        </p>
      </nav>
      <div class="grid charts">
        <section class="card">
          <StackedBars
            id="c-analysed"
            title={`Analysed per ${perMinute === 1 ? 'minute' : `${perMinute} minutes`}`}
            buckets={pts}
            keys={['analysed', 'failed']}
            colour={(k) => seriesClass('k', k)}
            value={(i, k) => (k === 'analysed' ? pts[i]!.analyzed : pts[i]!.failed)}
          />
        </section>
        <section class="card">
          <Lines
            id="c-llm"
            title="LLM latency"
            unit="ms"
            buckets={pts}
            keys={['p50', 'p95']}
            colour={(k) => seriesClass('k', k)}
            value={(i, k) => pts[i]!.llm_ms[k as 'p50' | 'p95']}
          />
        </section>
        <section class="card">
          <StackedBars id="c-verdicts" title="Verdicts" buckets={pts} keys={verdictKeys} colour={(k) => seriesClass('v', k)} value={(i, k) => pts[i]!.by_verdict[k] ?? 0} />
        </section>
        <section class="card" aria-labelledby="h-quality">
          <h2 id="h-quality">Verdicts against what users said</h2>
          <Quality q={stats.quality} />
        </section>
        <section class="card">
          <StackedBars id="c-categories" title="Categories" buckets={pts} keys={categoryKeys} colour={(k) => seriesClass('c', k)} value={(i, k) => pts[i]!.by_category[k] ?? 0} />
        </section>
      </div>

      <h2 id="h-failures">Recent failures</h2>
      <Table
        labelledBy="h-failures"
        rows={data.failures}
        empty="None."
        columns={[
          ['When', (f) => <Time at={f.at} />],
          ['Message', (f) => <a href={urls.message(f)}>{`${f.mailbox} · ${f.folder} · UID ${f.uid}`}</a>],
          ['State', (f) => <span class="badge bad">{f.state}</span>],
          ['Reason', (f) => f.reason ?? '–'],
        ]}
      />

      <h2 id="h-mailboxes">Mailboxes</h2>
      <Table
        labelledBy="h-mailboxes"
        rows={data.mailboxes}
        empty="No analyses yet."
        columns={[
          ['Mailbox', (m) => <a href={urls.mailbox(m.mailbox)}>{m.mailbox}</a>],
          ['Analyses', (m) => fmt(m.analyses)],
          ['Phishing', (m) => (m.phishing > 0 ? <span class="badge bad">{m.phishing}</span> : '0')],
          ['Latest', (m) => <Time at={m.latest} />],
        ]}
      />
    </Layout>
  );
};
