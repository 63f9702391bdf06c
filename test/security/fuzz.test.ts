import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keygen } from '../../src/security/pki.js';
import { RevocationChecker } from '../../src/security/tls.js';
import { SplitServer } from '../../src/server/split-server.js';
import { startTransport } from '../../src/server/transport.js';
import { runClient } from '../../src/client/split-client.js';
import { resolveData, resolveModel } from '../../src/config/experiment.js';
import { clientPartSpec } from '../../src/server/client-update.js';
import { Rng } from '../../src/util/rng.js';
import { config } from '../helpers/federation.js';
import { RawClient, wireTensor, type Msg } from '../helpers/hostile.js';

/**
 * An authenticated client (a valid certificate) sends mutated protocol messages, every field and
 * size at random, for a bounded time, while two honest clients train. Payload encryption is off so
 * the mutations reach the decoders instead of failing authentication first.
 */
const FUZZ_SECONDS = 20;
const SEED = Number(process.env.FLGLM_FUZZ_SEED ?? 7);
const RSS_BOUND_MB = 400;

const root = mkdtempSync(join(tmpdir(), 'flglm-fuzz-'));
const cfg = config(`
seed: 3
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 24}
eval: {max_batches: 1}
federation: {mode: hierarchical, sub_servers: 2, clients: 2, rounds: 12, local_steps: 4, min_clients: 1, client_timeout_ms: 8000, chunk_bytes: 1024}
security: {tls: true, payload_encryption: false}
`);
const SHAPE = [2, 16, 32];

function mutatedMessage(rng: Rng, round: number, spec: [string, number][]): Msg {
  const pick = <T>(xs: T[]): T => xs[rng.int(xs.length)];
  const num = () => pick([0, 1, 2, round, round + 1, 2 ** 31, 2 ** 32 - 1, rng.int(100)]);
  const bigNum = () => pick(['0', '1', '-1', '18446744073709551615', '1000000000000000', String(rng.int(1000))]);
  const shape = () =>
    pick([SHAPE, [2, 16, 33], [2 ** 20, 2 ** 20, 2 ** 20], [], [0], [1, -1], [rng.int(5), rng.int(5)], [spec[0][1]]]);
  const tensor = () => {
    const name = pick(['h_A', 'grad_h_B', 'x', '', spec[rng.int(spec.length)][0]]);
    const s = shape();
    const t = wireTensor(name, [1], 0, 'float32', pick([0, 3, 4, 4096, 8192, rng.int(20000), 1 << 20]));
    const fill = pick([0, 0.5, Number.NaN, Number.POSITIVE_INFINITY, -1e38]);
    for (let i = 0; i + 4 <= t.data.length; i += 4) t.data.writeFloatLE(fill, i);
    return {
      ...t,
      shape: s,
      dtype: pick(['float32', 'float32', 'float64', 'int64', 'bool', 'complex']),
      counter: bigNum(),
      encrypted: rng.uniform() < 0.2,
      tag: Buffer.alloc(pick([0, 16])),
      chunkIndex: pick([0, 0, 1, 65535]),
      chunkCount: pick([1, 1, 2, 65536, 2 ** 32 - 1]),
    };
  };
  const validParams = () => spec.map(([n, size]) => wireTensor(n, [size], 0.1));
  switch (rng.int(7)) {
    case 0:
      return { activations: { round: num(), step: num(), tensor: tensor(), eval: rng.uniform() < 0.3 } };
    case 1:
      return {
        activations: { round, step: 1, tensor: wireTensor('h_A', SHAPE, pick([0.01, Number.NaN])), eval: false },
      };
    case 2:
      return {
        tailGrad: {
          round: num(),
          step: num(),
          tensor: tensor(),
          loss: pick([1, Number.NaN, Number.POSITIVE_INFINITY, -5]),
          labelCount: num(),
        },
      };
    case 3: {
      const tensors = rng.uniform() < 0.5 ? validParams() : Array.from({ length: rng.int(6) }, tensor);
      if (tensors.length && rng.uniform() < 0.5) tensors[rng.int(tensors.length)] = tensor();
      return {
        parameters: {
          round: num(),
          numExamples: bigNum(),
          tensors,
          metricsJson: pick(['', '{', '{"eval": 1}']),
          partIndex: num(),
          partCount: num(),
        },
      };
    }
    case 4:
      return rng.uniform() < 0.5
        ? { join: { numExamples: bigNum(), lastRound: num(), insecureName: 'x' } }
        : { stepDone: { round: num(), step: num(), gradNorm: pick([0, 1, -1, Number.NaN, 1e38]) } };
    case 5:
      return { heartbeat: { timeMs: bigNum() } };
    default:
      return { bye: { reason: 'x'.repeat(rng.int(1000)) } };
  }
}

