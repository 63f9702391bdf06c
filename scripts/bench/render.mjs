// Regenerate docs/benchmarks.md (and the SVG plots beside it) from bench-results/*.json.
// Usage: npm run bench -- render   (every benchmark also calls this when it finishes)
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dist, mean, median, root } from './common.mjs';

const { lineChart } = await import(dist('report/html.js'));
const load = (name) => {
  const f = join(root, 'bench-results', `${name}.json`);
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null;
};
const f0 = (x) => (typeof x === 'number' ? x.toFixed(0) : '–');
const f2 = (x) => (typeof x === 'number' ? x.toFixed(2) : '–');
const f3 = (x) => (typeof x === 'number' ? x.toFixed(3) : '–');
const mmm = (s, f = f0) => (s ? `${f(s.median)} (${f(s.min)}–${f(s.max)})` : '–');
const machine = (r) =>
  `${r.machine.cores} × ${r.machine.cpu}, Node ${r.machine.node}${r.machine.malloc ? `, malloc: ${r.machine.malloc}` : ''}, ${r.machine.date.slice(0, 10)}`;
const out = [
  '# Benchmarks',
  '',
  'Every figure is measured by the command shown, on the machine shown; comparisons are measured side by side in the same run. Medians with (min–max) over runs. Regenerate with `npm run bench -- NAME` (writes `bench-results/NAME.json` and this page).',
  '',
];

for (const [k, tc] of [
  ['train-core', load('train-core')],
  ['train-core-base', load('train-core-base')],
  ['train-core-custom', load('train-core-custom')],
]) {
  if (!tc) continue;
  out.push(
    k === 'train-core'
      ? '## 1. Training core (`train-core`)'
      : k === 'train-core-base'
        ? '### The same step for the `base` preset'
        : '### The same step for a ~10M-parameter configuration',
    '',
    `\`${tc.command}\` — ${machine(tc)}`,
    '',
    `Model \`${typeof tc.preset === 'string' ? tc.preset : JSON.stringify(tc.preset)}\` (${(tc.parameters / 1e6).toFixed(1)}M parameters), batch ${tc.batch} × ${tc.seq} tokens, ${tc.threads} threads. MatMul peak of ONNX Runtime measured in the same run: **${f0(tc.matmul_peak_gflops)} GFLOP/s**${tc.best_gemm_gflops ? `; the machine's best float32 GEMM (the faster of ORT's and PyTorch's): **${f0(tc.best_gemm_gflops)} GFLOP/s**` : ''}. Model FLOPs per step: ${f2(tc.model_gflop_per_step)} GFLOP (6·N per token plus 12·L·d·S per token for attention).`,
    '',
    ...(tc.torch.candidates
      ? [
          'PyTorch setups tried (float32 MatMul 1024³, same threads): ' +
            tc.torch.candidates.map((c) => `${c.label} ${c.matmul_gflops} GFLOP/s`).join('; ') +
            ". Each interpreter's step ran with its fastest kernel" +
            (tc.torch.steps_tried
              ? ` (${tc.torch.steps_tried.map((t) => `${t.label}: ${t.tokens_per_s ?? t.error} tokens/s`).join('; ')})`
              : '') +
            `; the row below is the fastest step: ${tc.torch.label}.`,
          '',
        ]
      : []),
    '| | step s | tokens/s | MFU vs ORT peak | MFU vs best GEMM |',
    '| --- | --- | --- | --- | --- |',
    `| flglm (forward + backward + AdamW, one ONNX graph) | ${mmm(tc.flglm.step_s, f2)} | ${f0(tc.flglm.tokens_per_s)} | ${f2(tc.flglm.mfu)} | ${tc.flglm.mfu_best_gemm ? f2(tc.flglm.mfu_best_gemm) : '–'} |`,
    tc.torch.available
      ? `| ${tc.torch.label ?? `PyTorch ${tc.torch.version}`} eager (MatMul ${f0(tc.torch.matmul_gflops)} GFLOP/s) | ${mmm(tc.torch.step_s, f2)} | ${f0(tc.torch.tokens_per_s)} | ${f2(tc.torch.mfu)} | ${tc.torch.mfu_best_gemm ? f2(tc.torch.mfu_best_gemm) : '–'} |`
      : `| PyTorch | ${tc.torch.note} | | | |`,
    '',
    tc.speedup_vs_torch
      ? `flglm runs the same step **${tc.speedup_vs_torch.toFixed(2)}×** faster than PyTorch eager at its best here. Of flglm's step, ${f0((100 * tc.flglm.optimizer_s.median) / tc.flglm.step_s.median)}% is the JS AdamW loop, the rest is the ONNX Runtime graph.`
      : '',
    '',
  );
}

