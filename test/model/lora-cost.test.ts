import { PRESETS } from '../../src/model/config.js';
import { addPeftParams, initParams, type PeftConfig } from '../../src/model/params.js';
import { buildPartProgram } from '../../src/model/partition.js';
import type { Graph } from '../../src/graph/ir.js';

// LoRA must not pay for full weight gradients: the backward graph differentiates only with respect
// to what trains, so no dL/dW product is built for a frozen weight. Counted as the multiply-adds of
// every MatMul/Gemm in the trunk's backward program.
function matmulMacs(g: Graph): number {
  let macs = 0;
  for (const n of g.nodes) {
    if (n.op !== 'MatMul' && n.op !== 'Gemm') continue;
    const a = n.inputs[0]!.shape;
    const inner = n.op === 'Gemm' && n.attrs.transA?.type === 'int' && n.attrs.transA.value ? a[0] : a[a.length - 1];
    macs += n.outputs[0].shape.reduce((x, y) => x * y, 1) * inner;
  }
  return macs;
}

test('the LoRA backward builds no weight-gradient products for frozen weights', () => {
  const config = { ...PRESETS.small, num_hidden_layers: 4 };
  const split = { head_blocks: 1, tail_blocks: 1 };
  const base: PeftConfig = {
    method: 'full',
    lora: { rank: 8, alpha: 16, dropout: 0, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] },
    prefix: { length: 4 },
  };
  const lora: PeftConfig = { ...base, method: 'lora' };
  const store = initParams(config, 1);
  addPeftParams(store, config, lora, 1);
  const cost = (peft: PeftConfig) => {
    const p = buildPartProgram('trunk', 'backward', config, split, peft, store, 4, 64);
    return {
      macs: matmulMacs(p.graph),
      grads: p.graph.outputs.map((v) => v.name).filter((n) => n.startsWith('grad.')),
    };
  };
  const forward = matmulMacs(buildPartProgram('trunk', 'forward', config, split, base, store, 4, 64).graph);
  const full = cost(base),
    adapters = cost(lora);
  expect(adapters.grads.every((n) => n.includes('.lora_'))).toBe(true);
  expect(full.grads.some((n) => n.endsWith('q_proj.weight'))).toBe(true);
  // Full fine-tuning's backward: recomputed forward + dL/dX + dL/dW, about 3x the forward's
  // products. LoRA: recomputed forward + dL/dX (+ small rank-8 terms), about 2x: no dL/dW.
  expect(full.macs / forward).toBeGreaterThan(2.8);
  expect(adapters.macs / forward).toBeLessThan(2.3);
});
