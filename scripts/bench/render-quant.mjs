// The "Quantized frozen base" section of docs/benchmarks.md (render.mjs), from quant-kernels,
// quant-step and quant-accuracy results.
export function quantSection(load, machine) {
  const k = load('quant-kernels'),
    st = load('quant-step'),
    acc = load('quant-accuracy');
  if (!k && !st && !acc) return [];
  const out = ['## 10. Quantized frozen base (`quant-kernels`, `quant-step`, `quant-accuracy`)', ''];
  const load1 = (r) => (r.load_average ?? [])[0]?.toFixed(1) ?? '?';
  if (k) {
    const s = k.shape;
    out.push(
      `\`npm run bench -- quant-kernels --runs ${s.runs}\` — ${machine(k)}; load average ${load1(k)} (host shared with other sessions)`,
      '',
      `One linear layer of Qwen2.5-0.5B's MLP, x [${s.M}, ${s.K}] @ W [${s.K}, ${s.N}], and its backward dX = dY [${s.M}, ${s.N}] @ Wᵀ, ${s.threads} ORT threads, median of ${s.runs} runs, each graph alone in its session.`,
      '',
      '| pass | kernel | ms | GFLOP/s |',
      '| --- | --- | --- | --- |',
      ...k.forward.map((r) => `| forward | ${r.name} | ${r.median_ms} | ${r.gflops} |`),
      ...k.backward.map((r) => `| backward | ${r.name} | ${r.median_ms} | ${r.gflops} |`),
      '',
    );
  }
  if (st) {
    out.push(
      `\`npm run bench -- quant-step\` — ${machine(st)}`,
      '',
      `One LoRA step (forward + backward) of the server's trunk, random weights, ${st.setup.tokens} tokens, LoRA r ${st.setup.lora.rank} on ${st.setup.lora.targets}, ${st.setup.threads} threads, one process per row (peak RSS: its maximum resident set; the base made one tensor at a time). ${st.note}.`,
      '',
      '| shape | trunk layers | frozen base | s / step | peak RSS (MiB) | load average |',
      '| --- | --- | --- | --- | --- | --- |',
      ...st.rows.map(
        (r) =>
          `| ${r.shape} | ${r.trunk_layers} | ${r.dtype} | ${r.seconds_per_step} (${r.steps.join(', ')}) | ${r.peak_rss_mib} | ${r.load_average_at_start} |`,
      ),
      '',
    );
  }
  if (acc) {
    out.push(
      `\`npm run bench -- quant-accuracy\` — ${machine(acc)}`,
      '',
      `The same LoRA fine-tune of the shipped base (${acc.setup.config}, ${acc.setup.steps} steps) with the frozen base held as each dtype; held-out loss on the same ${acc.setup.eval_batches} batches. ${acc.note}.`,
      '',
      '| task | seed | frozen base | compute | held-out loss | accuracy | train loss (last) | peak RSS (MiB) |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
      ...acc.rows.map(
        (r) =>
          `| ${r.task} | ${r.seed} | ${r.dtype} | ${r.compute} | ${r.eval_loss} | ${r.eval_accuracy.toFixed(3)} | ${r.train_loss_final} | ${r.peak_rss_mib} |`,
      ),
      '',
    );
  }
  return out;
}
