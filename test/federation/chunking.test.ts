import { chunkMessage, ChunkAssembler } from '../../src/protocol/chunking.js';
import { ProtocolError } from '../../src/protocol/tensors.js';
import { trainCentralized } from '../../src/training/centralized.js';
import { config, federate } from '../helpers/federation.js';

const wire = (name: string, n: number) => ({
  name,
  dtype: 'float32',
  shape: [n],
  data: Uint8Array.from({ length: n * 4 }, (_, i) => (i * 7 + name.length) % 251),
  counter: '3',
  tag: new Uint8Array(16),
  encrypted: true,
});

describe('chunking large tensors', () => {
  test('a large activation travels in slices and is reassembled exactly', () => {
    const m = { activations: { round: 1, step: 2, tensor: wire('h_A', 1000), eval: false } };
    const parts = chunkMessage(m, 1024);
    expect(parts).toHaveLength(4);
    const a = new ChunkAssembler();
    const out = parts.map((p) => a.accept({ ...p, kind: 'activations' }));
    expect(out.slice(0, 3)).toEqual([null, null, null]);
    expect((out[3]!.activations as { tensor: { data: Uint8Array } }).tensor.data).toEqual(m.activations.tensor.data);
  });

  test('a parameter set is split into parts, big tensors into chunks, and put back together', () => {
    const tensors = [wire('a', 10), wire('big', 700), wire('b', 20), wire('c', 300)];
    const parts = chunkMessage({ parameters: { round: 2, numExamples: 5, tensors, metricsJson: '' } }, 1000);
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts)
      expect(
        (p.parameters as { tensors: { data: Uint8Array }[] }).tensors.reduce((s, t) => s + t.data.byteLength, 0),
      ).toBeLessThanOrEqual(1000);
    const a = new ChunkAssembler();
    const whole = parts.map((p) => a.accept({ ...p, kind: 'parameters' })).pop()!;
    const back = (whole.parameters as { tensors: { name: string; data: Uint8Array }[] }).tensors;
    expect(back.map((t) => t.name)).toEqual(['a', 'big', 'b', 'c']);
    back.forEach((t, i) => expect(t.data).toEqual(tensors[i].data));
  });

  test('chunks out of order are a protocol error', () => {
    const parts = chunkMessage({ trunkOut: { round: 1, step: 1, tensor: wire('h_B', 600) } }, 1000);
    const a = new ChunkAssembler();
    expect(() => a.accept({ ...parts[1], kind: 'trunkOut' })).toThrow(ProtocolError);
  });

  test('limits are enforced as pieces arrive, before anything is held', () => {
    const limits = {
      budget: (kind: string) =>
        kind === 'activations' ? { maxBytes: 4000, maxPieces: 4 } : { maxBytes: 1000, maxPieces: 3 },
    };
    const tooMany = chunkMessage({ activations: { round: 1, step: 1, tensor: wire('h_A', 1000) } }, 500); // 8 chunks of 500 bytes
    expect(() => new ChunkAssembler(limits).accept({ ...tooMany[0], kind: 'activations' })).toThrow(
      /in 8 chunks, the limit is 4/,
    );
    const tooBig = chunkMessage({ activations: { round: 1, step: 1, tensor: wire('h_A', 1200) } }, 1200); // 4 chunks, 4800 bytes
    const a = new ChunkAssembler(limits);
    expect(() => tooBig.forEach((p) => a.accept({ ...p, kind: 'activations' }))).toThrow(/over 4000 bytes/);
    const set = chunkMessage(
      {
        parameters: {
          round: 1,
          numExamples: 1,
          tensors: [wire('a', 100), wire('b', 100), wire('c', 100)],
          metricsJson: '',
        },
      },
      400,
    );
    const b = new ChunkAssembler(limits);
    expect(() => set.forEach((p) => b.accept({ ...p, kind: 'parameters' }))).toThrow(/over 1000 bytes of tensors/);
  });

  test('training with tiny chunks gives the same losses as centralized training', async () => {
    const cfg = config(`
seed: 3
model: {preset: tiny, max_seq_len: 64}
optimizer: {grad_clip: 0}
data: {task: classify, batch_size: 4, seq_len: 48, max_examples: 40}
eval: {max_batches: 2}
federation: {mode: sequential, clients: 1, rounds: 2, local_steps: 3, chunk_bytes: 5000}
`);
    const { results, data } = await federate(cfg, {});
    const central = await trainCentralized(cfg, { quiet: true, data });
    results[0].losses.forEach((l, i) => expect(Math.abs(l - central.losses[i]) / central.losses[i]).toBeLessThan(1e-4));
  });
});