test(`fuzzed messages from an authenticated client for ${FUZZ_SECONDS} s: the server stays up, honest clients finish, RSS stays bounded`, async () => {
  keygen({
    out: join(root, 'pki'),
    clients: ['alice', 'bob', 'mallory', 'trudy'],
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 1,
    keyBits: 2048,
  });
  const kit = join(root, 'pki', 'server');
  const revocation = new RevocationChecker(join(kit, 'revoked.json'));
  const logs: string[] = [];
  const events: Record<string, unknown>[] = [];
  const server = new SplitServer({ cfg, kit, revocation, log: (m) => logs.push(m), onMetric: (r) => events.push(r) });
  await server.init();
  const transport = await startTransport({
    kit,
    port: 0,
    revocation,
    onSession: server.onSession,
    maxMessageBytes: server.limits.maxMessageBytes,
  });
  const target = `127.0.0.1:${transport.port}`;
  const data = resolveData(cfg);
  const spec = [...clientPartSpec(cfg, resolveModel(cfg).config)];
  const rssBase = process.memoryUsage().rss;
  let rssPeak = rssBase;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }, 50);
  let sent = 0;
  try {
    const honest = ['alice', 'bob'].map((id, i) =>
      runClient({
        target,
        kit: join(root, 'pki', 'clients', id),
        serverName: 'localhost',
        train: data.silos[i],
        test: data.test,
        reconnectAttempts: 5,
      }),
    );
    let honestDone = false;
    const finished = Promise.all(honest).finally(() => {
      honestDone = true;
    });
    finished.catch(() => {});
    const deadline = Date.now() + FUZZ_SECONDS * 1000;
    // Two attackers, each with its own certificate, so one is usually inside a round.
    const fuzz = async (id: string, rng: Rng) => {
      while (Date.now() < deadline && !honestDone) {
        const attacker = new RawClient(target, id, join(root, 'pki', 'clients', id));
        try {
          let round = 1;
          if (rng.uniform() < 0.85) {
            await attacker.join(rng.uniform() < 0.9 ? 10 : '18446744073709551615');
            if (rng.uniform() < 0.7) round = await attacker.roundStart(3000);
            // Play some steps by the rules first, so mutations also land mid-round.
            if (rng.uniform() < 0.5) await attacker.playSteps(round, rng.int(cfg.federation.local_steps + 1), SHAPE);
          }
          const n = 1 + rng.int(20);
          for (let i = 0; i < n; i++, sent++) attacker.send(mutatedMessage(rng, round, spec));
          await attacker.dropReason(300).catch(() => {});
        } catch {
          // Refused or dropped: exactly what should happen to most of these sessions.
        } finally {
          attacker.close();
        }
      }
    };
    await Promise.all([fuzz('mallory', new Rng(SEED)), fuzz('trudy', new Rng(SEED + 1))]);
    const results = await finished;
    for (const r of results) {
      expect(r.losses.length).toBeGreaterThan(0);
      expect(r.losses.every(Number.isFinite)).toBe(true);
      expect(r.eval?.loss).toEqual(expect.any(Number));
    }
    const summary = await server.done;
    expect(summary.history).toHaveLength(12);
    for (const h of summary.history) expect(Number.isFinite(h.train_loss)).toBe(true);
    if (process.env.FLGLM_FUZZ_LOG) writeFileSync(process.env.FLGLM_FUZZ_LOG, logs.join('\n'));
    expect(sent).toBeGreaterThan(50);
    expect(events.some((e) => e.type === 'drop' && /^(mallory|trudy)$/.test(e.client as string))).toBe(true);
    expect((rssPeak - rssBase) / 2 ** 20).toBeLessThan(RSS_BOUND_MB);
  } finally {
    clearInterval(sampler);
    await transport.close();
    await server.close();
  }
}, 120000);