const rc = load('recompute');
if (rc) {
  out.push(
    '### Recompute vs carry saved activations (`recompute`)',
    '',
    `\`${rc.command}\` — ${machine(rc)}`,
    '',
    `Forward + backward of a part per step${rc.pairs ? `, ${rc.pairs} interleaved pairs, threads not spinning (as in federated processes)` : ''}. *recompute*: the backward program runs the forward again. *carry*: the forward program also returns every activation the backward needs, which goes back in as inputs (onnxruntime-node copies each output). flglm recomputes in every part (src/training/part-executor.ts).`,
    '',
    '| part | recompute s | carry s | saved tensors | saved MiB | carry speed-up (pairwise median) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...Object.entries(rc.parts).map(
      ([p, r]) =>
        `| ${p} | ${mmm(r.recompute_s, f3)} | ${mmm(r.carry_s, f3)} | ${r.saved_tensors} | ${f0(r.saved_mib)} | ${f2(r.pairwise_carry_speedup ?? r.carry_speedup)}× |`,
    ),
    '',
  );
}

const so = load('split-overhead');
if (so) {
  out.push(
    '## 2. Split overhead (`split-overhead`)',
    '',
    `\`${so.command}\` — ${machine(so)}`,
    '',
    `Model \`${so.model}\`, batch ${so.batch} × ${so.seq}; each step moves four tensors of ${f2(so.activation_mib)} MiB (h_A, h_B, dL/dh_B, dL/dh_A). Centralized: the unsplit step in a \`flglm train\` process. Split: one client and the server as separate processes over loopback gRPC (\`flglm run\`), steady state (rounds 2+). Same data and config, runs interleaved.`,
    '',
    '| | tokens/s | × centralized |',
    '| --- | --- | --- |',
    `| centralized | ${mmm(so.centralized)} | 1.00 |`,
    ...Object.entries(so.split).map(([k, s]) => `| split, ${k} | ${mmm(s)} | ${f2(so.ratio_to_centralized[k])} |`),
    '',
  );
  if (so.client_phases_ms) {
    const phases = Object.keys(Object.values(so.client_phases_ms)[0] ?? {});
    out.push(
      "Where the client's step goes (ms per step, its own account after the first step; median over runs):",
      '',
      `| | ${phases.join(' | ')} |`,
      `| --- | ${phases.map(() => '---').join(' | ')} |`,
      ...Object.entries(so.client_phases_ms).map(([k, ph]) => `| ${k} | ${phases.map((p) => f0(ph[p])).join(' | ')} |`),
      '',
    );
  }
}

const cr = load('crypto');
if (cr) {
  out.push(
    '## 3. Crypto (`crypto`)',
    '',
    `\`${cr.command}\` — ${machine(cr)}`,
    '',
    `RSA-OAEP-SHA256 (${cr.rsa.key_bits}-bit): wrap ${mmm(cr.rsa.wrap_ms, f2)} ms, unwrap ${mmm(cr.rsa.unwrap_ms, f2)} ms (once per client per round).`,
    '',
    '| activation | AES-256-GCM seal ms | seal + open ms | GB/s (seal) |',
    '| --- | --- | --- | --- |',
    ...Object.entries(cr.aes_gcm).map(
      ([k, v]) => `| ${k} | ${mmm(v.seal_ms, f2)} | ${mmm(v.seal_open_ms, f2)} | ${f2(v.gb_per_s)} |`,
    ),
    '',
  );
}

