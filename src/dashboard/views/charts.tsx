import type { FC } from 'hono/jsx';

/**
 * Charts drawn on the server as SVG: no chart library and no client script. Each series' colour is
 * a stylesheet class named after what it shows (`v-spam`, `c-work`, `k-p95`; the CSP allows no
 * inline style), so a verdict or a category has the same colour in every chart, and every chart has
 * a legend. Each chart is drawn twice, wide and narrow, at its size in CSS pixels, and the stylesheet
 * shows the one that fits the screen: nothing is scaled, so chart text is 12 px on a desktop and on
 * a phone alike. Each chart has its numbers in a table under it, for screen readers and for anyone
 * who wants the figures.
 */

/** The two drawings: wide for desktops (a card about 500 px wide), narrow for phones (about 340 px). */
const WIDTHS = { wide: 480, narrow: 330 } as const;
const H = 180;
const PAD = { left: 52, right: 8, top: 12, bottom: 24 };
const plotH = H - PAD.top - PAD.bottom;

/** The colour class of a series: `kind` is the family (v: verdict, c: category, k: other). */
export const seriesClass = (kind: 'v' | 'c' | 'k', key: string) => `${kind}-${key.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`;

export interface Bucket {
  /** ISO time of the bucket's start. */
  at: string;
}

const hhmm = (iso: string) => iso.slice(11, 16);

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** Where things go in one drawing: `buckets` columns over the width `w`, values up to `max`. */
interface Geometry {
  w: number;
  max: number;
  step: number;
  /** The centre of bucket `i`. */
  x: (i: number) => number;
  /** The height of value `v`. */
  y: (v: number) => number;
}

function geometry(w: number, buckets: number, max: number): Geometry {
  const step = (w - PAD.left - PAD.right) / Math.max(1, buckets);
  return { w, max, step, x: (i) => PAD.left + step * i + step / 2, y: (v) => PAD.top + plotH * (1 - v / max) };
}

/** Axes, grid lines and a few time labels shared by every chart (fewer on the narrow drawing). */
const Frame: FC<{ g: Geometry; labels: string[]; unit?: string }> = ({ g, labels, unit }) => {
  const every = Math.max(1, Math.ceil(labels.length / (g.w < 400 ? 4 : 6)));
  return (
    <g>
      {[0, 0.5, 1].map((f) => {
        const y = g.y(g.max * f);
        return (
          <g>
            <line class="grid" x1={PAD.left} x2={g.w - PAD.right} y1={y} y2={y} />
            <text x={PAD.left - 4} y={y + 4} text-anchor="end">
              {`${Math.round(g.max * f * 10) / 10}${f === 1 && unit ? ` ${unit}` : ''}`}
            </text>
          </g>
        );
      })}
      <line class="axis" x1={PAD.left} x2={g.w - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} />
      {labels.map((l, i) =>
        i % every === 0 ? (
          <text x={g.x(i)} y={H - 6} text-anchor="middle">
            {l}
          </text>
        ) : null,
      )}
    </g>
  );
};

const Legend: FC<{ keys: string[]; colour: (key: string) => string }> = ({ keys, colour }) => (
  <ul class="legend">
    {keys.map((k) => (
      <li>
        <span class={`swatch ${colour(k)}`} aria-hidden="true" />
        {k}
      </li>
    ))}
  </ul>
);

/** Both drawings of a chart; the stylesheet shows one (class plot-wide or plot-narrow). */
function Plots(id: string, buckets: number, max: number, draw: (g: Geometry) => unknown) {
  return (Object.entries(WIDTHS) as [keyof typeof WIDTHS, number][]).map(([name, w]) => (
    <div class={`plot plot-${name}`}>
      <svg viewBox={`0 0 ${w} ${H}`} width={w} height={H} role="img" aria-labelledby={`${id}-t`}>
        {draw(geometry(w, buckets, max)) as never}
      </svg>
    </div>
  ));
}

