import { mkdtempSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { FlglmProcess } from '../helpers/processes.js';
import { runFolder, simulatedRecords } from '../helpers/run-records.js';

const status = (url: string) =>
  new Promise<number>((resolve, reject) => get(url, (r) => resolve(r.statusCode ?? 0)).on('error', reject));

test('flglm dashboard RUN_DIR serves the run folder and stops on Ctrl-C; a wrong folder is one line', async () => {
  const bad = runCli(['dashboard', join(tmpdir(), 'no-such-run')]);
  expect(bad.code).toBe(1);
  expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  expect(bad.stderr).toMatch(/no-such-run is not a run folder .*Fix: give a folder flglm run made/);
  const p = new FlglmProcess([
    'dashboard',
    runFolder(simulatedRecords({ clients: 2, rounds: 1, steps: 1 })),
    '--port',
    '0',
  ]);
  try {
    const [, url] = await p.waitFor(/flglm dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/, 30_000);
    expect(await status(url)).toBe(200);
    expect(await status(url + 'lib/sections.js')).toBe(200);
    p.kill('SIGINT');
    expect(await p.exited).toBe(0);
  } finally {
    p.kill();
  }
});

test('flglm server --ui-port: the ready file names the page; beyond loopback without TLS it refuses', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-ui-'));
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    'model: {preset: tiny}\nsecurity: {tls: false, payload_encryption: false}\nfederation: {clients: 2}\n',
  );
  const refused = runCli([
    'server',
    '--config',
    cfg,
    '--insecure',
    '--port',
    '0',
    '--ui-port',
    '0',
    '--ui-host',
    '0.0.0.0',
  ]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain(
    '--ui-port: the dashboard binds beyond loopback (0.0.0.0) only over TLS with a token',
  );
  const ready = join(dir, 'ready.json');
  const p = new FlglmProcess([
    'server',
    '--config',
    cfg,
    '--insecure',
    '--port',
    '0',
    '--ui-port',
    '0',
    '--ready-file',
    ready,
  ]);
  try {
    const [, url] = await p.waitFor(/flglm dashboard: (http:\/\/127\.0\.0\.1:(\d+)\/)/, 60_000);
    await p.waitFor(/waiting for 2 clients/, 30_000);
    const { readFileSync } = await import('node:fs');
    expect(`http://127.0.0.1:${JSON.parse(readFileSync(ready, 'utf8')).ui_port}/`).toBe(url);
    expect(await status(url)).toBe(200);
  } finally {
    p.kill();
    await p.exited;
  }
});