const mo = load('modes');
if (mo) {
  out.push(
    '## 4. Server modes (`modes`)',
    '',
    `\`${mo.command}\` — ${machine(mo)}`,
    '',
    `Time of one round over the same ${mo.examples_per_round} examples (8 client steps of ${mo.batch} × ${mo.seq}), split among N clients, mTLS + payload encryption, \`${mo.model}\` model. "wan" adds 20 ms RTT and 100 Mbit/s per client link.`,
    '',
  );
  for (const [link, byMode] of Object.entries(mo.epoch_s)) {
    const ns = Object.keys(Object.values(byMode)[0]);
    const from = mo.links?.[link];
    const runs = from
      ? `${from.runs === 1 ? 'one run per cell' : `median (min–max) of ${from.runs} runs per cell`}; \`${from.command}\`, ${from.date.slice(0, 10)}${from.note ? `; ${from.note}` : ''}`
      : 'median (min–max)';
    out.push(
      `**${link}** (seconds per round; ${runs})`,
      '',
      `| mode | ${ns.map((n) => `${n} clients`).join(' | ')} |`,
      `| --- | ${ns.map(() => '---').join(' | ')} |`,
      ...Object.entries(byMode).map(([m, byN]) => `| ${m} | ${ns.map((n) => mmm(byN[n], f2)).join(' | ')} |`),
      '',
    );
    const svg = lineChart(
      Object.entries(byMode).map(([m, byN], k) => ({
        label: m,
        ys: ns.map((n) => byN[n].median),
        color: ['#1f77b4', '#ff7f0e', '#2ca02c'][k],
      })),
      { xLabel: `clients (${ns.join(', ')})`, yLabel: 'seconds per round' },
    );
    writeFileSync(join(root, 'docs', `modes-${link}.svg`), svg);
    out.push(`![modes, ${link}](modes-${link}.svg)`, '');
  }
}

const sc = load('scale');
if (sc) {
  out.push(
    '## 5. Scale (`scale`)',
    '',
    `\`${sc.command}\` — ${machine(sc)}`,
    '',
    `Simulated clients (in one process) against one server process, ${sc.mode} mode, \`${sc.model}\` model, batch ${sc.batch} × ${sc.seq}.`,
    '',
    '| clients | round s (rounds 2+) | server RSS idle MiB | server RSS peak MiB |',
    '| --- | --- | --- | --- |',
    ...sc.points.map(
      (p) =>
        `| ${p.clients} | ${p.round_s.map(f2).join(', ')} | ${f0(p.server_rss_idle_mib)} | ${f0(p.server_rss_peak_mib)} |`,
    ),
    '',
  );
  writeFileSync(
    join(root, 'docs', 'scale.svg'),
    lineChart([{ label: 'round s', ys: sc.points.map((p) => mean(p.round_s)), color: '#1f77b4' }], {
      xLabel: `clients (${sc.points.map((p) => p.clients).join(', ')})`,
      yLabel: 'seconds per round',
    }),
  );
  out.push('![scale](scale.svg)', '');
}

