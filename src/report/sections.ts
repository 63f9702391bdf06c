import { COLORS, esc, lineChart, timelineChart, type LegendItem, type Series } from './charts.js';
import type { RunView } from './run-view.js';

// The sections report.html and the live dashboard share: HTML strings from one RunView, so the two
// pages show one thing. Runs in Node and in the browser (imports only its two siblings).

/** The split step's phases as the client times them, then the trunk's work, each with its colour. */
export const PHASE_COLORS: LegendItem[] = [
  { label: 'head_forward', color: '#1f77b4' },
  { label: 'wait_trunk_forward', color: '#c7c7c7' },
  { label: 'tail_step', color: '#2ca02c' },
  { label: 'wait_trunk_backward', color: '#e0e0e0' },
  { label: 'head_backward', color: '#9467bd' },
  { label: 'optimizer', color: '#ff7f0e' },
  { label: 'trunk forward', color: '#d62728' },
  { label: 'trunk backward', color: '#8c564b' },
  { label: 'trunk apply', color: '#e377c2' },
  { label: 'trunk eval', color: '#17becf' },
];

export interface Section {
  id: string;
  title: string;
  html: string;
}

const ago = (now: number, t: number) => (t ? `${Math.max(0, (now - t) / 1000).toFixed(1)} s ago` : '–');
const mib = (b: number) => (Number.isFinite(b) ? b / 2 ** 20 : NaN);

/** A table folded into <details> when it has more than `fold` rows, so it does not bury what follows. */
export function table(head: string[], rows: string[][], fold = 12, what = 'rows'): string {
  const t = `<div class="wide"><table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</table></div>`;
  return rows.length > fold ? `<details><summary>${rows.length} ${esc(what)}</summary>${t}</details>` : t;
}

function federation(v: RunView, now: number): Section {
  const m = v.meta;
  const head = `<p class="state">round <b data-k="round">${v.round}/${m.rounds}</b> (${v.roundsDone} done) · mode <b>${esc(m.mode)}</b> · strategy <b>${esc(m.strategy)}</b> · ${v.clients.length}/${m.clients} clients · ${v.replicas.length || 1} trunk replica${v.replicas.length > 1 ? 's' : ''} · <span class="run-${m.state}">${m.state}</span></p>`;
  const rows = v.clients.map((c) => [
    esc(c.id),
    `<span class="st st-${c.state}">${c.state}</span>`,
    String(c.steps),
    Number.isFinite(c.loss) ? c.loss.toFixed(4) : '–',
    m.state === 'live' ? ago(now, c.lastSeen) : c.lastSeen ? new Date(c.lastSeen).toISOString().slice(11, 19) : '–',
  ]);
  return {
    id: 'federation',
    title: 'Federation',
    html: head + table(['client', 'state', 'steps', 'last loss', 'last seen'], rows, 16, 'clients'),
  };
}

function curves(v: RunView, width?: number): Section {
  const loss: Series[] = v.loss.map((s, k) => ({
    label: s.label,
    points: s.points,
    color: k === v.loss.length - 1 ? '#000' : COLORS[k % COLORS.length],
  }));
  if (v.baselineLoss.length)
    loss.push({ label: 'centralized baseline', points: v.baselineLoss, color: '#999', dash: true });
  const evals = (pick: 'accuracy' | 'loss'): Series[] =>
    v.evals.map((e, k) => ({
      label: e.label,
      points: e.points.map((p) => [p.tokens, p[pick]] as [number, number]),
      color: k === 0 ? '#000' : '#999',
      dash: k > 0,
      dots: true,
    }));
  const per = (label: string, pick: (r: RunView['rounds'][number]) => number, color: string, dash = false): Series => ({
    label,
    points: v.rounds.map((r) => [r.round, pick(r)] as [number, number]),
    color,
    dots: v.rounds.length < 40,
    dash,
  });
  // Side by side on a wide page (one column under 900 px): each drawn at half the width, so its text stays 12 px.
  const half = width && width < 900 ? width : Math.max(420, (width ?? 1120) / 2 - 16);
  const html = [
    '<h3>Training loss</h3>',
    lineChart(loss, { width, xLabel: 'training steps, all clients', yLabel: 'loss (smoothed, log)', logY: true }),
    '<h3>Held-out score against tokens</h3>',
    lineChart(evals('accuracy'), {
      width,
      xLabel: 'training tokens',
      yLabel: 'held-out accuracy',
      yRange: [0, 1],
      xFromZero: true,
    }),
    lineChart(evals('loss'), { width, xLabel: 'training tokens', yLabel: 'held-out loss', xFromZero: true }),
    '<h3>Time and traffic per round</h3>',
    '<div class="pair"><div>',
    lineChart([per('seconds per round', (r) => r.wall_s, COLORS[0])], { width: half, xLabel: 'round', yLabel: 's' }),
    '</div><div>',
    lineChart(
      [
        per('up (clients to server)', (r) => mib(r.bytes_up), COLORS[1]),
        per('down', (r) => mib(r.bytes_down), COLORS[2], true),
      ],
      { width: half, xLabel: 'round', yLabel: 'MiB (payload)' },
    ),
    '</div></div>',
  ].join('');
  return { id: 'curves', title: 'Curves', html };
}

