import { trainCentralized } from '../../src/training/centralized.js';
import { config } from '../helpers/federation.js';
import { useArena } from '../../src/runtime/session.js';
import { MALLOC_ENV } from '../../src/util/malloc-env.js';

// runtime.memory_arena: false trades step time for peak memory (ONNX Runtime frees buffers instead of
// keeping them in its arena); it must not change what is computed.
test('runtime.memory_arena: false trains to the same losses as the arena (its default)', async () => {
  const yaml = (arena: string) => `
seed: 4
model: {preset: tiny}
data: {task: classify, batch_size: 4, seq_len: 32, max_examples: 24}
federation: {clients: 1, rounds: 1, local_steps: 3}
eval: {max_batches: 1}
${arena}`;
  expect(config(yaml('')).runtime.memory_arena).toBe('auto');
  const off = config(yaml('runtime: {memory_arena: false, threads: 1}'));
  expect(off.runtime.memory_arena).toBe(false);
  const withArena = await trainCentralized(config(yaml('runtime: {threads: 1}')), { quiet: true });
  const without = await trainCentralized(off, { quiet: true });
  expect(without.losses).toHaveLength(3);
  expect(without.losses).toEqual(withArena.losses);
}, 120_000);

test("memory_arena auto: the arena only where malloc hands freed memory back (without flglm's malloc settings)", () => {
  const saved = { ...process.env };
  try {
    for (const [k, v] of Object.entries(MALLOC_ENV)) process.env[k] = v;
    expect(useArena('auto')).toBe(false);
    expect(useArena(true)).toBe(true);
    for (const k of Object.keys(MALLOC_ENV)) delete process.env[k];
    expect(useArena('auto')).toBe(true);
    expect(useArena(undefined)).toBe(true);
    expect(useArena(false)).toBe(false);
  } finally {
    for (const k of Object.keys(MALLOC_ENV)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});