/** Federated vs centralized at an equal budget: classify (accuracy) or generate (ROUGE-L F1). */
async function parityTable(pa, title, name) {
  const pct = (x) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(3) : '–');
  const metric = pa.metric ?? 'accuracy';
  const target = pa.target_accuracy;
  const gen = name === 'parity-generate';
  out.push(
    title,
    '',
    `${(pa.commands ?? [pa.command]).map((c) => `\`${c}\``).join(', then ')} — ${machine(pa)}`,
    '',
    `Base config \`${pa.base}\`: ${pa.budget.clients} clients, ${pa.budget.rounds} rounds × ${pa.budget.local_steps} local steps, batch ${pa.budget.batch} × ${pa.budget.seq} — the same token budget for every row (a setup's \`@R×S\` changes only how the budget is cut into rounds). ${gen ? "ROUGE-L F1 of the final model's greedy generations (KV cache) on the held-out prompts, mean ± sd over seeds, with exact match beside it; the curves are the held-out loss on the completions during training (teacher-forced)." : `Accuracy on the held-out split, mean ± sd over seeds; *tokens to ${target}*: first evaluation at or above it (a federated row and its centralized row evaluate at the same token cadence), mean over the seeds that reached it.`}`,
    '',
    gen
      ? `| partition | setup | ${metric} | exact match | gap to centralized (points) | wall s |`
      : `| partition | setup | accuracy | gap to centralized (points) | seeds reaching ${target} | tokens to ${target} (× centralized) | eval every (rounds) | wall s |`,
    gen ? '| --- | --- | --- | --- | --- | --- |' : '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...Object.entries(pa.cells).map(([key, c]) => {
      const [partition, setup] = key.split('|');
      const gap = typeof c.gap_points === 'number' ? c.gap_points.toFixed(1) : '–';
      if (gen)
        return `| ${partition} | ${setup} | ${pct(c.accuracy_mean)} ± ${pct(c.accuracy_sd)} | ${pct(c.exact_match_mean)} | ${gap} | ${f0(c.wall_s_mean)} |`;
      // Cells from before the cadence was recorded evaluated every 13 rounds; @R×S setups only at their round ends.
      const every = setup.includes('@') ? 'round ends' : (c.eval_every_rounds ?? 13);
      return `| ${partition} | ${setup} | ${pct(c.accuracy_mean)} ± ${pct(c.accuracy_sd)} | ${gap} | ${c.reached_target}/${c.runs.length} | ${c.tokens_to_target_mean ? `${f0(c.tokens_to_target_mean)}${c.tokens_to_target_ratio ? ` (${f2(c.tokens_to_target_ratio)}×)` : ''}` : '–'} | ${every} | ${f0(c.wall_s_mean)} |`;
    }),
    '',
  );
  for (const partition of [...new Set(Object.keys(pa.cells).map((k) => k.split('|')[0]))]) {
    const cells = Object.entries(pa.cells).filter(([k]) => k.startsWith(`${partition}|`));
    const file = `${name}-${partition.replace(/[^a-z0-9.]/gi, '_')}.svg`;
    const { pointsChart } = await import(dist('report/html.js'));
    const colors = ['#999', '#000', '#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
    writeFileSync(
      join(root, 'docs', file),
      pointsChart(
        cells.map(([k, c], i) => {
          const byTokens = new Map();
          for (const r of c.runs)
            for (const p of r.curve)
              (byTokens.get(p.tokens) ?? byTokens.set(p.tokens, []).get(p.tokens)).push(gen ? p.loss : p.accuracy);
          return {
            label: k.split('|')[1],
            points: [...byTokens].sort((x, y) => x[0] - y[0]).map(([t, xs]) => [t, mean(xs)]),
            color: colors[i % colors.length],
          };
        }),
        gen
          ? {
              xLabel: 'training tokens seen',
              yLabel: `held-out loss per completion token (${partition}, mean over seeds)`,
            }
          : {
              xLabel: 'training tokens seen',
              yLabel: `held-out accuracy (${partition}, mean over seeds)`,
              yRange: [0, 1],
            },
      ),
    );
    out.push(`![${name}, ${partition}](${file})`, '');
  }
}
const pa = load('parity');
if (pa) await parityTable(pa, '## 6. Federated vs centralized quality (`parity`)', 'parity');
const pg = load('parity-generate');
if (pg) await parityTable(pg, '### The generation task (`parity` with `configs/generate.yaml`)', 'parity-generate');

const dord = load('data-order');
if (dord) {
  out.push(
    '### Why: the order in which the model sees the silos (`data-order`)',
    '',
    `${(dord.commands ?? [dord.command]).map((c) => `\`${c}\``).join(', then ')} — ${machine(dord)}`,
    '',
    `No federation at all: the centralized model (one process, one optimizer) on the quickstart data (\`${dord.config}\`), fed the shuffled union, or batches from the silos in blocks of K consecutive steps per silo, round-robin — the order in which a federated model's client parts see the data when each client trains K local steps per turn. Held-out accuracy by step:`,
    '',
    `| order | ${dord.runs[Object.keys(dord.runs)[0]][0].map((p) => `step ${p.step}`).join(' | ')} |`,
    `| --- | ${dord.runs[Object.keys(dord.runs)[0]][0].map(() => '---').join(' | ')} |`,
    ...Object.entries(dord.runs).flatMap(([k, curves]) =>
      curves.map(
        (c, i) =>
          `| ${k}${curves.length > 1 ? ` (seed +${i})` : ''} | ${c.map((p) => p.accuracy.toFixed(3)).join(' | ')} |`,
      ),
    ),
    '',
  );
}

