import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveData, resolveModel } from '../../src/config/experiment.js';
import { clientPartSpec } from '../../src/server/client-update.js';
import { loadCheckpoint } from '../../src/training/checkpoint.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import { config } from '../helpers/federation.js';
import { PROTOCOL_VERSION } from '../../src/protocol/messages.js';
import { hostileFederation, RawClient, wireTensor } from '../helpers/hostile.js';

const base = `
seed: 1
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 20}
schedule: {warmup_steps: 0, decay: constant}
eval: {max_batches: 1}
security: {tls: false, payload_encryption: false}
`;
const fed = (f: string) =>
  config(`${base}federation: {mode: sequential, min_clients: 1, client_timeout_ms: 20000, ${f}}\n`);
const cfg = fed('clients: 2, rounds: 2, local_steps: 2');
const data = resolveData(cfg);
const SHAPE = [2, 16, 32]; // batch_size x seq_len x hidden_size of the tiny preset
const spec = clientPartSpec(cfg, resolveModel(cfg).config);

/** A real server on 127.0.0.1 (trunk in worker threads), torn down by `stop`. */
const federation = (c: ExperimentConfig, opts: { checkpointDir?: string } = {}) =>
  hostileFederation(c, { ...opts, data });

const params = (
  mutate: (t: ReturnType<typeof wireTensor>[]) => ReturnType<typeof wireTensor>[] = (t) => t,
  fill = 0.5,
) => mutate([...spec].map(([name, n]) => wireTensor(name, [n], fill)));

/** Attacker "aaa" (its id sorts first) plays round 1 honestly, then sends `bad` as its parameters. */
describe('a bad parameters message drops only its sender', () => {
  const nan = wireTensor('x', [1]);
  nan.data.writeFloatLE(Number.NaN, 0);
  test.each([
    [
      'a wrong shape',
      (t: ReturnType<typeof wireTensor>[]) => [
        { ...t[0], shape: [t[0].shape[0] - 1], data: t[0].data.subarray(4) },
        ...t.slice(1),
      ],
      /shape \[\d+\], expected \[\d+\]/,
    ],
    [
      'an unknown tensor',
      (t: ReturnType<typeof wireTensor>[]) => [...t.slice(0, -1), { ...t[t.length - 1], name: 'model.evil.weight' }],
      /unknown tensor model\.evil\.weight/,
    ],
    [
      'one tensor too many',
      (t: ReturnType<typeof wireTensor>[]) => [...t, wireTensor('model.evil.weight', [4])],
      /over \d+ bytes of tensors/,
    ],
    ['no tensors at all', () => [], /missing \d+ of \d+ client-part tensors/],
    [
      'a tensor sent twice',
      (t: ReturnType<typeof wireTensor>[]) => {
        const j = t.findIndex((x, k) => k > 0 && x.data.length === t[0].data.length);
        return t.map((x, k) => (k === j ? t[0] : x));
      },
      /sent twice/,
    ],
    [
      'a NaN',
      (t: ReturnType<typeof wireTensor>[]) => [
        { ...t[0], data: Buffer.concat([nan.data, t[0].data.subarray(4)]) },
        ...t.slice(1),
      ],
      /non-finite value NaN/,
    ],
  ])('%s', async (_what, mutate, reason) => {
    const f = await federation(cfg);
    try {
      const attacker = new RawClient(f.target, 'aaa');
      await attacker.join();
      const good = f.honest();
      const round = await attacker.roundStart();
      await attacker.playSteps(round, 2, SHAPE);
      attacker.send({ parameters: { round, numExamples: 10, tensors: params(mutate), partIndex: 0, partCount: 1 } });
      expect(await attacker.dropReason()).toMatch(reason);
      attacker.close();
      const r = await good;
      expect(r.losses).toHaveLength(4);
      expect(r.losses.every(Number.isFinite)).toBe(true);
      const summary = await f.server.done;
      expect(summary.history[0]).toMatchObject({ clients: ['insecure-honest'], dropped: ['insecure-aaa'] });
      expect(f.events).toContainEqual(
        expect.objectContaining({
          type: 'drop',
          round: 1,
          client: 'insecure-aaa',
          reason: expect.stringMatching(reason),
        }),
      );
    } finally {
      await f.stop();
    }
  });
});

