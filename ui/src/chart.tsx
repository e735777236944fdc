// A small line chart in SVG (no chart library: the bundle stays small), with its text
// alternative: the label, the latest value, the lowest and highest, and since when.
import { useId } from 'preact/hooks';

/** `[at_ms, value]`, oldest first. */
export type Point = [number, number];

const W = 300;
const H = 80;
/** Samples further apart than this (a container restarted, an agent away) break the line. */
const GAP_MS = 35_000;

/** The smallest of 1, 2, 5 × base^k that is at least `v` (base 1024 for bytes). */
export function niceCeil(v: number, base = 10): number {
  if (!(v > 0)) return 1;
  let unit = 1;
  while (unit * base <= v) unit *= base;
  while (unit > v) unit /= base;
  for (const m of base === 1024 ? [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] : [1, 2, 5, 10]) if (unit * m >= v) return unit * m;
  return unit * base;
}

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
}

export function Chart(props: {
  label: string;
  points: Point[];
  format: (v: number) => string;
  /** The top of the scale (a host's memory, 100 %); else the data's, rounded up. */
  max?: number;
  /** The least top of the scale when the data's is smaller. */
  floor?: number;
  base?: number;
  kind?: 'cpu' | 'mem';
}) {
  const id = useId();
  const { label, points, format } = props;
  const caption = (
    <figcaption id={id}>
      <span class="chart-label">{label}</span>
      {points.length > 0 && <span class="chart-now"> {format(points[points.length - 1][1])}</span>}
    </figcaption>
  );
  if (points.length === 0) {
    return (
      <figure class="chart" aria-labelledby={id}>
        {caption}
        <p class="chart-empty">No samples yet (one every 10 s).</p>
      </figure>
    );
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const [, v] of points) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const latest = points[points.length - 1][1];
  const top = props.max && props.max > 0 ? Math.max(props.max, hi) : niceCeil(Math.max(hi, props.floor ?? 0), props.base);
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  const x = (t: number) => (t1 > t0 ? ((t - t0) / (t1 - t0)) * W : 0);
  const y = (v: number) => H - (Math.min(Math.max(v, 0), top) / top) * H;
  // The line, broken at gaps; the area under it from the same runs.
  let line = '';
  let area = '';
  let run: Point[] = [];
  const flush = () => {
    if (!run.length) return;
    const pts = run.length === 1 && t1 === t0 ? [[0, run[0][1]] as Point, [W, run[0][1]] as Point] : run.map(([t, v]) => [x(t), v] as Point);
    const seg = pts.map(([px, v], i) => `${i ? 'L' : 'M'}${px.toFixed(1)} ${y(v).toFixed(1)}`).join('');
    line += seg;
    area += `${seg}L${pts[pts.length - 1][0].toFixed(1)} ${H}L${pts[0][0].toFixed(1)} ${H}Z`;
    run = [];
  };
  for (let i = 0; i < points.length; i++) {
    if (i && points[i][0] - points[i - 1][0] > GAP_MS) flush();
    run.push(points[i]);
  }
  flush();
  const minutes = Math.max(1, Math.round((t1 - t0) / 60_000));
  const alt = `${label}: latest ${format(latest)}, lowest ${format(lo)}, highest ${format(hi)} over the last ${
    t1 > t0 ? `${minutes} minute${minutes === 1 ? '' : 's'}` : 'sample'
  } (scale 0 to ${format(top)}).`;
  return (
    <figure class={`chart ${props.kind ?? 'cpu'}`} aria-labelledby={id}>
      {caption}
      <div class="chart-box">
        <span class="chart-top" aria-hidden="true">
          {format(top)}
        </span>
        <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={alt}>
          <line x1="0" y1={H / 2} x2={W} y2={H / 2} class="grid" vector-effect="non-scaling-stroke" />
          <path d={area} class="area" />
          <path d={line} class="line" vector-effect="non-scaling-stroke" />
        </svg>
      </div>
      <p class="chart-range" aria-hidden="true">
        <span>{clock(t0)}</span>
        <span>
          min {format(lo)} · max {format(hi)}
        </span>
        <span>{clock(t1)}</span>
      </p>
    </figure>
  );
}
