/**
 * Charts as SVG strings: one module for report.html (rendered in Node) and the live dashboard (the
 * browser imports the compiled file as it is), so both show one thing. No imports, no DOM.
 */
export const COLORS = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface Ticks {
  values: number[];
  /** Decades on a log axis (drawn darker, labelled first); every tick on a linear one. */
  major: boolean[];
  label: (v: number) => string;
}

/** A number in at most 3 significant digits, thousands as k and millions as M ("0.02", "1.5", "20k"). */
export function shortNumber(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/**
 * Axis ticks at a "nice" step (1, 2 or 5 times a power of ten) covering [lo, hi], each labelled
 * with just enough decimals to tell it from its neighbours (no "5.56, 5.56, 5.55").
 */
export function niceTicks(lo: number, hi: number, count = 6): Ticks {
  if (!(hi > lo)) hi = lo + (Math.abs(lo) || 1) * 1e-3;
  const raw = (hi - lo) / Math.max(1, count - 1);
  const pow = Math.pow(10, Math.floor(Math.log10(raw)));
  // The nice step whose number of intervals is closest to what was asked for.
  const step = [1, 2, 5, 10]
    .map((m) => m * pow)
    .sort((a, b) => Math.abs((hi - lo) / a - (count - 1)) - Math.abs((hi - lo) / b - (count - 1)))[0];
  const values: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) values.push(+v.toPrecision(12));
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  const label = (v: number) =>
    Math.abs(v) >= 1e4 && decimals === 0 ? `${+(v / 1000).toFixed(1)}k` : v.toFixed(decimals);
  return { values, major: values.map(() => true), label };
}

/**
 * Ticks of a log axis over [lo, hi] (both > 0): every decade, and between them 2 and 5 (or every
 * digit when the range is about one decade); linear nice ticks when that leaves fewer than three.
 */
export function logTicks(lo: number, hi: number): Ticks {
  lo = Math.max(lo, 1e-12);
  if (!(hi > lo)) hi = lo * 1.001;
  const decades = Math.log10(hi / lo);
  const mantissas = decades <= 1.2 ? [1, 2, 3, 4, 5, 6, 7, 8, 9] : decades <= 4 ? [1, 2, 5] : [1];
  const values: number[] = [],
    major: boolean[] = [];
  for (let k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++)
    for (const m of mantissas) {
      const v = +(m * Math.pow(10, k)).toPrecision(12);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) {
        values.push(v);
        major.push(m === 1);
      }
    }
  if (values.length < 3) return niceTicks(lo, hi);
  return { values, major, label: shortNumber };
}

/** Which ticks get a label: majors first, then the others where they keep `gap` pixels from every label. */
function labelled(pos: number[], major: boolean[], gap: number): boolean[] {
  const keep = pos.map(() => false);
  const fits = (i: number) => pos.every((p, j) => !keep[j] || Math.abs(p - pos[i]) >= gap);
  for (const pass of [true, false])
    for (let i = 0; i < pos.length; i++) if (major[i] === pass && fits(i)) keep[i] = true;
  return keep;
}

export interface LegendItem {
  label: string;
  color: string;
  dash?: boolean;
}

/** Legend rows under a chart, wrapped to `width`, never cut (about 6.6 px per character at 12 px). */
export function legend(items: LegendItem[], x0: number, y0: number, width: number): { svg: string; height: number } {
  let x = x0,
    y = y0,
    svg = '';
  for (const it of items) {
    const w = 22 + Math.ceil(6.6 * it.label.length) + 16;
    if (x > x0 && x + w > x0 + width) {
      x = x0;
      y += 18;
    }
    const dash = it.dash ? ' stroke-dasharray="4 3"' : '';
    svg += `<line x1="${x}" x2="${x + 16}" y1="${y - 4}" y2="${y - 4}" stroke="${it.color}" stroke-width="3"${dash}/>`;
    svg += `<text x="${x + 22}" y="${y}" font-size="12">${esc(it.label)}</text>`;
    x += w;
  }
  return { svg, height: items.length ? y - y0 + 18 : 0 };
}

export interface Series extends LegendItem {
  points: [number, number][];
  /** Draw a dot at each point (few points, e.g. evaluations). */
  dots?: boolean;
}

export interface ChartOptions {
  xLabel: string;
  yLabel: string;
  /** Drawing width in px; the SVG scales to its container's width whatever this is. */
  width?: number;
  height?: number;
  logY?: boolean;
  yRange?: [number, number];
  /** Start the x axis at 0 (tokens seen): one point is not a range of its own. */
  xFromZero?: boolean;
}

const open = (w: number, h: number, cls: string) =>
  `<svg xmlns="http://www.w3.org/2000/svg" class="${cls}" viewBox="0 0 ${w} ${h}" width="100%" preserveAspectRatio="xMinYMin meet" role="img" font-family="system-ui,sans-serif">`;

