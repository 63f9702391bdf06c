/**
 * report.html: one self-contained page (inline SVG and CSS, no external assets) with loss curves
 * per client and global, evaluation metrics side by side with the baseline, and throughput.
 */
export interface ReportInput {
  name: string;
  mode: string;
  summary: Record<string, unknown>;
  steps: { client: string; loss: number; index: number }[];
  rounds: {
    round: number;
    wall_s: number;
    train_loss: number;
    clients: string[];
    dropped: string[];
    bytes_up?: number;
    bytes_down?: number;
    bytes_by_client?: Record<string, [number, number]>;
  }[];
  baselineLosses?: number[];
  /** Held-out evaluations during training: federated (per evaluation round) and centralized. */
  evalCurves?: { label: string; points: { tokens: number; accuracy: number; loss: number }[] }[];
  /** Where each client's step time went (seconds per phase, summed over the run). */
  clientPhases?: { client: string; steps: number; phases: Record<string, number> }[];
  config: string;
}

const COLORS = [
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

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * Axis ticks at a "nice" step (1, 2 or 5 times a power of ten) covering [lo, hi], each labelled
 * with just enough decimals to tell it from its neighbours (no "5.56, 5.56, 5.55").
 */
export function niceTicks(lo: number, hi: number, count = 6): { values: number[]; label: (v: number) => string } {
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
  return { values, label };
}

function smooth(xs: number[], k = 5): number[] {
  return xs.map((_, i) => {
    const w = xs.slice(Math.max(0, i - k + 1), i + 1);
    return w.reduce((a, b) => a + b, 0) / w.length;
  });
}

/**
 * An inline SVG line chart. With `stretch`, every series spans the full width (x = its own progress
 * from 0 to 1), for curves of different lengths over the same run.
 */
export function lineChart(
  series: { label: string; ys: number[]; color: string }[],
  opts: { width?: number; height?: number; xLabel: string; yLabel: string; logY?: boolean; stretch?: boolean },
): string {
  const W = opts.width ?? 720,
    H = opts.height ?? 320,
    L = 60,
    R = 150,
    T = 20,
    B = 40;
  const all = series.flatMap((s) => s.ys).filter(Number.isFinite);
  if (all.length === 0) return '<p>no data</p>';
  const tf = (y: number) => (opts.logY ? Math.log10(Math.max(y, 1e-6)) : y);
  const lo = Math.min(...all.map(tf)),
    hi = Math.max(...all.map(tf));
  const span = hi - lo || 1;
  const n = Math.max(...series.map((s) => s.ys.length));
  const x = (i: number, len = n) => L + ((W - L - R) * i) / Math.max(1, (opts.stretch ? len : n) - 1);
  const y = (v: number) => T + (H - T - B) * (1 - (tf(v) - lo) / span);
  const yTicks = niceTicks(Math.min(...all), Math.max(...all));
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" style="max-width:${W}px" role="img">`;
  svg += `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#ccc"/>`;
  for (const v of yTicks.values) {
    svg += `<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${L - 6}" y="${y(v) + 4}" font-size="11" text-anchor="end">${yTicks.label(v)}</text>`;
  }
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const xv = L + (W - L - R) * f;
    svg += `<text x="${xv}" y="${H - B + 14}" font-size="11" text-anchor="middle">${opts.stretch ? `${Math.round(100 * f)}%` : Math.round(f * (n - 1))}</text>`;
  }
  svg += `<text x="${(L + W - R) / 2}" y="${H - 8}" font-size="12" text-anchor="middle">${esc(opts.xLabel)}</text>`;
  svg += `<text x="14" y="${(T + H - B) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(opts.yLabel)}</text>`;
  series.forEach((s, k) => {
    const pts = s.ys
      .map((v, i) => (Number.isFinite(v) ? `${x(i, s.ys.length).toFixed(1)},${y(v).toFixed(1)}` : ''))
      .filter(Boolean)
      .join(' ');
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.6" points="${pts}"/>`;
    svg += `<rect x="${W - R + 10}" y="${T + 16 * k}" width="10" height="10" fill="${s.color}"/><text x="${W - R + 26}" y="${T + 16 * k + 9}" font-size="11">${esc(s.label)}</text>`;
  });
  return svg + '</svg>';
}

