import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { PRESETS } from '../../src/model/config.js';
import { toHfConfig } from '../../src/model/hf-config.js';
import { encodeSafetensors } from '../../src/model/safetensors.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_MODES } from '../../src/server/modes/lookup.js';
import { runCli } from '../helpers/cli.js';

describe('flglm run (server and clients as separate processes)', () => {
  test('writes the run folder, summary and a self-contained report (task generate: both models scored on greedy generations)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-run-'));
    const cfg = join(dir, 'exp.yaml');
    writeFileSync(
      cfg,
      'name: e2e\nseed: 2\nbaseline: centralized\nmodel: {preset: tiny}\ndata: {task: generate, batch_size: 4, seq_len: 48, max_examples: 30}\nfederation: {mode: batch, clients: 2, rounds: 2, local_steps: 3}\neval: {max_batches: 2, max_new_tokens: 6}\n',
    );
    const out = join(dir, 'run');
    const r = runCli(['run', cfg, '--out', out, '--quiet', '--summary-json', join(dir, 'copy.json')], {
      timeoutMs: 180000,
    });
    expect(r.stderr + r.stdout).not.toMatch(/at .*\.js:\d+/);
    expect(r.code).toBe(0);
    for (const f of [
      'config.yaml',
      'metrics.jsonl',
      'summary.json',
      'report.html',
      'logs/server.log',
      'logs/client-0.log',
      'logs/client-1.log',
      'logs/baseline.log',
      'checkpoints/server/latest/checkpoint.json',
      'server-ready.json',
      'summaries/server.json',
      'summaries/client-0.json',
      'summaries/client-1.json',
      'summaries/baseline.json',
    ]) {
      expect(existsSync(join(out, f))).toBe(true);
    }
    expect(readdirSync(join(out, 'checkpoints', 'clients')).sort()).toEqual(['client-0', 'client-1']);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    for (const k of [
      'mode',
      'clients',
      'rounds',
      'steps',
      'tokens',
      'wall_s',
      'tokens_per_s',
      'train_loss_final',
      'eval',
      'baseline',
    ])
      expect(summary).toHaveProperty(k);
    expect(summary).toMatchObject({ mode: 'batch', clients: 2, rounds: 2, steps: 12 });
    for (const k of ['loss', 'perplexity', 'accuracy']) {
      expect(Number.isFinite(summary.eval[k])).toBe(true);
      expect(Number.isFinite(summary.baseline.eval[k])).toBe(true);
    }
    for (const g of [summary.generation, summary.baseline.generation]) {
      expect(g.examples).toBe(8); // eval.max_batches x batch_size held-out prompts
      expect(g.rouge_l_f1).toBeGreaterThanOrEqual(0);
      expect(g.samples[0].reference.length).toBeGreaterThan(0);
    }
    expect(JSON.parse(readFileSync(join(dir, 'copy.json'), 'utf8'))).toEqual(summary);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(metrics.filter((m) => m.type === 'step')).toHaveLength(12);
    expect(metrics.filter((m) => m.type === 'round')).toHaveLength(2);
    for (const m of metrics.filter((x) => x.type === 'round'))
      expect(Object.keys(m.round_end).sort()).toEqual(['aggregate_s', 'broadcast_s', 'checkpoint_s', 'replicas_s']);
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('centralized baseline');
    expect(html).toContain('Example generations');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  test('a broken config is one clear line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-run-'));
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, 'federation: {mode: hierachical}\n');
    const r = runCli(['run', cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`federation.mode: expected ${SERVER_MODES.join('|')}, got "hierachical" (line 1)`);
  });
});