const DataTable: FC<{ labels: string[]; keys: string[]; value: (i: number, key: string) => number | null }> = ({ labels, keys, value }) => (
  <details class="data">
    <summary>Figures</summary>
    <table>
      <thead>
        <tr>
          <th scope="col">from (UTC)</th>
          {keys.map((k) => (
            <th scope="col">{k}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {labels.map((l, i) => (
          <tr>
            <td>{l}</td>
            {keys.map((k) => (
              <td>{value(i, k) ?? '–'}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  </details>
);

/** Stacked bars per bucket, one colour per key. */
export const StackedBars: FC<{ title: string; id: string; buckets: Bucket[]; keys: string[]; colour: (key: string) => string; value: (i: number, key: string) => number }> = (p) => {
  const labels = p.buckets.map((b) => hhmm(b.at));
  const totals = p.buckets.map((_, i) => p.keys.reduce((s, k) => s + p.value(i, k), 0));
  const max = niceMax(Math.max(0, ...totals));
  return (
    <figure class="chart" aria-labelledby={`${p.id}-t`}>
      <figcaption id={`${p.id}-t`}>{p.title}</figcaption>
      {Plots(p.id, p.buckets.length, max, (g) => {
        const barW = Math.max(1, g.step * 0.8);
        return (
          <>
            <Frame g={g} labels={labels} />
            {p.buckets.map((b, i) => {
              let top = PAD.top + plotH;
              return (
                <g>
                  {p.keys.map((k) => {
                    const v = p.value(i, k);
                    if (v <= 0) return null;
                    const h = (v / max) * plotH;
                    top -= h;
                    return (
                      <rect class={p.colour(k)} x={g.x(i) - barW / 2} y={top} width={barW} height={h}>
                        <title>{`${hhmm(b.at)} ${k}: ${v}`}</title>
                      </rect>
                    );
                  })}
                </g>
              );
            })}
          </>
        );
      })}
      {p.keys.length ? <Legend keys={p.keys} colour={p.colour} /> : <p class="muted">Nothing in this window.</p>}
      <DataTable labels={labels} keys={p.keys} value={p.value} />
    </figure>
  );
};

/** The newest value of a line, written beside its end (left of it: the end is the newest bucket). */
const LatestValue: FC<{ x: number; y: number; text: string }> = ({ x, y, text }) => (
  <text class="value" x={Math.max(PAD.left + 60, x)} y={Math.max(PAD.top + 10, y - 4)} text-anchor="end">
    {text}
  </text>
);

/**
 * Lines over the buckets. A bucket without a value (nothing analysed then) is stepped over: the line
 * joins the buckets that have one. A series with a single value is drawn across its bucket, so it
 * still reads as a level, not as a stray dot; the newest value of each line is written beside it.
 */
export const Lines: FC<{ title: string; id: string; buckets: Bucket[]; keys: string[]; unit: string; colour: (key: string) => string; value: (i: number, key: string) => number | null }> = (p) => {
  const labels = p.buckets.map((b) => hhmm(b.at));
  const all = p.buckets.flatMap((_, i) => p.keys.map((k) => p.value(i, k) ?? 0));
  const max = niceMax(Math.max(0, ...all));
  const points = (g: Geometry, k: string) =>
    p.buckets.flatMap((b, i) => {
      const v = p.value(i, k);
      return v === null ? [] : [{ x: g.x(i), y: g.y(v), v, at: b.at }];
    });
  const path = (g: Geometry, pts: { x: number; y: number }[]) => {
    if (pts.length === 1) return `M${(pts[0]!.x - g.step / 2).toFixed(1)},${pts[0]!.y.toFixed(1)} L${(pts[0]!.x + g.step / 2).toFixed(1)},${pts[0]!.y.toFixed(1)}`;
    return pts.map((pt, i) => `${i ? 'L' : 'M'}${pt.x.toFixed(1)},${pt.y.toFixed(1)}`).join(' ');
  };
  return (
    <figure class="chart" aria-labelledby={`${p.id}-t`}>
      <figcaption id={`${p.id}-t`}>{p.title}</figcaption>
      {Plots(p.id, p.buckets.length, max, (g) => (
        <>
          <Frame g={g} labels={labels} unit={p.unit} />
          {p.keys.map((k) => {
            const pts = points(g, k);
            const last = pts.at(-1);
            return last ? (
              <g>
                <path class={`line ${p.colour(k)}`} d={path(g, pts)} />
                {pts.map((pt) => (
                  <circle class={p.colour(k)} cx={pt.x} cy={pt.y} r={2.5}>
                    <title>{`${hhmm(pt.at)} ${k}: ${pt.v} ${p.unit}`}</title>
                  </circle>
                ))}
                <LatestValue x={last.x - g.step / 2 - 4} y={last.y} text={`${k} ${last.v} ${p.unit}`} />
              </g>
            ) : null;
          })}
        </>
      ))}
      <Legend keys={p.keys} colour={p.colour} />
      <DataTable labels={labels} keys={p.keys} value={p.value} />
    </figure>
  );
};
