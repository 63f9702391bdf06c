import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { FlglmProcess, freePort } from '../helpers/processes.js';
import { runCli } from '../helpers/cli.js';

// The README's "Running a real deployment" block, run as written, with only what makes it a
// loopback test: the server's name and address become localhost/127.0.0.1 on a free port, and
// --set makes the model tiny and the run short. A changed flag, command or file breaks this test.
function recipe(): string[] {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Running a real deployment'));
  const block = /```bash\n([\s\S]*?)```/.exec(section)![1];
  return block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.startsWith('npx flglm '));
}

const args = (line: string) => line.replace(/^npx flglm /, '').split(/\s+/);

test('the README deployment recipe works as written (loopback, tiny model)', async () => {
  const lines = recipe();
  expect(lines.map((l) => args(l)[0])).toEqual(['keygen', 'data', 'server', 'client']);
  const cwd = mkdtempSync(join(tmpdir(), 'flglm-recipe-'));
  const port = await freePort();
  const loopback = (line: string) =>
    line
      .replaceAll('server.example:50051', `127.0.0.1:${port}`)
      .replaceAll('server.example', 'localhost')
      .replaceAll('10.0.0.5', '127.0.0.1')
      .replace('--host 0.0.0.0', `--host 127.0.0.1 --port ${port}`)
      .replace('configs/deployment.yaml', resolve('configs/deployment.yaml'));
  const [keygen, data, server, client] = lines.map(loopback);
  expect(runCli([...args(keygen), '--key-bits', '2048'], { cwd }).code).toBe(0);
  expect(runCli([...args(data), '--max-examples', '12'], { cwd }).code).toBe(0);
  const tiny = [
    '--set',
    'model.preset=tiny',
    '--set',
    'data.batch_size=2',
    '--set',
    'data.seq_len=32',
    '--set',
    'federation.rounds=2',
    '--set',
    'eval.max_batches=1',
    '--set',
    'eval.every_rounds=2',
  ];
  const procs: FlglmProcess[] = [];
  try {
    procs.push(new FlglmProcess([...args(server), ...tiny], { cwd }));
    await procs[0].waitFor(/listening on 127\.0\.0\.1:\d+, waiting for 3 clients/);
    // The README shows alice's line; bob and carol run the same with their kit and silo.
    for (const [id, silo] of [
      ['alice', 'client-0'],
      ['bob', 'client-1'],
      ['carol', 'client-2'],
    ]) {
      procs.push(
        new FlglmProcess(
          args(client.replace('clients/alice', `clients/${id}`).replace('silos/client-0', `silos/${silo}`)),
          { cwd },
        ),
      );
    }
    const codes = await Promise.all(procs.map((p) => p.exited));
    expect([codes, procs[0].output.slice(-400)]).toEqual([
      [0, 0, 0, 0],
      expect.stringContaining('training finished: 2 rounds'),
    ]);
    expect(readFileSync(join(cwd, 'ckpt', 'latest', 'checkpoint.json'), 'utf8')).toContain('"round": 2');
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
});
