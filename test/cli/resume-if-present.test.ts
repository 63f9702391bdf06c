import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess } from '../helpers/processes.js';

test('--resume-if-present starts fresh without a checkpoint (a new pod) and needs --checkpoints', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-rip-'));
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(cfg, 'model: {preset: tiny}\nsecurity: {tls: false, payload_encryption: false}\n');
  const fresh = new FlglmProcess([
    'server',
    '--config',
    cfg,
    '--insecure',
    '--port',
    '0',
    '--checkpoints',
    join(dir, 'ckpt'),
    '--resume-if-present',
  ]);
  try {
    await fresh.waitFor(/listening on/);
    expect(fresh.output).toMatch(/no checkpoint in .*ckpt: starting fresh/);
  } finally {
    fresh.kill();
  }
  const bad = new FlglmProcess(['server', '--config', cfg, '--insecure', '--port', '0', '--resume-if-present']);
  expect(await bad.exited).not.toBe(0);
  expect(bad.output).toMatch(/--resume-if-present needs --checkpoints DIR/);
}, 60000);
