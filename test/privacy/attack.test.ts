import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../../src/config/load.js';
import { peftOf } from '../../src/config/experiment.js';
import { loadCorpus } from '../../src/data/corpora.js';
import { makeBatch } from '../../src/data/batches.js';
import { ByteTokenizer } from '../../src/data/tokenizer.js';
import { Capture, readCapture, type CapturedStep } from '../../src/privacy/capture.js';
import { DEFAULT_ATTACK, invertActivations, serverViewHead } from '../../src/privacy/attack.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { ActivationNoise } from '../../src/privacy/activation-noise.js';

// The inversion attack against a head the server knows (here: the initial weights, which a server
// holds for a preset from the plan's seed), on h_A of real emails: it must read shallow activations
// back, and must fail once the noise drowns them, so the harness measures rather than asserts.
const parsed = parseConfigText(
  'model: {preset: tiny}\ndata: {batch_size: 4, seq_len: 48}\nsplit: {head_blocks: 1, tail_blocks: 1}\n',
);
if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
const cfg = { ...parsed.config, runtime: { ...parsed.config.runtime, threads: 1 } };
const options = {
  ...DEFAULT_ATTACK,
  publicTokens: 6000,
  inverter: { ...DEFAULT_ATTACK.inverter, steps: 200, hidden: 128, batch: 256 },
};

async function capturedEmails(sigma: number): Promise<CapturedStep[]> {
  const head = serverViewHead(cfg, null);
  const tok = new ByteTokenizer();
  const emails = loadCorpus('spam-assassin')
    .slice(0, 8)
    .map((d) => ({ text: d.text.slice(0, 200) }));
  const exec = new PartExecutor('head', head.config, cfg.split, peftOf(cfg), head.store, { threads: 1 }, 'recompute');
  const noise = new ActivationNoise(sigma, false, 1, 'victim');
  const dir = mkdtempSync(join(tmpdir(), 'flglm-capture-'));
  // The server's and the client's captures, as two processes keep them.
  const server = new Capture(dir, 2),
    client = new Capture(dir, 2);
  for (let step = 1; step <= 2; step++) {
    const batch = makeBatch(emails.slice((step - 1) * 4, step * 4), tok, 48);
    const hA = noise.apply(await exec.forward(batch.tokens));
    server.activations('victim', 1, step, hA);
    client.tokens('victim', 1, step, batch.tokens, tok.pad);
  }
  await exec.release();
  server.flush('server');
  client.flush('clients');
  return readCapture(dir);
}

test('the attack reads shallow activations back and fails under heavy noise; captures pair up by client, round and step', async () => {
  const clean = await capturedEmails(0);
  expect(clean.map((c) => `${c.client}:${c.round}:${c.step}`)).toEqual(['victim:1:1', 'victim:1:2']);
  const head = serverViewHead(cfg, null);
  expect(head.source).toMatch(/initial weights \(preset tiny, seed 0\)/);
  const open = await invertActivations(cfg, head, clean, options);
  expect(open.positions).toBeGreaterThan(300);
  expect(open.token_accuracy).toBeGreaterThan(0.5);
  expect(open.rouge_l_f1).toBeGreaterThan(0.2);
  // Noise at 20x the activations' scale leaves nothing to read (the attacker trains on it too).
  const drowned = await invertActivations(cfg, head, await capturedEmails(20 * open.activation_rms), {
    ...options,
    sigma: 20 * open.activation_rms,
  });
  expect(drowned.token_accuracy).toBeLessThan(open.token_accuracy / 2);
}, 120_000);

test('with relative noise the attacker noises its pairs relative to their scale, as the clients do (not by sigma in absolute units)', async () => {
  const clean = await capturedEmails(0);
  const head = serverViewHead(cfg, null);
  const open = await invertActivations(cfg, head, clean, options);
  expect(open.activation_rms).toBeLessThan(0.2); // h_A is small here, so 0.5 absolute drowns it and 0.5 x RMS does not
  const relative = await invertActivations(cfg, head, clean, { ...options, sigma: 0.5, relative: true });
  const absolute = await invertActivations(cfg, head, clean, { ...options, sigma: 0.5, relative: false });
  expect(relative.relative).toBe(true);
  expect(relative.token_accuracy).toBeGreaterThan(open.token_accuracy / 2);
  expect(absolute.token_accuracy).toBeLessThan(open.token_accuracy / 2);
}, 120_000);
