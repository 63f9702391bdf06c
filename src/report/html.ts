/**
 * report.html: one self-contained page (inline SVG and CSS, no external assets). What a user looks
 * for first (final scores side by side, time, bytes), then the sections the live dashboard shows
 * (sections.ts, from the same records), then the long tables folded, then the config.
 */
import { esc, lineChart as drawLines, type ChartOptions } from './charts.js';
import { runView, type RunMeta, type RunRecord } from './run-view.js';
import { PAGE_CSS, sections, table } from './sections.js';

export { niceTicks, logTicks } from './charts.js';

export interface ReportInput {
  meta: RunMeta;
  /** metrics.jsonl's records. */
  records: RunRecord[];
  summary: Record<string, unknown>;
  baselineLosses?: number[];
  /** Where each client's step time went (seconds per phase, summed over the run). */
  clientPhases?: { client: string; steps: number; phases: Record<string, number> }[];
  config: string;
}

/** Series of y values at x = 0, 1, 2, ... (scripts/bench's charts). */
export function lineChart(
  series: { label: string; ys: number[]; color: string }[],
  opts: Omit<ChartOptions, 'yRange'>,
): string {
  return drawLines(
    series.map((s) => ({ ...s, points: s.ys.map((y, i) => [i, y] as [number, number]) })),
    opts,
  );
}

/** Points over a shared numeric x axis (scripts/bench's charts). */
export function pointsChart(
  series: { label: string; points: [number, number][]; color: string }[],
  opts: ChartOptions,
): string {
  return drawLines(
    series.map((s) => ({ ...s, dots: true })),
    opts,
  );
}

interface Generations {
  rouge_l_f1: number;
  exact_match: number;
  examples: number;
  samples: { prompt: string; reference: string; generated: string; rouge_l_f1: number }[];
}

type Eval = Record<string, number> | undefined;
interface Summary {
  privacy?: unknown;
  stopped?: string;
  rounds?: number;
  steps?: number;
  tokens?: number;
  wall_s?: number;
  tokens_per_s?: number;
  eval?: Eval;
  generation?: Generations;
  baseline?: { eval?: Eval; generation?: Generations; steps?: number; wall_s?: number; tokens_per_s?: number };
}

const f = (v: unknown, d = 4) => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(d) : '–');

/** The first thing on the page: each model's final scores side by side, then time and traffic. */
function finalScores(s: Summary, records: RunRecord[]): string {
  const card = (title: string, lines: [string, string][]) =>
    `<div><b>${esc(title)}</b>${lines.map(([k, v]) => `<br>${esc(k)} <b>${v}</b>`).join('')}</div>`;
  const scores = (e: Eval, g?: Generations): [string, string][] => [
    ...(e
      ? ([
          ['loss', f(e.loss)],
          ['perplexity', f(e.perplexity, 3)],
          ['accuracy', f(e.accuracy)],
        ] as [string, string][])
      : []),
    ...(g
      ? ([
          ['ROUGE-L F1', f(g.rouge_l_f1)],
          ['exact match', f(g.exact_match)],
        ] as [string, string][])
      : []),
  ];
  const rounds = records.filter((r) => r.type === 'round');
  const sum = (k: string) => rounds.reduce((a, r) => a + (Number(r[k]) || 0), 0) / 2 ** 20;
  const cards = [card('federated (split)', scores(s.eval, s.generation))];
  if (s.baseline) cards.push(card('centralized baseline', scores(s.baseline.eval, s.baseline.generation)));
  cards.push(
    card('time', [
      ['federated', `${f(s.wall_s, 1)} s`],
      ['tokens/s', f(s.tokens_per_s, 0)],
      ...(s.baseline ? ([['centralized', `${f(s.baseline.wall_s, 1)} s`]] as [string, string][]) : []),
    ]),
    card('traffic (payload)', [
      ['up', `${f(sum('bytes_up'), 1)} MiB`],
      ['down', `${f(sum('bytes_down'), 1)} MiB`],
    ]),
  );
  return `<h2>Final scores</h2><div class="scores">${cards.join('')}</div>`;
}

/** Task generate: the first held-out prompts with what each model wrote. */
function generations(fed: Generations | undefined, central: Generations | undefined): string {
  const first = (fed ?? central)?.samples;
  if (!first) return '';
  const tail = (t: string) => (t.length > 160 ? `…${t.slice(-160)}` : t);
  const head = ['prompt (end)', 'reference', ...(fed ? ['federated'] : []), ...(central ? ['centralized'] : [])];
  const rows = first.map((x, i) => [
    `<pre>${esc(tail(x.prompt))}</pre>`,
    esc(x.reference),
    ...(fed ? [esc(fed.samples[i]?.generated ?? '–')] : []),
    ...(central ? [esc(central.samples[i]?.generated ?? '–')] : []),
  ]);
  return `<h2>Example generations</h2><p>Greedy decoding (KV cache) from each held-out prompt, scored against its reference: ROUGE-L F1 over lower-cased words, exact match of the whole completion.</p>${table(head, rows, 6, 'examples')}`;
}

