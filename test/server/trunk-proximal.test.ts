import { TrunkReplica } from '../../src/server/trunk-replica.js';
import { PRESETS } from '../../src/model/config.js';
import { initParams } from '../../src/model/params.js';
import { partParamNames } from '../../src/model/partition.js';
import { Rng } from '../../src/util/rng.js';
import { strategySchema } from '../../src/config/schema.js';

const config = { ...PRESETS.tiny };
const split = { head_blocks: 1, tail_blocks: 1 };
const store = initParams(config, 4);
const names = new Set(partParamNames('trunk', config, split, store));
const params = [...store]
  .filter(([n]) => names.has(n))
  .map(([n, t]): [string, { shape: number[]; data: Float32Array }] => [
    n,
    { shape: t.shape, data: Float32Array.from(t.data) },
  ]);
const optimizer = {
  name: 'sgd' as const,
  lr: 0.1,
  weight_decay: 0,
  betas: [0.9, 0.999] as [number, number],
  eps: 1e-8,
  momentum: 0,
  grad_clip: 0,
  grad_accum: 1,
};
const replica = (index: number, mu: number) =>
  new TrunkReplica(index, {
    model: config,
    split,
    peft: { method: 'full', lora: { rank: 1, alpha: 1, dropout: 0, targets: [] }, prefix: { length: 1 } },
    optimizer,
    schedule: { warmup_steps: 0, decay: 'constant' as const, min_lr_ratio: 1 },
    runtime: { threads: 1 },
    params,
    strategy: mu ? strategySchema.parse({ name: 'fedprox', mu }) : null,
  });

const rng = new Rng(1);
const activations = (n: number) => ({
  dtype: 'float32' as const,
  shape: [2, 8, config.hidden_size],
  data: Float32Array.from({ length: n }, () => rng.normal()),
});

test('FedProx on trunk replicas: mu (w - w_round) joins the gradient, anchored at the trunk each round starts from', async () => {
  const plain = replica(0, 0),
    prox = replica(1, 5);
  try {
    const n = 2 * 8 * config.hidden_size;
    const step = async (key: string, hA: ReturnType<typeof activations>, dhB: ReturnType<typeof activations>) => {
      const norms: number[] = [];
      for (const r of [plain, prox]) {
        await r.request('forward', { key, keep: true, hA });
        norms.push((await r.request('backward', { key, dhB })).gradNorm);
        await r.request('apply', { key, norm: 1 });
      }
      return norms;
    };
    const startRound = () => Promise.all([plain, prox].map((r) => r.startRound(10)));
    await startRound();
    const [a1, b1] = await step('1', activations(n), activations(n));
    expect(b1).toBeCloseTo(a1, 6); // at the anchor the term is zero
    const [a2, b2] = await step('2', activations(n), activations(n));
    expect(Math.abs(b2 - a2)).toBeGreaterThan(1e-3); // both moved the same way; the pull shows
    // Averaged parameters arrive and the next round starts: the anchor is the new trunk, so the term is zero again.
    const now = await plain.getParams();
    await plain.setParams(now.map(([k, d]) => [k, d.slice()]));
    await prox.setParams(now.map(([k, d]) => [k, d.slice()]));
    await startRound();
    const [a3, b3] = await step('3', activations(n), activations(n));
    expect(b3).toBeCloseTo(a3, 6);
  } finally {
    await plain.close();
    await prox.close();
  }
}, 60000);