/** An inline SVG chart of points over a shared numeric x axis (e.g. tokens seen), with ticks on both axes. */
export function pointsChart(
  series: { label: string; points: [number, number][]; color: string }[],
  opts: { xLabel: string; yLabel: string; yRange?: [number, number] },
): string {
  const W = 720,
    H = 300,
    L = 60,
    R = 150,
    T = 20,
    B = 44;
  const pts = series.flatMap((s) => s.points).filter(([, v]) => Number.isFinite(v));
  if (pts.length === 0) return '<p>no data</p>';
  const xHi = Math.max(...pts.map(([x]) => x)) || 1;
  const [lo, hi] = opts.yRange ?? [Math.min(...pts.map(([, v]) => v)), Math.max(...pts.map(([, v]) => v))];
  const span = hi - lo || 1;
  const x = (v: number) => L + ((W - L - R) * v) / xHi;
  const y = (v: number) => T + (H - T - B) * (1 - (v - lo) / span);
  const yTicks = niceTicks(lo, hi),
    xTicks = niceTicks(0, xHi);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" style="max-width:${W}px" role="img">`;
  svg += `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fafafa" stroke="#ccc"/>`;
  for (const yv of yTicks.values)
    svg += `<line x1="${L}" x2="${W - R}" y1="${y(yv)}" y2="${y(yv)}" stroke="#eee"/><text x="${L - 6}" y="${y(yv) + 4}" font-size="11" text-anchor="end">${yTicks.label(yv)}</text>`;
  for (const xv of xTicks.values)
    svg += `<text x="${x(xv)}" y="${H - B + 14}" font-size="11" text-anchor="middle">${xTicks.label(xv)}</text>`;
  svg += `<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">${esc(opts.xLabel)}</text>`;
  svg += `<text x="14" y="${(T + H - B) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(opts.yLabel)}</text>`;
  series.forEach((s, k) => {
    const line = s.points
      .filter(([, v]) => Number.isFinite(v))
      .map(([px, v]) => `${x(px).toFixed(1)},${y(v).toFixed(1)}`)
      .join(' ');
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${line}"/>`;
    for (const [px, v] of s.points)
      if (Number.isFinite(v))
        svg += `<circle cx="${x(px).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${s.color}"/>`;
    svg += `<rect x="${W - R + 10}" y="${T + 16 * k}" width="10" height="10" fill="${s.color}"/><text x="${W - R + 26}" y="${T + 16 * k + 9}" font-size="11">${esc(s.label)}</text>`;
  });
  return svg + '</svg>';
}

function metricRow(label: string, e: Record<string, number> | undefined): string {
  if (!e) return '';
  const f = (v: number | undefined, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '–');
  return `<tr><td>${esc(label)}</td><td>${f(e.loss)}</td><td>${f(e.perplexity, 3)}</td><td>${f(e.accuracy)}</td></tr>`;
}

interface Generations {
  rouge_l_f1: number;
  exact_match: number;
  examples: number;
  samples: { prompt: string; reference: string; generated: string; rouge_l_f1: number }[];
}

