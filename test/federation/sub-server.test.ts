import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess } from '../helpers/processes.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'flglm-sub-'));
const procs: FlglmProcess[] = [];
const start = (args: string[]) => {
  const p = new FlglmProcess(args);
  procs.push(p);
  return p;
};
afterAll(() => {
  for (const p of procs) p.kill('SIGKILL');
});

describe('hierarchical scale-out with a sub-server process', () => {
  test('a sub-server attaches over mTLS, hosts a trunk replica, and training completes', async () => {
    expect(
      runCli(['keygen', '--out', join(dir, 'pki'), '--clients', 'c0,c1', '--sub-servers', 's1', '--key-bits', '2048'])
        .code,
    ).toBe(0);
    expect(
      runCli([
        'data',
        'prepare',
        '--out',
        join(dir, 'data'),
        '--clients',
        '2',
        '--max-examples',
        '30',
        '--partition',
        'iid',
      ]).code,
    ).toBe(0);
    const cfg = join(dir, 'exp.yaml');
    writeFileSync(
      cfg,
      'seed: 1\nmodel: {preset: tiny}\ndata: {batch_size: 4, seq_len: 48}\neval: {max_batches: 1}\nfederation: {mode: hierarchical, clients: 2, rounds: 2, local_steps: 3, sub_servers: 1}\n',
    );
    const parent = start([
      'server',
      '--config',
      cfg,
      '--pki',
      join(dir, 'pki', 'server'),
      '--port',
      '0',
      '--expect-subs',
      '1',
      '--summary-json',
      join(dir, 'summary.json'),
    ]);
    const port = (await parent.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1];

    // A client certificate is not a sub-server certificate.
    const impostor = start([
      'server',
      '--role',
      'sub',
      '--parent',
      `127.0.0.1:${port}`,
      '--pki',
      join(dir, 'pki', 'clients', 'c0'),
    ]);
    expect(await impostor.exited).toBe(1);
    expect(impostor.output).toContain('certificate "c0" is not a sub-server certificate');

    const sub = start([
      'server',
      '--role',
      'sub',
      '--parent',
      `127.0.0.1:${port}`,
      '--pki',
      join(dir, 'pki', 'subservers', 's1'),
    ]);
    await parent.waitFor(/sub-server sub-server\.s1 attached: 2 trunk replicas/);
    const clients = [0, 1].map((i) =>
      start([
        'client',
        '--data',
        join(dir, 'data', `client-${i}`),
        '--test',
        join(dir, 'data', 'test'),
        '--server',
        `127.0.0.1:${port}`,
        '--pki',
        join(dir, 'pki', 'clients', `c${i}`),
      ]),
    );
    expect(await parent.exited).toBe(0);
    for (const c of clients) expect(await c.exited).toBe(0);
    expect(await sub.exited).toBe(0);
    expect(sub.output).toMatch(/trunk replica ready/);
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as { history: { clients: string[] }[] };
    expect(summary.history.map((h) => h.clients)).toEqual([
      ['c0', 'c1'],
      ['c0', 'c1'],
    ]);
  });
});