describe('non-finite activations or gradients never reach the trunk', () => {
  const soloLosses = (async () => {
    const f = await federation(fed('clients: 1, rounds: 2, local_steps: 2'));
    try {
      return (await f.honest()).losses;
    } finally {
      await f.stop();
    }
  })();

  test.each([
    ['h_A', 'activations'],
    ['grad_h_B', 'tailGrad'],
  ])('NaN in %s: the sender is dropped and the honest client trains exactly as alone', async (name, kind) => {
    const f = await federation(cfg);
    try {
      const attacker = new RawClient(f.target, 'aaa');
      await attacker.join();
      const good = f.honest();
      const round = await attacker.roundStart();
      const poisoned = wireTensor(name, SHAPE, Number.NaN);
      if (kind === 'tailGrad') {
        attacker.send({ activations: { round, step: 1, tensor: wireTensor('h_A', SHAPE, 0.01), eval: false } });
        await attacker.inbox.next(['trunkOut'], 20000);
        attacker.send({ tailGrad: { round, step: 1, tensor: poisoned, loss: 1, labelCount: 1 } });
      } else attacker.send({ activations: { round, step: 1, tensor: poisoned, eval: false } });
      expect(await attacker.dropReason()).toMatch(`tensor ${name}: non-finite value NaN`);
      attacker.close();
      const r = await good;
      expect(r.losses).toEqual(await soloLosses);
    } finally {
      await f.stop();
    }
  });

  test('an infinite loss is refused', async () => {
    const f = await federation(fed('clients: 1, rounds: 1, local_steps: 1'));
    try {
      const attacker = new RawClient(f.target, 'aaa');
      await attacker.join();
      const round = await attacker.roundStart();
      attacker.send({ activations: { round, step: 1, tensor: wireTensor('h_A', SHAPE, 0.01), eval: false } });
      await attacker.inbox.next(['trunkOut'], 20000);
      attacker.send({
        tailGrad: {
          round,
          step: 1,
          tensor: wireTensor('grad_h_B', SHAPE),
          loss: Number.POSITIVE_INFINITY,
          labelCount: 1,
        },
      });
      expect(await attacker.dropReason()).toMatch('non-finite loss');
      attacker.close();
    } finally {
      await f.stop();
    }
  });
});

describe('one client cannot make the server hold more than the plan allows', () => {
  const cases: [string, (a: RawClient, round: number) => void, RegExp][] = [
    [
      'a tensor declared in 65,536 chunks',
      (a, round) =>
        a.send({
          activations: {
            round,
            step: 1,
            tensor: { ...wireTensor('h_A', SHAPE, 0, 'float32', 8), chunkIndex: 0, chunkCount: 65536 },
            eval: false,
          },
        }),
      /in 65536 chunks, the limit is 1/,
    ],
    [
      'a parameter set declared in 2^32-1 parts',
      (a, round) => a.send({ parameters: { round, numExamples: 1, tensors: [], partIndex: 0, partCount: 4294967295 } }),
      /4294967295 parts, the limit is \d+/,
    ],
    [
      'an 8 GiB shape with 4 KiB of data',
      (a, round) =>
        a.send({
          activations: {
            round,
            step: 1,
            tensor: { ...wireTensor('h_A', SHAPE), shape: [2, 16, 2 ** 26] },
            eval: false,
          },
        }),
      /shape \[2,16,67108864\], expected \[2,16,32\]/,
    ],
    [
      'messages sent far ahead of the protocol',
      (a, round) => {
        for (let i = 0; i < 40; i++)
          a.send({ activations: { round, step: 1, tensor: wireTensor('h_A', SHAPE, 0.01), eval: false } });
      },
      /sent ahead of the protocol/,
    ],
  ];
  test.each(cases)('%s', async (_what, attack, reason) => {
    // The attacker joins second, so in sequential mode it waits while the honest client is served.
    const f = await federation(cfg);
    try {
      const good = f.honest();
      await new Promise((r) => setTimeout(r, 300));
      const attacker = new RawClient(f.target, 'zzz');
      await attacker.join();
      attack(attacker, await attacker.roundStart());
      expect(await attacker.dropReason()).toMatch(reason);
      attacker.close();
      expect((await good).losses).toHaveLength(4);
      expect((await f.server.done).history[0].dropped).toEqual(['insecure-zzz']);
    } finally {
      await f.stop();
    }
  });

  test('a single gRPC message over one chunk is refused by the transport', async () => {
    const f = await federation(cfg);
    try {
      const good = f.honest();
      const attacker = new RawClient(f.target, 'zzz');
      await attacker.join();
      const round = await attacker.roundStart();
      attacker.send({
        activations: {
          round,
          step: 1,
          tensor: wireTensor('h_A', [2, 16, 32 * 200], 0, 'float32', 6 << 20),
          eval: false,
        },
      });
      await expect(attacker.dropReason()).rejects.toThrow(/RESOURCE_EXHAUSTED|larger than max|stream ended/i);
      attacker.close();
      expect((await good).losses).toHaveLength(4);
    } finally {
      await f.stop();
    }
  });
});