/** Task generate: both models' scores, then the first held-out prompts with what each wrote. */
function generationSection(fed: Generations | undefined, central: Generations | undefined): string {
  if (!fed && !central) return '';
  const row = (label: string, g?: Generations) =>
    g
      ? `<tr><td>${esc(label)}</td><td>${g.rouge_l_f1.toFixed(4)}</td><td>${g.exact_match.toFixed(4)}</td><td>${g.examples}</td></tr>`
      : '';
  const first = (fed ?? central)!.samples;
  const tail = (t: string) => (t.length > 160 ? `…${t.slice(-160)}` : t);
  const rows = first
    .map(
      (x, i) =>
        `<tr><td><pre>${esc(tail(x.prompt))}</pre></td><td>${esc(x.reference)}</td>${fed ? `<td>${esc(fed.samples[i]?.generated ?? '–')}</td>` : ''}${central ? `<td>${esc(central.samples[i]?.generated ?? '–')}</td>` : ''}</tr>`,
    )
    .join('');
  return `<h2>Generation</h2><p>Greedy decoding (KV cache) from each held-out prompt, scored against its reference: ROUGE-L F1 over lower-cased words, exact match of the whole completion.</p>
<table><tr><th>model</th><th>ROUGE-L F1</th><th>exact match</th><th>examples</th></tr>${row('federated (split)', fed)}${row('centralized baseline', central)}</table>
<h3>Example generations</h3><div class="wide"><table><tr><th>prompt (end)</th><th>reference</th>${fed ? '<th>federated</th>' : ''}${central ? '<th>centralized</th>' : ''}</tr>${rows}</table></div>`;
}