const rcost = load('round-cost');
if (rcost) {
  const f2s = (x) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(2) : '–');
  out.push(
    '### What a round costs (`round-cost`)',
    '',
    `\`${rcost.command}\` — ${machine(rcost)}`,
    '',
    `The same client steps (${rcost.rows[0]?.budget_steps_per_client} per client) cut into ${rcost.rows[0]?.few_rounds} long rounds and ${rcost.rows[0]?.many_rounds} short ones, base \`${rcost.base}\` (3 clients, \`small\`, 8 × 128, mTLS + payload encryption, loopback); *extra round* = the difference in the rounds' wall time over the difference in rounds. *Round end* is the server's part after the last update arrived (means over the short rounds).`,
    '',
    '| setup | MiB per round | short round (s) | extra round (s) | secure aggregation (s) | aggregate (s) | send result (s) | average replicas (s) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rcost.rows.map(
      (r) =>
        `| ${r.setup.replace(/\|/g, ' ')} | ${r.mib_per_round.toFixed(1)} | ${f2s(mean(r.rounds_s_many) / r.many_rounds)} | ${f2s(r.extra_round_s)} | ${r.round_end_s.secure_aggregation_s === undefined ? '–' : f2s(r.round_end_s.secure_aggregation_s)} | ${f2s(r.round_end_s.aggregate_s)} | ${f2s(r.round_end_s.broadcast_s)} | ${f2s(r.round_end_s.replicas_s)} |`,
    ),
    '',
  );
}

for (const [i, sac] of ['secagg-cost', 'secagg-cost-13steps'].map(load).filter(Boolean).entries()) {
  const f = (x) => (typeof x === 'number' ? x.toFixed(3) : '–');
  out.push(
    ...(i === 0 ? ['### What secure aggregation costs (`secagg-cost`)', ''] : []),
    `\`${sac.command}\` — ${machine(sac)}`,
    '',
    `The same federation (${sac.clients} clients, hierarchical FedAvg, \`small\`, 8 × 128, mTLS + payload encryption, loopback; ${sac.steps_per_round} local steps per client per round${sac.steps_per_round <= 2 ? ", the hard case: the exchanges cost the same whatever a round's length" : ''}) run plain and with each option, interleaved; *round* is the median wall time of rounds 2–${sac.rounds} of a run, *× plain* each run against the plain run next to it. *Exchanges*: the server's secure-aggregation seconds per round (keys, shares, masked inputs — which carry the parameters a plain round uploads too — reveal, unmask).`,
    '',
    '| setup | round (s), per repeat | × plain, per repeat | median × plain | MiB per round | secure aggregation (s) | keys / shares / masked / reveal / unmask (s) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...sac.rows.map(
      (r) =>
        `| ${r.setup} | ${r.round_s.map((x) => x.toFixed(2)).join(', ')} | ${r.x_plain.map((x) => x.toFixed(2)).join(', ')} | ${r.median_x_plain.toFixed(2)} | ${r.mib_per_round} | ${f(r.secure_aggregation_s)} | ${r.phases ? ['keys_s', 'shares_s', 'masked_s', 'reveal_s', 'unmask_s'].map((k) => f(r.phases[k])).join(' / ') : '–'} |`,
    ),
    '',
  );
}

const ad = load('activation-dtype');
if (ad) {
  const ref = ad.rows.find((r) => r.dtype === 'fp32');
  out.push(
    '### Activations on the wire (`activation-dtype`)',
    '',
    `\`${ad.command}\` — ${machine(ad)}`,
    '',
    '`transport.activation_dtype`: h_A, h_B and both gradients in half precision before encryption. Accuracy: the quickstart (relay, 156 steps) per seed; WAN: round 2 of the sequential `small` setup of §4 (2 clients × 4 steps) over 20 ms RTT and 100 Mbit/s per client, with mTLS and payload encryption; its bytes include the round-end parameters, which stay float32.',
    '',
    '| dtype | quickstart accuracy (per seed) | WAN round (s) | × fp32 | MiB per round | × fp32 |',
    '| --- | --- | --- | --- | --- | --- |',
    ...ad.rows.map(
      (r) =>
        `| ${r.dtype} | ${r.accuracy.map((a) => a.toFixed(3)).join(', ')} (mean ${mean(r.accuracy).toFixed(3)}) | ${r.wan_round_s.toFixed(2)} | ${ref ? (r.wan_round_s / ref.wan_round_s).toFixed(2) : '–'} | ${r.mib_per_round.toFixed(1)} | ${ref ? (r.mib_per_round / ref.mib_per_round).toFixed(2) : '–'} |`,
    ),
    '',
  );
}

