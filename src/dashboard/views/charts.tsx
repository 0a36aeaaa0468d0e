import type { FC } from 'hono/jsx';

/**
 * Charts drawn on the server as SVG: no chart library and no client script. Colours come from the
 * stylesheet's s0..s7 classes (the CSP allows no inline style). Each chart has its numbers in a
 * table under it, for screen readers and for anyone who wants the figures.
 */

const W = 600;
const H = 180;
const PAD = { left: 40, right: 8, top: 10, bottom: 22 };
const SERIES_CLASSES = 8;

export interface Bucket {
  /** ISO time of the bucket's start. */
  at: string;
}

const hhmm = (iso: string) => iso.slice(11, 16);
const plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

/** Axes, grid lines and a few time labels shared by every chart. */
const Frame: FC<{ max: number; labels: string[]; unit?: string }> = ({ max, labels, unit }) => {
  const every = Math.max(1, Math.ceil(labels.length / 6));
  const step = plotW / Math.max(1, labels.length);
  return (
    <g>
      {[0, 0.5, 1].map((f) => {
        const y = PAD.top + plotH * (1 - f);
        return (
          <g>
            <line class="grid" x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} />
            <text x={PAD.left - 4} y={y + 4} text-anchor="end">
              {`${Math.round(max * f * 10) / 10}${f === 1 && unit ? ` ${unit}` : ''}`}
            </text>
          </g>
        );
      })}
      <line class="axis" x1={PAD.left} x2={W - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} />
      {labels.map((l, i) =>
        i % every === 0 ? (
          <text x={PAD.left + step * i + step / 2} y={H - 6} text-anchor="middle">
            {l}
          </text>
        ) : null,
      )}
    </g>
  );
};

const Legend: FC<{ keys: string[] }> = ({ keys }) => (
  <ul class="legend">
    {keys.map((k, i) => (
      <li>
        <span class={`swatch s${i % SERIES_CLASSES}`} aria-hidden="true" />
        {k}
      </li>
    ))}
  </ul>
);

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

/** Stacked bars per bucket: one colour per key (a single key gives plain bars). */
export const StackedBars: FC<{ title: string; id: string; buckets: Bucket[]; keys: string[]; value: (i: number, key: string) => number }> = (p) => {
  const labels = p.buckets.map((b) => hhmm(b.at));
  const totals = p.buckets.map((_, i) => p.keys.reduce((s, k) => s + p.value(i, k), 0));
  const max = niceMax(Math.max(0, ...totals));
  const step = plotW / Math.max(1, p.buckets.length);
  const barW = Math.max(1, step * 0.8);
  return (
    <figure class="chart" aria-labelledby={`${p.id}-t`}>
      <figcaption id={`${p.id}-t`}>{p.title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${p.id}-t`}>
        <Frame max={max} labels={labels} />
        {p.buckets.map((b, i) => {
          let y = PAD.top + plotH;
          return (
            <g>
              {p.keys.map((k, ki) => {
                const v = p.value(i, k);
                if (v <= 0) return null;
                const h = (v / max) * plotH;
                y -= h;
                return (
                  <rect class={`s${ki % SERIES_CLASSES}`} x={PAD.left + step * i + (step - barW) / 2} y={y} width={barW} height={h}>
                    <title>{`${hhmm(b.at)} ${k}: ${v}`}</title>
                  </rect>
                );
              })}
            </g>
          );
        })}
      </svg>
      {p.keys.length > 1 ? <Legend keys={p.keys} /> : null}
      <DataTable labels={labels} keys={p.keys} value={p.value} />
    </figure>
  );
};

/** Lines over the buckets; a bucket without a value leaves a gap. */
export const Lines: FC<{ title: string; id: string; buckets: Bucket[]; keys: string[]; unit: string; value: (i: number, key: string) => number | null }> = (p) => {
  const labels = p.buckets.map((b) => hhmm(b.at));
  const all = p.buckets.flatMap((_, i) => p.keys.map((k) => p.value(i, k) ?? 0));
  const max = niceMax(Math.max(0, ...all));
  const step = plotW / Math.max(1, p.buckets.length);
  const path = (k: string) => {
    let d = '';
    let pen = false;
    p.buckets.forEach((_, i) => {
      const v = p.value(i, k);
      if (v === null) {
        pen = false;
        return;
      }
      const x = PAD.left + step * i + step / 2;
      const y = PAD.top + plotH * (1 - v / max);
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = true;
    });
    return d.trim();
  };
  return (
    <figure class="chart" aria-labelledby={`${p.id}-t`}>
      <figcaption id={`${p.id}-t`}>{p.title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${p.id}-t`}>
        <Frame max={max} labels={labels} unit={p.unit} />
        {p.keys.map((k, ki) => {
          const d = path(k);
          return d ? <path class={`line s${ki % SERIES_CLASSES}`} d={d} /> : null;
        })}
        {p.keys.map((k, ki) =>
          p.buckets.map((b, i) => {
            const v = p.value(i, k);
            if (v === null) return null;
            return (
              <circle class={`s${ki % SERIES_CLASSES}`} cx={PAD.left + step * i + step / 2} cy={PAD.top + plotH * (1 - v / max)} r={2.5}>
                <title>{`${hhmm(b.at)} ${k}: ${v} ${p.unit}`}</title>
              </circle>
            );
          }),
        )}
      </svg>
      <Legend keys={p.keys} />
      <DataTable labels={labels} keys={p.keys} value={p.value} />
    </figure>
  );
};
