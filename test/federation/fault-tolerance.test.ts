import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess } from '../helpers/processes.js';
import { runCli } from '../helpers/cli.js';
import { readMetrics } from '../../src/launcher/launcher.js';

const dir = mkdtempSync(join(tmpdir(), 'flglm-fault-'));
const procs: FlglmProcess[] = [];
const start = (args: string[]) => {
  const p = new FlglmProcess(args);
  procs.push(p);
  return p;
};

beforeAll(() => {
  expect(runCli(['keygen', '--out', join(dir, 'pki'), '--clients', 'c0,c1,c2', '--key-bits', '2048']).code).toBe(0);
  expect(
    runCli(['data', 'prepare', '--out', join(dir, 'data'), '--clients', '3', '--max-examples', '40', '--seed', '2'])
      .code,
  ).toBe(0);
});

afterEach(() => {
  for (const p of procs.splice(0)) p.kill('SIGKILL');
});

function writeConfig(name: string, rounds: number, localSteps: number): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `seed: 4\nmodel: {preset: tiny}\ndata: {batch_size: 4, seq_len: 48}\neval: {max_batches: 2}\nfederation: {mode: sequential, clients: 3, rounds: ${rounds}, local_steps: ${localSteps}, min_clients: 2, client_timeout_ms: 20000}\n`,
  );
  return file;
}

function client(i: number, port: string, extra: string[] = []): FlglmProcess {
  return start([
    'client',
    '--data',
    join(dir, 'data', `client-${i}`),
    '--test',
    join(dir, 'data', 'test'),
    '--server',
    `127.0.0.1:${port}`,
    '--pki',
    join(dir, 'pki', 'clients', `c${i}`),
    ...extra,
  ]);
}

describe('fault tolerance with real processes over mTLS on 127.0.0.1', () => {
  test('a client killed mid-round is dropped, the round completes with the others, and it rejoins', async () => {
    const cfg = writeConfig('drop', 5, 15);
    const metrics = join(dir, 'drop-metrics.jsonl');
    const server = start([
      'server',
      '--config',
      cfg,
      '--pki',
      join(dir, 'pki', 'server'),
      '--port',
      '0',
      '--metrics',
      metrics,
      '--summary-json',
      join(dir, 'drop-summary.json'),
    ]);
    const port = (await server.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1];
    client(0, port);
    const victim = client(1, port);
    client(2, port);
    await victim.waitFor(/round 1 step 2 /);
    victim.kill('SIGKILL');
    client(1, port); // the same client comes back, and takes part from the next round it finds
    await server.waitFor(/client c1 dropped from round 1/);
    expect(await server.exited).toBe(0);
    const rounds = readMetrics(metrics).filter((r) => r.type === 'round') as {
      round: number;
      clients: string[];
      dropped: string[];
    }[];
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5]);
    expect(rounds[0].clients).toEqual(['c0', 'c2']);
    expect(rounds[0].dropped).toEqual(['c1']);
    expect(rounds[4].clients).toEqual(['c0', 'c1', 'c2']);
  });

  test('a server killed with SIGKILL resumes from the last completed round; clients reconnect', async () => {
    const cfg = writeConfig('resume', 4, 3);
    const metrics = join(dir, 'resume-metrics.jsonl');
    const ckpt = join(dir, 'resume-ckpt');
    const args = (port: string) => [
      'server',
      '--config',
      cfg,
      '--pki',
      join(dir, 'pki', 'server'),
      '--port',
      port,
      '--metrics',
      metrics,
      '--checkpoints',
      ckpt,
      '--summary-json',
      join(dir, 'resume-summary.json'),
    ];
    const first = start(args('0'));
    const port = (await first.waitFor(/listening on 127\.0\.0\.1:(\d+)/))[1];
    const clients = [0, 1, 2].map((i) => client(i, port));
    await first.waitFor(/round 2\/4/);
    first.kill('SIGKILL');
    await first.exited;
    const resumed = start([...args(port), '--resume']);
    await resumed.waitFor(/resumed from .*round 2 of 4 complete/);
    expect(await resumed.exited).toBe(0);
    for (const c of clients) expect(await c.exited).toBe(0);
    const rounds = readMetrics(metrics)
      .filter((r) => r.type === 'round')
      .map((r) => r.round);
    expect(rounds).toEqual([1, 2, 3, 4]);
    const summary = JSON.parse(readFileSync(join(dir, 'resume-summary.json'), 'utf8')) as {
      history: { round: number }[];
    };
    expect(summary.history.map((h) => h.round)).toEqual([1, 2, 3, 4]);
  });
});