const sg = load('split-generate');
if (sg) {
  const r = sg.results;
  const range = (xs) => (xs && xs.length > 1 ? ` (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))})` : '');
  const t = (x) => (x ? `${Math.round(x.tokens_per_s)}${range(x.runs)}` : '–');
  const xLocal = (v) =>
    v.cached.x_local_per_pair
      ? `${median(v.cached.x_local_per_pair).toFixed(2)} (${v.cached.x_local_per_pair.map((x) => x.toFixed(2)).join(', ')})`
      : (v.cached.tokens_per_s / r.local_cached.tokens_per_s).toFixed(2);
  out.push(
    '## 8. Split generation (`split-generate`)',
    '',
    `\`${sg.command}\` — ${machine(sg)}`,
    '',
    `${sg.model}; prompt ${sg.prompt_tokens} tokens, ${sg.new_tokens} new tokens, batch 1. *Split*: head and tail in the benchmark's process, the trunk in a \`flglm server --serve\` process (plaintext on loopback; "rtt" adds a simulated link). *Without a cache*: every token recomputes the whole sequence (split: a fresh session that sends all of it). The server's KV cache: ${(sg.server_cache_bytes_per_sequence / 2 ** 20).toFixed(2)} MiB per sequence.`,
    '',
    '| | tokens/s, with KV cache (median, min–max) | without | speed-up from the cache | × local (with cache; loopback: median of local/split pairs run back to back, each pair) |',
    '| --- | --- | --- | --- | --- |',
    `| local (merged model) | ${t(r.local_cached)} | ${t(r.local_uncached)} | ${(r.local_cached.tokens_per_s / r.local_uncached.tokens_per_s).toFixed(1)}× | 1.00 |`,
    ...Object.entries(r)
      .filter(([k]) => k.startsWith('loopback') || k.startsWith('rtt'))
      .map(
        ([k, v]) =>
          `| split, ${k.replace('_', ' ')} | ${t(v.cached)} | ${t(v.uncached)} | ${(v.cached.tokens_per_s / v.uncached.tokens_per_s).toFixed(1)}× | ${xLocal(v)} |`,
      ),
    '',
  );
  const conc = r.loopback?.concurrent ?? [];
  if (conc.length)
    out.push(
      "Concurrent split sessions on loopback (decode steps batched on the server). *Trunk*: the serving trunk's own seconds (its `serving_idle` log event): decode rows per second of trunk time is what the server can serve when the clients run on machines of their own; here all clients run in the benchmark's one process, on the same 2 cores as the server.",
      '',
      '| clients | aggregate tokens/s | per client | × one client | rows per decode batch | trunk: rows per trunk-second | × one client | server RSS (MiB) | same tokens as local |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...conc.map(
        (c) =>
          `| ${c.clients} | ${Math.round(c.aggregate_tokens_per_s)} | ${Math.round(c.per_client_tokens_per_s)} | ${(c.aggregate_tokens_per_s / conc[0].aggregate_tokens_per_s).toFixed(1)} | ${c.trunk ? (c.trunk.decode_rows / c.trunk.decode_batches).toFixed(1) : '–'} | ${c.trunk ? Math.round(c.trunk.rows_per_trunk_s) : '–'} | ${c.trunk && conc[0].trunk ? (c.trunk.rows_per_trunk_s / conc[0].trunk.rows_per_trunk_s).toFixed(1) : '–'} | ${c.server_rss_mib} | ${c.all_same_as_local ? 'yes' : 'no'} |`,
      ),
      '',
    );
}

