import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess, freePort } from '../helpers/processes.js';
import { prepareExamples, writePreparedData } from '../../src/data/prepare.js';

test('--log-format json: every log event is one JSON line with its role, message and fields (round, step, client)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-logs-'));
  const [silo] = writePreparedData(
    join(dir, 'data'),
    prepareExamples({
      dataset: 'spam-assassin',
      task: 'classify',
      clients: 1,
      partition: 'iid',
      testFraction: 0.1,
      seed: 1,
      maxExamples: 20,
    }),
  );
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    'model: {preset: tiny}\ndata: {batch_size: 2, seq_len: 24}\nfederation: {mode: sequential, clients: 1, rounds: 2, local_steps: 2}\neval: {max_batches: 1}\nsecurity: {tls: false, payload_encryption: false}\n',
  );
  const port = await freePort();
  const server = new FlglmProcess([
    'server',
    '--config',
    cfg,
    '--insecure',
    '--port',
    String(port),
    '--log-format',
    'json',
  ]);
  const client = new FlglmProcess([
    'client',
    '--insecure',
    '--name',
    'alice',
    '--server',
    `127.0.0.1:${port}`,
    '--data',
    silo,
    '--test',
    join(dir, 'data', 'test'),
    '--log-format',
    'json',
  ]);
  try {
    expect(await client.exited).toBe(0);
    expect(await server.exited).toBe(0);
    const stdoutLines = [/^flglm server .* listening on/, /^training finished/];
    const events = (p: FlglmProcess) =>
      p.output
        .trim()
        .split('\n')
        .filter((l) => !stdoutLines.some((re) => re.test(l)))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const serverEvents = events(server);
    expect(
      serverEvents.every((e) => e.role === 'server' && typeof e.msg === 'string' && typeof e.time === 'string'),
    ).toBe(true);
    expect(serverEvents.filter((e) => e.event === 'round').map((e) => e.round)).toEqual([1, 2]);
    expect(serverEvents.find((e) => e.event === 'join')).toMatchObject({ client: 'insecure-alice' }); // plaintext ids are marked as such
    const clientEvents = events(client).filter((e) => e.role === 'client');
    expect(clientEvents.filter((e) => e.event === 'step').map((e) => [e.round, e.step])).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
      [2, 2],
    ]);
  } finally {
    server.kill();
    client.kill();
  }
}, 60000);

test('--log-format refuses an unknown format', async () => {
  const p = new FlglmProcess(['client', '--insecure', '--data', '.', '--log-format', 'xml']);
  expect(await p.exited).not.toBe(0);
  expect(p.output).toMatch(/--log-format: expected pretty\|json, got "xml"/);
});
