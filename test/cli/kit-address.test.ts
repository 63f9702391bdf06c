import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess, freePort } from '../helpers/processes.js';
import { runCli } from '../helpers/cli.js';
import { withDefaultPort } from '../../src/security/kit-server.js';
import type { ClientSummary, ServerReady, ServerSummary } from '../../src/launcher/summaries.js';

test("a host without a port means 50051, not gRPC's 443", () => {
  expect(withDefaultPort('fl.example.org')).toBe('fl.example.org:50051');
  expect(withDefaultPort('10.0.0.5:7000')).toBe('10.0.0.5:7000');
  expect(withDefaultPort('::1')).toBe('[::1]:50051');
  expect(withDefaultPort('[::1]:7000')).toBe('[::1]:7000');
});

test('client kits carry the server address: `flglm client --pki KIT --data SILO` is enough; server and clients write their summaries', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-kit-'));
  const port = await freePort();
  expect(
    runCli([
      'keygen',
      '--out',
      join(dir, 'pki'),
      '--clients',
      'a,b',
      '--server-address',
      `127.0.0.1:${port}`,
      '--key-bits',
      '2048',
    ]).code,
  ).toBe(0);
  expect(JSON.parse(readFileSync(join(dir, 'pki', 'clients', 'a', 'server.json'), 'utf8'))).toEqual({
    address: `127.0.0.1:${port}`,
    server_name: 'localhost',
  });
  expect(
    runCli(['keygen', '--out', join(dir, 'bad'), '--server-address', 'http://x:1', '--key-bits', '2048']).stderr,
  ).toMatch(/--server-address: "http:\/\/x:1" is not HOST or HOST:PORT/);
  expect(
    runCli(['data', 'prepare', '--out', join(dir, 'data'), '--clients', '2', '--max-examples', '20', '--seed', '3'])
      .code,
  ).toBe(0);
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    'model: {preset: tiny}\ndata: {batch_size: 2, seq_len: 32}\neval: {max_batches: 1}\nfederation: {mode: sequential, clients: 2, rounds: 1, local_steps: 2}\n',
  );
  const procs = [
    new FlglmProcess([
      'server',
      '--config',
      cfg,
      '--pki',
      join(dir, 'pki', 'server'),
      '--port',
      String(port),
      '--ready-file',
      join(dir, 'ready.json'),
      '--summary-json',
      join(dir, 'server.json'),
    ]),
  ];
  try {
    await procs[0].waitFor(/listening on/);
    const ready = JSON.parse(readFileSync(join(dir, 'ready.json'), 'utf8')) as ServerReady;
    expect(ready).toMatchObject({ port, host: '127.0.0.1', address: `127.0.0.1:${port}`, mode: 'sequential' });
    for (const id of ['a', 'b']) {
      procs.push(
        new FlglmProcess([
          'client',
          '--pki',
          join(dir, 'pki', 'clients', id),
          '--data',
          join(dir, 'data', id === 'a' ? 'client-0' : 'client-1'),
          '--test',
          join(dir, 'data', 'test'),
          '--summary-json',
          join(dir, `${id}.json`),
        ]),
      );
    }
    expect(await Promise.all(procs.map((p) => p.exited))).toEqual([0, 0, 0]);
    const server = JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')) as ServerSummary;
    expect(server).toMatchObject({ mode: 'sequential', rounds: 1, steps: 4 });
    expect(server.eval_summary.examples).toBeGreaterThan(0);
    for (const id of ['a', 'b']) {
      const c = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8')) as ClientSummary;
      expect(c).toMatchObject({ client_id: id, steps: 2 });
      expect(c.losses).toHaveLength(2);
      expect(c.phases.head_forward).toBeGreaterThan(0);
    }
  } finally {
    for (const p of procs) p.kill('SIGKILL');
  }
});
