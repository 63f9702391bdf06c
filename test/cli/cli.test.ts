import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVER_MODES } from '../../src/server/modes/lookup.js';
import { runCli } from '../helpers/cli.js';

describe('flglm CLI', () => {
  test('--help lists the command map', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['keygen', 'server', 'client', 'run', 'train', 'eval', 'data', 'config']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${cmd}\\b`, 'm'));
    }
  });

  test('--version prints the package version', () => {
    const r = runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  test('config validate accepts the quickstart and prints the resolved config', () => {
    const r = runCli(['config', 'validate', 'configs/quickstart.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mode: sequential');
    expect(r.stdout).toContain('name: relay');
    expect(r.stdout).toContain('heartbeat_ms: 2000');
  });

  test('config validate rejects a broken copy with one line per problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'flglm-cli-'));
    const file = join(dir, 'broken.yaml');
    writeFileSync(file, readFileSync('configs/quickstart.yaml', 'utf8').replace('mode: sequential', 'mode: sequental'));
    const r = runCli(['config', 'validate', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`federation\\.mode: expected ${SERVER_MODES.join('\\|')}, got "sequental" \\(line \\d+\\)`),
    );
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  test('a missing file is one clear line, no stack trace', () => {
    const r = runCli(['config', 'validate', 'does/not/exist.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('config file not found: does/not/exist.yaml');
  });

  test('a bad option value is one line naming the flag', () => {
    for (const args of [
      ['data', 'prepare', '--out', 'unused', '--clients', 'zero'],
      ['keygen', '--out', 'unused', '--days', '-1'],
    ]) {
      const r = runCli(args);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--(clients|days): expected an integer >= 1, got "(zero|-1)"/);
    }
  });

  test('an unknown command fails with a pointer to help', () => {
    const r = runCli(['bogus']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown command 'bogus'");
  });
});

test('flglm train saves into a new run folder by default, and checks --out before training', () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-train-'));
  const cfg = join(dir, 'c.yaml');
  writeFileSync(
    cfg,
    'name: t\noutput_dir: out\nmodel: {preset: tiny}\ndata: {batch_size: 2, seq_len: 16, max_examples: 10}\neval: {max_batches: 1}\n',
  );
  const r = runCli(['train', cfg, '--steps', '2', '--quiet']);
  expect(r.stderr).toBe('');
  const m = /^model: (\S+) /m.exec(r.stdout);
  expect(m?.[1]).toMatch(new RegExp(`^${join(dir, 'out', 't-centralized-')}\\d{8}-\\d{6}$`));
  expect(readFileSync(join(m![1], 'checkpoint.json'), 'utf8')).toContain('"step": 2');
  const t0 = Date.now();
  const bad = runCli(['train', cfg, '--steps', '200', '--out', '/proc/flglm-out']);
  expect(bad.stderr).toMatch(/--out \/proc\/flglm-out is under a virtual filesystem/);
  expect(Date.now() - t0).toBeLessThan(15000);
});
