import { join } from 'node:path';
import { trainCentralized } from '../../src/training/centralized.js';
import { resolveData } from '../../src/config/experiment.js';
import { config, federate } from '../helpers/federation.js';
import { FAMILY_FIXTURES, FIXTURES } from '../helpers/families.js';

// Federated LoRA on each family's fixture: a real server and client over gRPC on 127.0.0.1, two steps
// each, the same per-step losses as training the whole model in one process (so the split, the wire
// and the family's own layers agree, sliding windows and fused projections included).
const TARGETS: Record<string, string> = { phi3: '[qkv, o, gate_up, down]' };

test('federated LoRA on every family: the losses of centralized training', async () => {
  // Side by side: a federation mostly waits on its round trips, so the seven overlap.
  const cfg = (name: string) =>
    config(`
seed: 5
model: {hf_path: ${join(FIXTURES, name)}}
finetune: {method: lora, lora: {rank: 4, alpha: 8, targets: ${TARGETS[name] ?? '[q, k, v, o, gate, up, down]'}}}
optimizer: {lr: 0.01, grad_clip: 0}
data: {task: classify, batch_size: 2, seq_len: 16, max_examples: 12}
eval: {max_batches: 1}
federation: {mode: sequential, clients: 1, rounds: 1, local_steps: 2}
runtime: {threads: 1}
security: {tls: false, payload_encryption: false}
`);
  const data = resolveData(cfg('llama31')); // the same examples for every family (byte tokens)
  const check = async (name: string) => {
    const { results } = await federate(cfg(name), { data });
    const central = await trainCentralized(cfg(name), { quiet: true, data });
    expect([name, results[0].losses.length]).toEqual([name, 2]);
    results[0].losses.forEach((l, i) =>
      expect([name, i, Math.abs(l - central.losses[i]) < 1e-4 * central.losses[i]]).toEqual([name, i, true]),
    );
  };
  await Promise.all(FAMILY_FIXTURES.map(check));
}, 240000);