/** A line chart of points over a numeric x axis, ticks on both axes, the legend under it. */
export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 900,
    PH = o.height ?? 280,
    L = 64,
    R = 16,
    T = 12,
    B = 44;
  const pts = series.flatMap((s) => s.points).filter(([x, v]) => Number.isFinite(x) && Number.isFinite(v));
  const ok = (v: number) => Number.isFinite(v) && (!o.logY || v > 0);
  const ys = pts.map(([, v]) => v).filter(ok);
  if (ys.length === 0) return '<p class="nodata">no data yet</p>';
  let [lo, hi] = o.yRange ?? [Math.min(...ys), Math.max(...ys)];
  if (!(hi > lo))
    [lo, hi] = o.logY ? [lo / 1.1, hi * 1.1] : [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05];
  const tf = (v: number) => (o.logY ? Math.log10(v) : v);
  const xs = pts.map(([x]) => x);
  const xLo = o.xFromZero ? Math.min(0, ...xs) : Math.min(...xs),
    xHi = Math.max(...xs) > xLo ? Math.max(...xs) : xLo + 1;
  const x = (v: number) => L + ((W - L - R) * (v - xLo)) / (xHi - xLo);
  const y = (v: number) => T + (PH - T - B) * (1 - (tf(v) - tf(lo)) / (tf(hi) - tf(lo) || 1));
  const yt = o.logY ? logTicks(lo, hi) : niceTicks(lo, hi);
  const xt = niceTicks(xLo, xHi, Math.max(3, Math.round((W - L - R) / 110)));
  if (xs.every(Number.isInteger)) {
    xt.values = xt.values.filter(Number.isInteger); // rounds, steps: no "1.2"
    xt.label = shortNumber;
  }
  const lg = legend(series, L, PH + 6, W - L - R);
  let svg = open(W, PH + lg.height + 4, 'chart');
  svg += `<rect x="${L}" y="${T}" width="${W - L - R}" height="${PH - T - B}" fill="#fafafa" stroke="#ccc"/>`;
  const yPos = yt.values.map(y);
  const yShow = labelled(yPos, yt.major, 14);
  yt.values.forEach((v, i) => {
    svg += `<line x1="${L}" x2="${W - R}" y1="${yPos[i].toFixed(1)}" y2="${yPos[i].toFixed(1)}" stroke="${yt.major[i] ? '#ddd' : '#f0f0f0'}"/>`;
    if (yShow[i])
      svg += `<text x="${L - 6}" y="${(yPos[i] + 4).toFixed(1)}" font-size="12" text-anchor="end">${yt.label(v)}</text>`;
  });
  for (const v of xt.values.filter((v) => v >= xLo && v <= xHi))
    svg += `<text x="${x(v).toFixed(1)}" y="${PH - B + 16}" font-size="12" text-anchor="middle">${xt.label(v)}</text>`;
  svg += `<text x="${(L + W - R) / 2}" y="${PH - 8}" font-size="12" text-anchor="middle">${esc(o.xLabel)}</text>`;
  svg += `<text x="14" y="${(T + PH - B) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(T + PH - B) / 2})">${esc(o.yLabel)}</text>`;
  for (const s of series) {
    const good = s.points.filter(([px, v]) => Number.isFinite(px) && ok(v));
    const line = good.map(([px, v]) => `${x(px).toFixed(1)},${y(Math.min(Math.max(v, lo), hi)).toFixed(1)}`).join(' ');
    const dash = s.dash ? ' stroke-dasharray="5 4"' : '';
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.8"${dash} points="${line}"><title>${esc(s.label)}</title></polyline>`;
    if (s.dots)
      for (const [px, v] of good)
        svg += `<circle cx="${x(px).toFixed(1)}" cy="${y(v).toFixed(1)}" r="3" fill="${s.color}"/>`;
  }
  return svg + lg.svg + '</svg>';
}

export interface TimelineRow {
  label: string;
  spans: { kind: string; start: number; end: number }[];
}

/** Bars over time, one row each (a client's step phases, a trunk replica's busy intervals); x in ms from `t0`. */
export function timelineChart(
  rows: TimelineRow[],
  kinds: LegendItem[],
  o: { width?: number; t0: number; t1: number },
): string {
  if (rows.length === 0 || !(o.t1 > o.t0)) return '<p class="nodata">no timeline records yet</p>';
  const W = o.width ?? 900,
    L = 110,
    R = 16,
    T = 8,
    RH = 20,
    PH = T + RH * rows.length + 36;
  const color = new Map(kinds.map((k) => [k.label, k.color]));
  const x = (t: number) => L + ((W - L - R) * (t - o.t0)) / (o.t1 - o.t0);
  const lg = legend(kinds, L, PH + 6, W - L - R);
  let svg = open(W, PH + lg.height + 4, 'chart timeline');
  const xt = niceTicks(0, o.t1 - o.t0, Math.max(3, Math.round((W - L - R) / 110)));
  for (const v of xt.values) {
    const px = x(o.t0 + v).toFixed(1);
    svg += `<line x1="${px}" x2="${px}" y1="${T}" y2="${T + RH * rows.length}" stroke="#eee"/>`;
    svg += `<text x="${px}" y="${T + RH * rows.length + 14}" font-size="12" text-anchor="middle">${xt.label(v)}</text>`;
  }
  svg += `<text x="${(L + W - R) / 2}" y="${PH - 6}" font-size="12" text-anchor="middle">ms</text>`;
  rows.forEach((r, i) => {
    const ty = T + RH * i;
    svg += `<text x="${L - 6}" y="${ty + 14}" font-size="12" text-anchor="end">${esc(r.label)}</text>`;
    for (const s of r.spans) {
      const a = Math.max(s.start, o.t0),
        b = Math.min(s.end, o.t1);
      if (b <= a) continue;
      const w = Math.max(0.5, x(b) - x(a)).toFixed(1);
      svg += `<rect class="span" x="${x(a).toFixed(1)}" y="${ty + 3}" width="${w}" height="${RH - 6}" fill="${color.get(s.kind) ?? '#999'}"><title>${esc(`${r.label} ${s.kind}: ${(s.end - s.start).toFixed(1)} ms`)}</title></rect>`;
    }
  });
  return svg + lg.svg + '</svg>';
}
