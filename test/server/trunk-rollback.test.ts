import { TrunkReplica } from '../../src/server/trunk-replica.js';
import { PRESETS } from '../../src/model/config.js';
import { initParams } from '../../src/model/params.js';
import { partParamNames } from '../../src/model/partition.js';
import { Rng } from '../../src/util/rng.js';

// Issue 28, item 3: a trunk must never train on once it went non-finite. Fault injected: a learning
// rate so large that one step overflows float32.
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
const replica = (lr: number) =>
  new TrunkReplica(0, {
    model: config,
    split,
    peft: { method: 'full', lora: { rank: 1, alpha: 1, dropout: 0, targets: [] }, prefix: { length: 1 } },
    optimizer: {
      name: 'sgd',
      lr,
      weight_decay: 0,
      betas: [0.9, 0.999],
      eps: 1e-8,
      momentum: 0,
      grad_clip: 0,
      grad_accum: 1,
    },
    schedule: { warmup_steps: 0, decay: 'constant', min_lr_ratio: 1 },
    runtime: { threads: 1 },
    params,
  });

const rng = new Rng(1);
const tensor = (scale = 1) => ({
  dtype: 'float32' as const,
  shape: [2, 8, config.hidden_size],
  data: Float32Array.from({ length: 2 * 8 * config.hidden_size }, () => scale * rng.normal()),
});

test('a step that makes the trunk non-finite is refused and the trunk is back at the start of the round', async () => {
  const r = replica(1e300);
  try {
    await r.startRound(10);
    const before = await r.getParams();
    await r.request('forward', { key: 'a', keep: true, hA: tensor() });
    await r.request('backward', { key: 'a', dhB: tensor() });
    await expect(r.request('apply', { key: 'a', norm: 1 })).rejects.toThrow(
      'the trunk went non-finite at this step: it is back at the start of the round',
    );
    expect(await r.getParams()).toEqual(before);
    // It trains on from there: the next forward is finite.
    const hB = await r.request('forward', { key: 'b', keep: false, hA: tensor() });
    expect((hB.data as Float32Array).every(Number.isFinite)).toBe(true);
  } finally {
    await r.close();
  }
}, 60000);

test('a gradient that overflows is refused before it is applied', async () => {
  const r = replica(0.1);
  try {
    await r.startRound(10);
    const before = await r.getParams();
    await r.request('forward', { key: 'a', keep: true, hA: tensor() });
    await expect(r.request('backward', { key: 'a', dhB: tensor(3e38) })).rejects.toThrow(
      "the trunk's gradient for this step is not finite",
    );
    await expect(r.request('apply', { key: 'a', norm: 1 })).rejects.toThrow('no gradients kept for a');
    expect(await r.getParams()).toEqual(before);
  } finally {
    await r.close();
  }
}, 60000);
