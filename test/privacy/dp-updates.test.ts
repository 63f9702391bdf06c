import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTrainer } from '../../src/client/trainer.js';
import { keygen } from '../../src/security/pki.js';
import { resolveData } from '../../src/config/experiment.js';
import { parseConfigText } from '../../src/config/load.js';
import { privatizeClientUpdate, privatizeMean, updateNorm } from '../../src/privacy/dp-updates.js';
import { SecureGaussian } from '../../src/privacy/secure-noise.js';
import type { ClientMessage } from '../../src/protocol/messages.js';
import { CLIENT_IDS, config, federate } from '../helpers/federation.js';

// DP-FedAvg of the client parts: each client's round update is clipped to C before it leaves, the
// mean weighs every client the same (in the clear and through secure aggregation), and the noise
// is σ·C on the sum wherever it is added.

const dpYaml = (dp: string, extra = '') => `
seed: 5
model: {preset: tiny, max_seq_len: 32}
optimizer: {lr: 0.01, grad_clip: 0}
data: {task: classify, batch_size: 4, seq_len: 32, max_examples: 24}
federation: {mode: hierarchical, sub_servers: 3, strategy: {name: fedavg}, clients: 3, rounds: 1, local_steps: 2, client_timeout_ms: 20000}
eval: {max_batches: 2}
security: {tls: false, payload_encryption: false}
privacy: {dp: {updates: ${dp}}${extra}}
`;

const sd = (x: number[]) => {
  const m = x.reduce((a, b) => a + b, 0) / x.length;
  return Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / x.length);
};

test('a client update is clipped to C, and noise: client adds sigma C / sqrt(threshold) to it', () => {
  const cfg = config(dpYaml('{enabled: true, clip_norm: 0.5, noise_multiplier: 0}'));
  const start = new Map([['w', new Float32Array([1, 1, 1, 1])]]);
  const big = new Map([['w', new Float32Array([4, 5, 1, 1])]]); // update (3, 4, 0, 0): norm 5
  expect(privatizeClientUpdate(cfg, start, big, 0.5)).toBeCloseTo(5, 5);
  expect(updateNorm(start, big)).toBeCloseTo(0.5, 5);
  expect([...big.get('w')!]).toEqual([1.3, 1.4, 1, 1].map(Math.fround));
  const small = new Map([['w', new Float32Array([1.1, 1, 1, 1])]]);
  privatizeClientUpdate(cfg, start, small, 0.5);
  expect(small.get('w')![0]).toBeCloseTo(1.1, 6); // under C: unchanged
  // noise: client, 3 clients, threshold 2 (a majority): each adds sigma C / sqrt(2).
  const noisy = config(
    dpYaml(
      '{enabled: true, clip_norm: 0.5, noise_multiplier: 2, noise: client}',
      ', secure_aggregation: {enabled: true}',
    ),
  );
  const z = new Float32Array(20000);
  privatizeClientUpdate(noisy, new Map([['w', new Float32Array(20000)]]), new Map([['w', z]]), 0.5);
  expect(sd([...z])).toBeCloseTo((2 * 0.5) / Math.sqrt(2), 1);
  // The server's noise: sigma C on the sum of 4 clients, so sigma C / 4 on their mean.
  const mean = new Map([['w', new Float32Array(20000)]]);
  privatizeMean(config(dpYaml('{enabled: true, clip_norm: 0.5, noise_multiplier: 2}')), mean, 4, 0.5);
  expect(sd([...mean.get('w')!]) / ((2 * 0.5) / 4)).toBeCloseTo(1, 1);
  // The noise is not the seeded generator's: two draws differ.
  const g = [new SecureGaussian().normal(), new SecureGaussian().normal()];
  expect(g[0]).not.toBe(g[1]);
});