export function renderReport(r: ReportInput): string {
  const clients = [...new Set(r.steps.map((s) => s.client))].sort();
  const perClient = clients.map((c, k) => ({
    label: c,
    ys: smooth(r.steps.filter((s) => s.client === c).map((s) => s.loss)),
    color: COLORS[k % COLORS.length],
  }));
  const longest = Math.max(0, ...perClient.map((p) => p.ys.length));
  const global = {
    label: 'global (mean)',
    ys: Array.from({ length: longest }, (_, i) => {
      const v = perClient.map((p) => p.ys[i]).filter(Number.isFinite);
      return v.reduce((a, b) => a + b, 0) / v.length;
    }),
    color: '#000',
  };
  const series = [...perClient, global];
  if (r.baselineLosses?.length) series.push({ label: 'centralized', ys: smooth(r.baselineLosses), color: '#999' });
  const s = r.summary as Record<string, unknown> & {
    eval?: Record<string, number>;
    generation?: Generations;
    baseline?: Record<string, unknown> & { eval?: Record<string, number>; generation?: Generations };
  };
  const fmt = (v: unknown, d = 1) => (typeof v === 'number' ? v.toFixed(d) : '–');
  const dp = s.privacy as
    { epsilon: number | null; delta: number; user_epsilon?: number; example_epsilon?: number } | undefined;
  const dpLine = dp
    ? `<p>Differential privacy: ε = ${fmt(dp.epsilon, 3)} at δ = ${dp.delta}${dp.user_epsilon !== undefined ? ` (DP-FedAvg, user-level: ${fmt(dp.user_epsilon, 3)})` : ''}${dp.example_epsilon !== undefined ? ` (h_A, example-level, largest over clients: ${fmt(dp.example_epsilon, 3)})` : ''}.${s.stopped ? ` Stopped early: ${esc(String(s.stopped))}` : ''}</p>`
    : '';
  const mb = (b?: number) => (typeof b === 'number' ? (b / 2 ** 20).toFixed(1) : '–');
  const phaseNames = [...new Set((r.clientPhases ?? []).flatMap((c) => Object.keys(c.phases)))];
  const phaseRows = (r.clientPhases ?? [])
    .map(
      (c) =>
        `<tr><td>${esc(c.client)}</td>${phaseNames.map((p) => `<td>${((1000 * (c.phases[p] ?? 0)) / Math.max(1, c.steps)).toFixed(1)}</td>`).join('')}</tr>`,
    )
    .join('');
  const trafficClients = [...new Set(r.rounds.flatMap((x) => Object.keys(x.bytes_by_client ?? {})))].sort();
  const trafficRows = trafficClients.length
    ? r.rounds
        .map(
          (x) =>
            `<tr><td>${x.round}</td>${trafficClients
              .map((c) => {
                const b = x.bytes_by_client?.[c];
                return `<td>${b ? `${mb(b[0])} / ${mb(b[1])}` : '–'}</td>`;
              })
              .join('')}</tr>`,
        )
        .join('')
    : '';
  const roundRows = r.rounds
    .map(
      (x) =>
        `<tr><td>${x.round}</td><td>${x.wall_s.toFixed(1)}</td><td>${x.train_loss.toFixed(4)}</td><td>${x.clients.length}</td><td>${mb(x.bytes_up)}</td><td>${mb(x.bytes_down)}</td><td>${esc(x.dropped.join(', ') || '–')}</td></tr>`,
    )
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>flglm report: ${esc(r.name)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:960px;color:#222}table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:12px}.wide{overflow-x:auto}svg{height:auto}@media(max-width:600px){body{margin:.5rem}}</style><meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<h1>flglm run: ${esc(r.name)}</h1>
<p>Mode <b>${esc(r.mode)}</b>, ${clients.length} clients, ${fmt(s.rounds, 0)} rounds, ${fmt(s.steps, 0)} client steps, ${fmt(s.tokens, 0)} tokens in ${fmt(s.wall_s)} s (${fmt(s.tokens_per_s, 0)} tokens/s).</p>${dpLine}
<h2>Training loss</h2>${lineChart(series, { xLabel: 'training progress (each curve over its own steps)', yLabel: 'loss (smoothed)', logY: true, stretch: true })}
${
  r.evalCurves?.some((c) => c.points.length)
    ? `<h2>Evaluation during training</h2>${pointsChart(
        r.evalCurves.map((c, k) => ({
          label: c.label,
          points: c.points.map((p) => [p.tokens, p.accuracy] as [number, number]),
          color: k === 0 ? '#000' : '#999',
        })),
        { xLabel: 'training tokens seen', yLabel: 'held-out accuracy', yRange: [0, 1] },
      )}${pointsChart(
        r.evalCurves.map((c, k) => ({
          label: c.label,
          points: c.points.map((p) => [p.tokens, p.loss] as [number, number]),
          color: k === 0 ? '#000' : '#999',
        })),
        { xLabel: 'training tokens seen', yLabel: 'held-out loss' },
      )}`
    : ''
}
<h2>Evaluation</h2><table><tr><th>model</th><th>loss</th><th>perplexity</th><th>accuracy</th></tr>${metricRow('federated (split)', s.eval)}${metricRow('centralized baseline', s.baseline?.eval)}</table>
${generationSection(s.generation, s.baseline?.generation)}
${s.baseline ? `<p>Centralized baseline: ${fmt(s.baseline.steps, 0)} steps in ${fmt(s.baseline.wall_s)} s (${fmt(s.baseline.tokens_per_s, 0)} tokens/s).</p>` : ''}
${phaseRows ? `<h2>Where a client step's time goes</h2><p>Milliseconds per training step (waiting for the trunk includes the network, payload encryption and the server's queue).</p><div class="wide"><table><tr><th>client</th>${phaseNames.map((p) => `<th>${esc(p.replace(/_/g, ' '))}</th>`).join('')}</tr>${phaseRows}</table></div>` : ''}
<h2>Rounds</h2><div class="wide"><table><tr><th>round</th><th>wall s</th><th>train loss</th><th>clients</th><th>MiB up</th><th>MiB down</th><th>dropped</th></tr>${roundRows}</table></div>
${trafficRows ? `<h2>Traffic per client</h2><p>MiB up / down per round (tensor payload, before TLS).</p><div class="wide"><table><tr><th>round</th>${trafficClients.map((c) => `<th>${esc(c)}</th>`).join('')}</tr>${trafficRows}</table></div>` : ''}
<h2>Config</h2><pre>${esc(r.config)}</pre>
<p><small>Generated by flglm on ${new Date().toISOString()}.</small></p></body></html>`;
}