function phaseTable(phases: NonNullable<ReportInput['clientPhases']>): string {
  const names = [...new Set(phases.flatMap((c) => Object.keys(c.phases)))];
  if (!names.length) return '';
  const rows = phases.map((c) => [
    esc(c.client),
    ...names.map((p) => ((1000 * (c.phases[p] ?? 0)) / Math.max(1, c.steps)).toFixed(1)),
  ]);
  return `<h2>Where a client step's time goes</h2><p>Milliseconds per training step (waiting for the trunk includes the network, payload encryption and the server's queue).</p>${table(['client', ...names.map((p) => p.replace(/_/g, ' '))], rows, 16, 'clients')}`;
}

function roundTables(records: RunRecord[]): string {
  const mb = (b: unknown) => (typeof b === 'number' ? (b / 2 ** 20).toFixed(1) : '–');
  const rounds = records.filter((r) => r.type === 'round') as (RunRecord & {
    round: number;
    wall_s: number;
    train_loss: number;
    clients: string[];
    dropped: string[];
    bytes_by_client?: Record<string, [number, number]>;
  })[];
  const rows = rounds.map((x) => [
    String(x.round),
    f(x.wall_s, 1),
    f(x.train_loss),
    String(x.clients.length),
    mb(x.bytes_up),
    mb(x.bytes_down),
    esc(x.dropped.join(', ') || '–'),
  ]);
  let html = `<h2>Rounds</h2>${table(['round', 'wall s', 'train loss', 'clients', 'MiB up', 'MiB down', 'dropped'], rows, 12, 'rounds')}`;
  const who = [...new Set(rounds.flatMap((x) => Object.keys(x.bytes_by_client ?? {})))].sort();
  if (who.length) {
    const traffic = rounds.map((x) => [
      String(x.round),
      ...who.map((c) => {
        const b = x.bytes_by_client?.[c];
        return b ? `${mb(b[0])} / ${mb(b[1])}` : '–';
      }),
    ]);
    html += `<h2>Traffic per client</h2><p>MiB up / down per round (tensor payload, before TLS).</p>${table(['round', ...who], traffic, 12, 'rounds')}`;
  }
  return html;
}

export function renderReport(r: ReportInput): string {
  const s = r.summary as Summary;
  const view = runView(r.meta, r.records, { summary: r.summary, baselineLosses: r.baselineLosses });
  const fmt = (v: unknown, d = 1) => (typeof v === 'number' ? v.toFixed(d) : '–');
  const dp = s.privacy as
    { epsilon: number | null; delta: number; user_epsilon?: number; example_epsilon?: number } | undefined;
  const dpLine = dp
    ? `<p>Differential privacy: ε = ${fmt(dp.epsilon, 3)} at δ = ${dp.delta}${dp.user_epsilon !== undefined ? ` (DP-FedAvg, user-level: ${fmt(dp.user_epsilon, 3)})` : ''}${dp.example_epsilon !== undefined ? ` (h_A, example-level, largest over clients: ${fmt(dp.example_epsilon, 3)})` : ''}.${s.stopped ? ` Stopped early: ${esc(String(s.stopped))}` : ''}</p>`
    : '';
  const shared = sections(view)
    .map((x) => `<section id="${x.id}"><h2>${esc(x.title)}</h2>${x.html}</section>`)
    .join('\n');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>flglm report: ${esc(r.meta.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${PAGE_CSS}</style></head><body>
<h1>flglm run: ${esc(r.meta.name)}</h1>
<p>Mode <b>${esc(r.meta.mode)}</b>, ${view.clients.length} clients, ${fmt(s.rounds, 0)} rounds, ${fmt(s.steps, 0)} client steps, ${fmt(s.tokens, 0)} tokens in ${fmt(s.wall_s)} s (${fmt(s.tokens_per_s, 0)} tokens/s). The live dashboard shows the same: <code>flglm dashboard RUN_DIR</code>.</p>${dpLine}
${finalScores(s, r.records)}
${shared}
${phaseTable(r.clientPhases ?? [])}
${generations(s.generation, s.baseline?.generation)}
${roundTables(r.records)}
<h2>Config</h2><details><summary>config.yaml</summary><pre>${esc(r.config)}</pre></details>
<p><small>Generated by flglm on ${new Date().toISOString()}.</small></p></body></html>`;
}
