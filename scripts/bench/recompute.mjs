// Recompute the forward inside the backward program (flglm's default) vs carry the saved
// activations from the forward program to the backward one. Times forward + backward of the
// trunk and head of a preset, per step, in interleaved pairs (the order alternating), with ORT's
// threads not spinning as in federated processes.
// Usage: npm run bench -- recompute [preset=small] [batch=8] [seq=128] [pairs=20]
import { dist, median, stats, writeResult } from './common.mjs';

const [preset = 'small', batch = '8', seq = '128', runs = '20'] = process.argv.slice(2);
const B = Number(batch),
  S = Number(seq),
  R = Number(runs);
const { PRESETS } = await import(dist('model/config.js'));
const { initParams } = await import(dist('model/params.js'));
const { buildPartProgram } = await import(dist('model/partition.js'));
const { cutAtUpstream } = await import(dist('graph/cut.js'));
const { CompiledGraph } = await import(dist('runtime/session.js'));
const { tensor } = await import(dist('runtime/tensor.js'));

const c = PRESETS[preset];
const split = { head_blocks: 1, tail_blocks: 1 };
const peft = { method: 'full', lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q'] }, prefix: { length: 4 } };
const store = initParams(c, 1);
const result = {
  command: `npm run bench -- recompute ${preset} ${B} ${S} ${R}`,
  preset,
  batch: B,
  seq: S,
  pairs: R,
  parts: {},
};

for (const part of ['trunk', 'head']) {
  const input =
    part === 'head'
      ? {
          name: 'tokens',
          t: tensor(
            'int64',
            [B, S],
            Array.from({ length: B * S }, (_, i) => i % 256),
          ),
        }
      : {
          name: 'h_A',
          t: tensor(
            'float32',
            [B, S, c.hidden_size],
            Float32Array.from({ length: B * S * c.hidden_size }, () => Math.random() - 0.5),
          ),
        };
  const upName = part === 'head' ? 'grad_h_A' : 'grad_h_B';
  const fwdProg = buildPartProgram(part, 'forward', c, split, peft, store, B, S);
  const bwdProg = buildPartProgram(part, 'backward', c, split, peft, store, B, S);
  const params = Object.fromEntries(
    bwdProg.trainable.map((n) => [n, { dtype: 'float32', shape: store.get(n).shape, data: store.get(n).data }]),
  );
  const up = tensor(
    'float32',
    [B, S, c.hidden_size],
    Float32Array.from({ length: B * S * c.hidden_size }, () => Math.random() - 0.5),
  );
  // recompute: forward program, then a backward program that runs the forward again
  const rt = { spinning: false };
  const fwd = await CompiledGraph.create(fwdProg.graph, rt);
  const bwd = await CompiledGraph.create(bwdProg.graph, rt);
  // carry: forward program returns the saved activations, backward program takes them
  const cut = cutAtUpstream(
    bwdProg.graph,
    bwdProg.graph.inputs.find((v) => v.name === upName),
    [bwdProg.forwardOutput],
  );
  const cf = await CompiledGraph.create(cut.forward, rt);
  const cb = await CompiledGraph.create(cut.backward, rt);
  const savedBytes = cut.saved.reduce((a, v) => a + v.size * 4, 0);
  const ways = {
    // recompute: forward program, then a backward program that runs the forward again
    recompute: async () => {
      await fwd.run({ [input.name]: input.t, ...params });
      await bwd.run({ [input.name]: input.t, [upName]: up, ...params });
    },
    carry: async () => {
      const saved = await cf.run({ [input.name]: input.t, ...params });
      const feeds = { [upName]: up };
      for (const v of cut.backward.inputs)
        if (v.name !== upName)
          feeds[v.name] = saved[v.name] ?? params[v.name] ?? (v.name === input.name ? input.t : undefined);
      await cb.run(feeds);
    },
  };
  for (const f of [...Object.values(ways), ...Object.values(ways)]) await f(); // compile, first-run allocations
  const xs = { recompute: [], carry: [] };
  for (let i = 0; i < R; i++) {
    for (const k of i % 2 ? ['recompute', 'carry'] : ['carry', 'recompute']) {
      const t0 = performance.now();
      await ways[k]();
      xs[k].push((performance.now() - t0) / 1000);
    }
  }
  const recompute = stats(xs.recompute),
    carry = stats(xs.carry);
  result.parts[part] = {
    recompute_s: recompute,
    carry_s: carry,
    saved_tensors: cut.saved.length,
    saved_mib: savedBytes / 2 ** 20,
    carry_speedup: recompute.median / carry.median,
    pairwise_carry_speedup: median(xs.recompute.map((r, i) => r / xs.carry[i])),
  };
  console.error(
    `${part}: recompute ${recompute.median.toFixed(3)} s, carry ${carry.median.toFixed(3)} s (${cut.saved.length} tensors, ${(savedBytes / 2 ** 20).toFixed(0)} MiB saved)`,
  );
  for (const s of [fwd, bwd, cf, cb]) await s.release();
}
console.log(JSON.stringify(result, null, 2));
writeResult('recompute', result);