function timeline(v: RunView, width?: number): Section {
  const t = v.timeline;
  const kinds = new Set(t.rows.flatMap((r) => r.spans.map((s) => s.kind)));
  const html =
    `<p>The last steps of each client, phase by phase, and the trunk replicas' busy intervals over the same ${((t.t1 - t.t0) / 1000).toFixed(2)} s: grey is a client waiting for the trunk (network, queue, the trunk's work for others).</p>` +
    timelineChart(
      t.rows,
      PHASE_COLORS.filter((k) => kinds.has(k.label)),
      { width, t0: t.t0, t1: t.t1 },
    );
  return { id: 'timeline', title: 'The split step, as a timeline', html };
}

function privacy(v: RunView, width?: number): Section {
  const phases = [...new Set(v.secure.flatMap((s) => Object.keys(s.phases)))];
  const parts: string[] = [];
  if (phases.length)
    parts.push(
      lineChart(
        phases.map((p, k) => ({
          label: p,
          points: v.secure.map((s) => [s.round, s.phases[p] ?? NaN] as [number, number]),
          color: COLORS[k % COLORS.length],
          dots: true,
        })),
        { width, xLabel: 'round', yLabel: 'secure aggregation, s per phase' },
      ),
    );
  else parts.push('<p>No secure aggregation in this run (<code>privacy.secure_aggregation</code> is off).</p>');
  const a = v.attack;
  parts.push(
    a
      ? `<p>Inversion attack on the captured h_A (${a.captured_steps} steps, noise sigma ${a.sigma}): token accuracy <b>${a.token_accuracy.toFixed(4)}</b>, ROUGE-L F1 <b>${a.rouge_l_f1.toFixed(4)}</b> (lower is more private).</p>`
      : '<p>No inversion attack in this run (<code>flglm run --attack</code> runs one).</p>',
  );
  return { id: 'privacy', title: 'Privacy', html: parts.join('') };
}

/** Every shared section, in page order. `width`: the charts' drawing width (they scale to the page anyway). */
export function sections(v: RunView, o: { now?: number; width?: number } = {}): Section[] {
  const now = o.now ?? Date.now();
  return [federation(v, now), curves(v, o.width), timeline(v, o.width), privacy(v, o.width)];
}

/** The page's CSS, shared too. */
export const PAGE_CSS = `body{font-family:system-ui,sans-serif;margin:1.5rem auto;padding:0 1.5rem;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:12px}
.wide{overflow-x:auto}svg.chart{display:block;height:auto;margin:.5rem 0}details summary{cursor:pointer;color:#1f5fa8}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}.nodata{color:#888}
.st{padding:1px 6px;border-radius:3px;background:#eee}.st-training{background:#d8f0d8}.st-waiting{background:#fff2c6}
.st-dropped,.st-revoked{background:#f8d0d0}.st-finished{background:#dde6f5}.run-live{color:#2a8a2a;font-weight:bold}
.scores{display:flex;flex-wrap:wrap;gap:1rem}.scores>div{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;min-width:12rem}
@media(max-width:600px){body{padding:0 .5rem}.pair{grid-template-columns:1fr}}`;
