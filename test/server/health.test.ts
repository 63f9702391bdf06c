import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess } from '../helpers/processes.js';
import { FEDERATION_SERVICE, ServerHealth, startHealthEndpoint } from '../../src/server/health.js';
import { startTransport } from '../../src/server/transport.js';

type HealthClient = grpc.Client & {
  check(req: { service: string }, cb: (e: grpc.ServiceError | null, r?: { status: string }) => void): void;
};
const HealthClient = grpc.makeClientConstructor(healthService, 'grpc.health.v1.Health') as unknown as new (
  address: string,
  creds: grpc.ChannelCredentials,
) => HealthClient;

function check(address: string, service: string): Promise<string> {
  const client = new HealthClient(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) =>
    client.check({ service }, (e, r) => {
      client.close();
      if (e) reject(e);
      else resolve(r!.status);
    }),
  );
}

test('the server answers the standard gRPC health check: SERVING once it listens with its workers up, on its own port and on --health-port', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-health-'));
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    'model: {preset: tiny}\nfederation: {clients: 2}\nsecurity: {tls: false, payload_encryption: false}\n',
  );
  const server = new FlglmProcess([
    'server',
    '--config',
    cfg,
    '--insecure',
    '--port',
    '0',
    '--health-port',
    '0',
    '--ready-file',
    join(dir, 'ready.json'),
  ]);
  try {
    await server.waitFor(/listening on/);
    const ready = JSON.parse(readFileSync(join(dir, 'ready.json'), 'utf8'));
    expect(ready.health_port).toBeGreaterThan(0);
    for (const port of [ready.health_port, ready.port]) {
      expect(await check(`127.0.0.1:${port}`, '')).toBe('SERVING');
      expect(await check(`127.0.0.1:${port}`, 'flglm.v1.Federation')).toBe('SERVING');
      await expect(check(`127.0.0.1:${port}`, 'no.such.Service')).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
    }
  } finally {
    server.kill('SIGTERM');
    await server.exited;
  }
}, 60000);

test('health says NOT_SERVING before the server serves and again once its federation finished, on both ports', async () => {
  const health = new ServerHealth();
  const transport = await startTransport({ kit: null, port: 0, onSession: () => {}, health });
  const probe = await startHealthEndpoint(health, '127.0.0.1', 0);
  const statuses = async () =>
    Promise.all(
      [transport.port, probe.port].flatMap((port) =>
        ['', FEDERATION_SERVICE].map((service) => check(`127.0.0.1:${port}`, service)),
      ),
    );
  try {
    expect(await statuses()).toEqual(Array(4).fill('NOT_SERVING'));
    health.set('SERVING');
    expect(await statuses()).toEqual(Array(4).fill('SERVING'));
    health.set('NOT_SERVING');
    expect(await statuses()).toEqual(Array(4).fill('NOT_SERVING'));
  } finally {
    await probe.close();
    await transport.close();
  }
});