test('a claimed sample count cannot buy a larger share of the average', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-weights-'));
  const f = await federation(fed('clients: 2, rounds: 1, local_steps: 2'), { checkpointDir: dir });
  try {
    const attacker = new RawClient(f.target, 'aaa');
    await attacker.join(10);
    const good = f.honest();
    const round = await attacker.roundStart();
    await attacker.playSteps(round, 2, SHAPE);
    attacker.send({
      parameters: { round, numExamples: '1000000000000000', tensors: params(), partIndex: 0, partCount: 1 },
    });
    await attacker.inbox.next(['averaged'], 30000);
    attacker.close();
    await good;
    // Both trained 2 steps x 2 rows this round, so both weigh 4: the average sits halfway between
    // the honest parameters and the attacker's constant 0.5, not on the attacker's values.
    const avg = loadCheckpoint(join(dir, 'latest')).extra!;
    let nearAttacker = 0,
      total = 0;
    for (const [, t] of avg)
      for (const x of t.data) {
        total++;
        if (Math.abs(x - 0.5) < 1e-3) nearAttacker++;
      }
    expect(total).toBeGreaterThan(1000);
    expect(nearAttacker / total).toBeLessThan(0.01);
  } finally {
    await f.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a join with an invalid name or sample count is refused and logged once per peer', async () => {
  const f = await federation(fed('clients: 1, rounds: 1, local_steps: 1'));
  try {
    for (let i = 0; i < 5; i++) {
      const a = new RawClient(f.target, 'bad name!');
      a.send({ join: { numExamples: 0, insecureName: 'bad name!', protocol: PROTOCOL_VERSION } });
      expect((await a.inbox.next(['error'], 10000)).error.message).toMatch(
        /insecure_name must be|num_examples must be positive/,
      );
      a.close();
    }
    expect(f.logs.filter((l) => l.startsWith('refused a session')).length).toBe(1);
    // A client of another flglm version is told so at join, not confused mid-round.
    const old = new RawClient(f.target, 'old');
    old.send({ join: { numExamples: 10, insecureName: 'old', protocol: 'flglm/2' } });
    expect((await old.inbox.next(['error'], 10000)).error.message).toMatch(
      `the client speaks protocol "flglm/2", this server ${PROTOCOL_VERSION}: run the same flglm version on both sides`,
    );
    old.close();
    const r = await f.honest();
    expect(r.losses).toHaveLength(1);
  } finally {
    await f.stop();
  }
});

test('batch mode: a client that goes silent after its activations misses the deadline and is dropped alone', async () => {
  const c = config(
    `${base}federation: {mode: batch, min_clients: 1, clients: 2, rounds: 1, local_steps: 3, batch_clients: 2, batch_deadline_ms: 3000, client_timeout_ms: 20000}\n`,
  );
  const f = await federation(c);
  try {
    const silent = new RawClient(f.target, 'silent');
    await silent.join();
    const good = f.honest();
    const round = await silent.roundStart();
    // Step 1 activations arrive with the honest client's, so both share a group; then nothing.
    silent.send({ activations: { round, step: 1, tensor: wireTensor('h_A', SHAPE, 0.01), eval: false } });
    await silent.inbox.next(['trunkOut'], 20000);
    const r = await good;
    expect(r.losses).toHaveLength(3);
    expect(r.losses.every(Number.isFinite)).toBe(true);
    const summary = await f.server.done;
    expect(summary.history[0]).toMatchObject({ clients: ['insecure-honest'], dropped: ['insecure-silent'] });
    expect(f.events).toContainEqual(
      expect.objectContaining({ type: 'drop', client: 'insecure-silent', reason: 'missed the batch deadline' }),
    );
    silent.close();
  } finally {
    await f.stop();
  }
});