describe('flglm run interrupted', () => {
  test('Ctrl-C stops the server and every client', async () => {
    const { FlglmProcess } = await import('../helpers/processes.js');
    const { execFileSync } = await import('node:child_process');
    const dir = mkdtempSync(join(tmpdir(), 'flglm-run-'));
    const cfg = join(dir, 'long.yaml');
    writeFileSync(
      cfg,
      'model: {preset: tiny}\ndata: {batch_size: 4, seq_len: 48, max_examples: 30}\nfederation: {mode: sequential, clients: 2, rounds: 500, local_steps: 5}\n',
    );
    const out = join(dir, 'run');
    const run = new FlglmProcess(['run', cfg, '--out', out]);
    await run.waitFor(/server on 127\.0\.0\.1:\d+/, 60000);
    await run.waitFor(/federated .* [1-9]\d*\/5000/, 60000);
    run.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.output).toContain('interrupted; stopping the server and clients');
    const left = (() => {
      try {
        return execFileSync('pgrep', ['-f', out], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    })();
    expect(left).toBe('');
  });
});

describe('run folders', () => {
  test('two runs started in the same second get their own folders', async () => {
    const { createRunFolder } = await import('../../src/launcher/run-folder.js');
    const base = mkdtempSync(join(tmpdir(), 'flglm-runs-'));
    const dirs = Array.from({ length: 3 }, () => createRunFolder(undefined, base, 'same'));
    expect(new Set(dirs).size).toBe(3);
    expect(dirs[1]).toBe(`${dirs[0]}-2`);
  });

  test('bad data is refused before anything starts; a failing child fails the run with its own error line, and status.json says so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-run-'));
    const prep = runCli(['data', 'prepare', '--out', join(dir, 'data'), '--clients', '2', '--max-examples', '12']);
    expect(prep.code).toBe(0);
    writeFileSync(join(dir, 'data', 'client-1', 'broken.jsonl'), '{"text": "fine"}\n{not json\n');
    const base =
      'model: {preset: tiny}\ndata: {batch_size: 2, seq_len: 24, silos: [data/client-0, data/client-1], test: data/test}\nfederation: {mode: sequential, clients: 2, rounds: 2, local_steps: 1, client_timeout_ms: 20000}\neval: {max_batches: 1}\nsecurity: {tls: false, payload_encryption: false}\n';
    const cfg = join(dir, 'exp.yaml');
    writeFileSync(cfg, base);
    const out = join(dir, 'run');
    const early = runCli(['run', cfg, '--out', out, '--quiet'], { timeoutMs: 120000 });
    expect(early.code).not.toBe(0);
    expect(early.stderr.trim()).toBe(
      `flglm: ${join(dir, 'data', 'client-1', 'broken.jsonl')}:2: not valid JSON. Fix: one JSON object per line, {"text": ...} or {"prompt": ..., "completion": ...}`,
    );
    expect(existsSync(out)).toBe(false);
    // What only a child can find: preflight reads a model folder's config.json, the server its weights.
    writeFileSync(join(dir, 'data', 'client-1', 'broken.jsonl'), '{"prompt": "p", "completion": "ham"}\n');
    const model = join(dir, 'model');
    mkdirSync(model);
    writeFileSync(join(model, 'config.json'), JSON.stringify({ ...toHfConfig(PRESETS.tiny) }));
    writeFileSync(join(model, 'model.safetensors'), encodeSafetensors(new Map()));
    writeFileSync(cfg, base.replace('model: {preset: tiny}', 'model: {hf_path: model}'));
    const r = runCli(['run', cfg, '--out', out, '--quiet'], { timeoutMs: 120000 });
    expect(r.code).not.toBe(0);
    const reason = `the server failed: ${model}: weight model.embed_tokens.weight is missing from the safetensors files`;
    expect(r.stderr).toContain(reason);
    expect(r.stderr).toContain(`(log: ${join(out, 'logs', 'server.log')})`);
    const status = JSON.parse(readFileSync(join(out, 'status.json'), 'utf8'));
    expect(status.state).toBe('failed');
    expect(status.reason).toContain(reason);
    // The same --out is refused: it holds a run.
    expect(runCli(['run', cfg, '--out', out]).stderr).toMatch(
      /already holds a run \(status.json\)\. Fix: choose another --out, or continue it with flglm run --resume/,
    );
  });

  test('an interrupted run is continued by --resume from its last round checkpoint', async () => {
    const { FlglmProcess } = await import('../helpers/processes.js');
    const dir = mkdtempSync(join(tmpdir(), 'flglm-run-'));
    const cfg = join(dir, 'exp.yaml');
    writeFileSync(
      cfg,
      'model: {preset: tiny}\ndata: {batch_size: 2, seq_len: 24, max_examples: 12}\nfederation: {mode: sequential, clients: 2, rounds: 6, local_steps: 2}\neval: {max_batches: 1}\nsecurity: {tls: false, payload_encryption: false}\n',
    );
    const out = join(dir, 'run');
    const run = new FlglmProcess(['run', cfg, '--out', out]);
    const rounds = () =>
      existsSync(join(out, 'metrics.jsonl'))
        ? readFileSync(join(out, 'metrics.jsonl'), 'utf8')
            .split('\n')
            .filter((l) => l.includes('"type":"round"')).length
        : 0;
    for (let i = 0; i < 600 && rounds() < 2; i++) await new Promise((r) => setTimeout(r, 100));
    run.kill('SIGINT');
    expect(await run.exited).toBe(130);
    // Not a terminal: plain lines, no colour or cursor codes.
    expect(run.output).not.toContain('\u001b[');
    expect(run.output).toMatch(/server on 127\.0\.0\.1:\d+/);
    const status = JSON.parse(readFileSync(join(out, 'status.json'), 'utf8'));
    expect(status).toMatchObject({ state: 'failed', reason: expect.stringContaining(`flglm run --resume ${out}`) });
    const done = rounds();
    expect(done).toBeGreaterThanOrEqual(2);
    const r = runCli(['run', '--resume', out, '--quiet'], { timeoutMs: 120000 });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'status.json'), 'utf8')).state).toBe('finished');
    const roundNumbers = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((m) => m.type === 'round')
      .map((m) => m.round);
    // Rounds before the interruption, then the rest from the checkpoint (a round cut short is redone).
    expect(roundNumbers.slice(0, done)).toEqual(Array.from({ length: done }, (_, i) => i + 1));
    expect(roundNumbers[roundNumbers.length - 1]).toBe(6);
    expect(new Set(roundNumbers.slice(done))).toEqual(
      new Set(Array.from({ length: 6 - roundNumbers[done] + 1 }, (_, i) => roundNumbers[done] + i)),
    );
    expect(runCli(['run', '--resume', out]).stderr).toMatch(/that run finished; nothing to resume/);
  });
});