test('the config refuses what DP-FedAvg cannot bound, naming the fix', () => {
  const problems = (dp: string, extra = '') => {
    const r = parseConfigText(dpYaml(dp, extra));
    return r.ok ? [] : r.problems.map((p) => p.message);
  };
  expect(problems('{enabled: true}').length).toBe(0);
  expect(problems('{enabled: true, noise: client}')).toContainEqual(expect.stringContaining('secure_aggregation'));
  expect(
    problems('{enabled: true}', ', secure_aggregation: {enabled: true}, hide_aggregate: true, target_epsilon: 8'),
  ).toContainEqual(expect.stringContaining('use noise: client'));
  const median = parseConfigText(dpYaml('{enabled: true}').replace('name: fedavg', 'name: fedmedian'));
  expect(median.ok ? [] : median.problems.map((p) => p.message)).toContainEqual(
    expect.stringContaining('DP-FedAvg bounds'),
  );
});

test('in a real federation every upload is within C of the round start, and secure aggregation gives the same equal-weight mean', async () => {
  const plainCfg = config(dpYaml('{enabled: true, clip_norm: 0.05, noise_multiplier: 0}'));
  const data = resolveData(plainCfg);
  const start = createTrainer(plainCfg, data.silos[0]).params;
  const norms: number[] = [];
  const audit = (_id: string, m: ClientMessage) => {
    if (m.kind !== 'parameters') return;
    const up = new Map(
      m.parameters!.tensors.map((t) => [t.name, new Float32Array(Uint8Array.from(t.data).buffer)] as const),
    );
    norms.push(updateNorm(start, up));
  };
  const plain = await federate(plainCfg, { audit, data });
  expect(norms).toHaveLength(3);
  for (const n of norms) expect(n).toBeLessThanOrEqual(0.05 * (1 + 1e-4));
  expect(Math.max(...norms)).toBeGreaterThan(0.05 * 0.999); // clipping was active
  const secure = await federate(
    config(dpYaml('{enabled: true, clip_norm: 0.05, noise_multiplier: 0}', ', secure_aggregation: {enabled: true}')),
    { data },
  );
  const loss = (r: typeof plain) => r.summary.eval_summary.loss;
  expect(Math.abs(loss(secure) - loss(plain)) / loss(plain)).toBeLessThan(1e-5);
  // Noise on the sum, from each client before secure aggregation or from the server: training goes on.
  for (const [dp, extra] of [
    ['{enabled: true, clip_norm: 0.05, noise_multiplier: 1, noise: client}', ', secure_aggregation: {enabled: true}'],
    ['{enabled: true, clip_norm: 0.05, noise_multiplier: 1}', ''],
  ]) {
    const r = await federate(config(dpYaml(dp, extra)), { data });
    expect(Number.isFinite(loss(r))).toBe(true);
    expect(Math.abs(loss(r) - loss(plain))).toBeGreaterThan(0); // the noise moved the model
  }
}, 180_000);

test('with a hidden aggregate, noise: client: the clients open the same clipped mean the visible secure aggregate gives', async () => {
  const root = mkdtempSync(join(tmpdir(), 'flglm-dp-hidden-'));
  keygen({
    out: join(root, 'pki'),
    clients: CLIENT_IDS.slice(0, 3),
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 1,
    keyBits: 2048,
  });
  const dp = '{enabled: true, clip_norm: 0.05, noise_multiplier: 0, noise: client}';
  const tls = (y: string) => y.replace('security: {tls: false, payload_encryption: false}', 'security: {tls: true}');
  const cfg = (hide: boolean) =>
    config(tls(dpYaml(dp, `, secure_aggregation: {enabled: true}${hide ? ', hide_aggregate: true' : ''}`)));
  const data = resolveData(cfg(false));
  const kitRoot = join(root, 'pki');
  const hidden = await federate(cfg(true), { kitRoot, data });
  const visible = await federate(cfg(false), { kitRoot, data });
  expect(hidden.summary.eval_summary.loss).toBe(visible.summary.eval_summary.loss);
  expect(hidden.summary.privacy?.user_epsilon).toBe(Infinity); // sigma 0: no bound, and the record says so
}, 180_000);
