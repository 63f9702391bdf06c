import { PRESETS } from '../../src/model/config.js';
import { initParams, type StoredParam } from '../../src/model/params.js';
import { partParamNames } from '../../src/model/partition.js';
import { parseConfigText } from '../../src/config/load.js';
import { TrunkPool } from '../../src/server/trunk-pool.js';
import { Rng } from '../../src/util/rng.js';

// Hierarchical trunk replicas are averaged at round end weighted by the trunk steps each took in
// the round: a replica that served two clients counts twice one that served one.

const r = parseConfigText(
  'model: {preset: tiny}\noptimizer: {name: sgd, lr: 0.1, weight_decay: 0, grad_clip: 0}\nschedule: {warmup_steps: 0, decay: constant}\n',
);
if (!r.ok) throw new Error(JSON.stringify(r.problems));
const cfg = r.config;
const model = { ...PRESETS.tiny };
const split = { head_blocks: 1, tail_blocks: 1 };
const store = initParams(model, 4);
const names = new Set(partParamNames('trunk', model, split, store));
const rng = new Rng(2);
const random = () => ({
  dtype: 'float32' as const,
  shape: [2, 8, model.hidden_size],
  data: Float32Array.from({ length: 2 * 8 * model.hidden_size }, () => rng.normal()),
});

test('replicas are averaged weighted by the trunk steps each took this round (2 against 1)', async () => {
  const pool = new TrunkPool(cfg, {
    model,
    split,
    peft: { method: 'full', lora: { rank: 1, alpha: 1, dropout: 0, targets: [] }, prefix: { length: 1 } },
    optimizer: cfg.optimizer,
    schedule: cfg.schedule,
    runtime: { threads: 1 },
    params: [...store].filter(([n]) => names.has(n)) as [string, StoredParam][],
  });
  pool.startLocal(2);
  try {
    await pool.startRound(3);
    const steps = [2, 1];
    for (const [i, n] of steps.entries())
      for (let k = 0; k < n; k++) {
        const t = pool.trunk(i);
        await t.forward(`${i}:${k}`, random());
        await t.backward(`${i}:${k}`, random());
        await t.apply(`${i}:${k}`, 1);
      }
    expect(pool.trunkSteps).toEqual(steps);
    const [a, b] = await Promise.all(pool.replicas.map(async (x) => new Map(await x.getParams())));
    await pool.average();
    const averaged = await Promise.all(pool.replicas.map(async (x) => new Map(await x.getParams())));
    let moved = 0;
    for (const [name, pa] of a) {
      const pb = b.get(name)!;
      for (const got of averaged) {
        const g = got.get(name)!;
        for (let i = 0; i < pa.length; i += 97) expect(g[i]).toBeCloseTo((2 * pa[i] + pb[i]) / 3, 5);
      }
      for (let i = 0; i < pa.length; i++) moved = Math.max(moved, Math.abs(pa[i] - pb[i]));
    }
    // The replicas differed enough for an unweighted mean to fail the check above.
    expect(moved).toBeGreaterThan(1e-3);
  } finally {
    await pool.close();
  }
}, 60000);