for (const [rsName, rsTitle] of [
  ['real-shapes', '## 7. Real model shapes (`real-shapes`)'],
  [
    'real-shapes-qwen',
    '### Qwen2.5-0.5B re-run, one-process rows without evaluation gaps (`real-shapes --result real-shapes-qwen`)',
  ],
]) {
  const rs = load(rsName);
  if (rs && rs.results?.[0]?.rows) {
    const rssOf = (r) => {
      const m = r.peak_rss_mib ?? {};
      if (m.process !== undefined) return `${m.process}`;
      const { server, ...cl } = m;
      return `server ${server}, client${Object.keys(cl).length > 1 ? 's' : ''} ${Object.values(cl).join(', ')}`;
    };
    out.push(
      rsTitle,
      '',
      `\`${rs.command}\` — ${machine(rs)}`,
      '',
      `LoRA fine-tuning with ${rs.setup}. Steady-state seconds per step (flglm: gaps between step records after the first round, which compiles every program; PyTorch: median after a warm-up step); peak memory is each process's own maximum resident set.`,
      '',
    );
    for (const { shape, rows } of rs.results) {
      // The reference: the fastest float32 PyTorch row (the peer at its best, same precision).
      const fastest = (dtype) =>
        rows
          .filter((r) => r.impl.startsWith('PyTorch') && r.impl.includes(`(${dtype})`) && r.seconds_per_step)
          .sort((a, b) => a.seconds_per_step - b.seconds_per_step)[0];
      const [ref, ref16] = [fastest('fp32'), fastest('bf16')];
      const x = (r, base) => (base ? (r.seconds_per_step / base.seconds_per_step).toFixed(2) : '–');
      out.push(
        `**${shape}**`,
        '',
        '| | s / step | tokens/s | × fastest PyTorch fp32 time | × fastest PyTorch bf16 time | peak RSS (MiB) |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows.map((r) =>
          r.skipped
            ? `| ${r.impl} | skipped: ${r.skipped} | | | | |`
            : `| ${r.impl} | ${r.seconds_per_step} | ${r.tokens_per_s} | ${x(r, ref)} | ${x(r, ref16)} | ${rssOf(r)} |`,
        ),
        '',
      );
    }
  }
}
const ma = load('memory-arena');
if (ma) {
  out.push(
    '### Peak memory against step time (`memory-arena`)',
    '',
    `\`${ma.command}\` — ${machine(ma)}`,
    '',
    `${ma.shape}; frozen weights as float16 (\`model.frozen_dtype: auto\`, the checkpoint is BF16) or float32, \`runtime.memory_arena\` on (ONNX Runtime's default) and off; one run each, one after the other.`,
    '',
    '| model.frozen_dtype | runtime.memory_arena | s / step | peak RSS (MiB) |',
    '| --- | --- | --- | --- |',
    ...ma.rows.map(
      (r) =>
        `| ${r.frozen_dtype ?? 'float32'} | ${r.memory_arena} | ${r.seconds_per_step} (${r.gaps_s.join(', ')}) | ${r.peak_rss_mib} |`,
    ),
    '',
  );
}
const mc = load('malloc');
if (mc) {
  const clients = (rss) =>
    Object.entries(rss)
      .filter(([k]) => k !== 'server')
      .map(([, v]) => v)
      .join(', ');
  out.push(
    '### glibc malloc settings (`malloc`)',
    '',
    `\`${mc.command}\` — ${machine(mc)}`,
    '',
    "glibc's defaults against the settings flglm's launcher, Docker image and benchmarks use (src/util/malloc-env.ts: freed memory stays in the heap), interleaved pair by pair. Centralized: a `small` 8 × 128 full fine-tuning step in one `flglm train`; split: the same step with 1 client, mutual TLS + AES-GCM, `flglm run` (rounds 2+).",
    '',
    '| pair | malloc | centralized s / step | peak RSS (MiB) | split s / step | server / client peak RSS (MiB) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...mc.rows.map(
      (r) =>
        `| ${r.pair} | ${r.malloc} | ${r.centralized.step_s.toFixed(3)} | ${r.centralized.peak_rss_mib} | ${r.split.step_s.toFixed(3)} | ${r.split.peak_rss_mib.server} / ${clients(r.split.peak_rss_mib)} |`,
    ),
    '',
  );
}
const pre = load('pretrain');
if (pre && pre.steps >= 100) {
  out.push(
    '## 9. Pretraining the shipped base (`scripts/pretrain-base.mjs`)',
    '',
    `\`${pre.command}\` — ${machine(pre)}`,
    '',
    `${pre.steps} steps, ${(pre.tokens / 1e6).toFixed(1)} M tokens in ${(pre.wall_s / 60).toFixed(0)} min (${Math.round(pre.tokens_per_s)} tokens/s): held-out loss ${pre.eval.loss.toFixed(3)} per byte, next-byte accuracy ${pre.eval.accuracy.toFixed(3)}. See docs/pretraining.md.`,
    '',
  );
}

out.push(...(await import('./render-quant.mjs')).quantSection(load, machine));

const notes = join(root, 'docs', 'benchmarks-notes.md');
if (existsSync(notes)) out.push(readFileSync(notes, 'utf8'));
writeFileSync(join(root, 'docs', 'benchmarks.md'), out.join('\n') + '\n');
console.log('wrote docs/benchmarks.md');
