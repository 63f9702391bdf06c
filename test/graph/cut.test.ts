import { PRESETS } from '../../src/model/config.js';
import { initParams, type PeftConfig } from '../../src/model/params.js';
import { buildPartProgram, gradName } from '../../src/model/partition.js';
import { cutAtUpstream } from '../../src/graph/cut.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { tensor, type TensorData } from '../../src/runtime/tensor.js';
import { Rng } from '../../src/util/rng.js';

describe('carrying saved activations instead of recomputing', () => {
  test('the cut forward + backward programs give the same gradients as the fused recompute program', async () => {
    const config = { ...PRESETS.tiny };
    const split = { head_blocks: 1, tail_blocks: 1 };
    const peft: PeftConfig = {
      method: 'full',
      lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q'] },
      prefix: { length: 2 },
    };
    const store = initParams(config, 4);
    const prog = buildPartProgram('trunk', 'backward', config, split, peft, store, 2, 8);
    const upstream = prog.graph.inputs.find((v) => v.name === 'grad_h_B')!;
    const cut = cutAtUpstream(prog.graph, upstream, [prog.forwardOutput]);
    expect(cut.saved.length).toBeGreaterThan(0);
    const rng = new Rng(1);
    const feeds: Record<string, TensorData> = {
      h_A: tensor(
        'float32',
        [2, 8, 32],
        Float32Array.from({ length: 512 }, () => rng.normal()),
      ),
      grad_h_B: tensor(
        'float32',
        [2, 8, 32],
        Float32Array.from({ length: 512 }, () => rng.normal()),
      ),
    };
    for (const n of prog.trainable)
      feeds[n] = { dtype: 'float32', shape: store.get(n)!.shape, data: store.get(n)!.data };
    const fused = await CompiledGraph.create(prog.graph, { threads: 1 });
    const expected = await fused.run(feeds);
    const fwd = await CompiledGraph.create(cut.forward, { threads: 1 });
    const bwd = await CompiledGraph.create(cut.backward, { threads: 1 });
    const { grad_h_B: _g, ...fwdFeeds } = feeds;
    const saved = await fwd.run(fwdFeeds);
    const bwdFeeds: Record<string, TensorData> = { grad_h_B: feeds.grad_h_B };
    for (const v of cut.backward.inputs) if (v.name !== 'grad_h_B') bwdFeeds[v.name] = saved[v.name] ?? feeds[v.name];
    const got = await bwd.run(bwdFeeds);
    for (const name of ['grad_h_A', ...prog.trainable.map(gradName)]) {
      const a = expected[name].data as Float32Array,
        b = got[name].data as Float32Array;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
      expect(worst).toBeLessThan(1e-5);
    }
    for (const s of [fused, fwd, bwd]) await s.release();
  });
});
