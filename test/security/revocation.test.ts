import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addClient, issueCertificate, keygen } from '../../src/security/pki.js';
import { revokeClient } from '../../src/security/revocation.js';
import { RevocationChecker } from '../../src/security/tls.js';
import { readPrivateKey } from '../../src/security/files.js';
import { SplitServer } from '../../src/server/split-server.js';
import { startTransport } from '../../src/server/transport.js';
import { connect, hello } from '../../src/client/transport.js';
import { runClient } from '../../src/client/split-client.js';
import { resolveData } from '../../src/config/experiment.js';
import { config } from '../helpers/federation.js';

const root = mkdtempSync(join(tmpdir(), 'flglm-revoke-'));
const pki = join(root, 'pki');
const kit = join(pki, 'server');
const list = join(kit, 'revoked.json');

beforeAll(() => {
  keygen({
    out: pki,
    clients: ['alice', 'bob', 'carol', 'dave'],
    subServers: ['s1'],
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 30,
    keyBits: 2048,
  });
});

/** The transport alone, with its log captured. */
async function transportWithLog(revocation = new RevocationChecker(list)) {
  const logs: string[] = [];
  const t = await startTransport({
    kit,
    port: 0,
    revocation,
    log: (m) => logs.push(m),
    onSession: (call) => call.end(),
    onSubServer: (call) => call.end(),
  });
  return { t, logs, target: `127.0.0.1:${t.port}` };
}

test('a client revoked during training is dropped within one step and gets no further round keys', async () => {
  const cfg = config(`
seed: 2
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 24}
eval: {max_batches: 1}
federation: {mode: sequential, clients: 2, rounds: 3, local_steps: 3, min_clients: 1, client_timeout_ms: 20000}
`);
  const data = resolveData(cfg);
  const revocation = new RevocationChecker(list);
  const events: Record<string, unknown>[] = [];
  const server = new SplitServer({ cfg, kit, revocation, onMetric: (r) => events.push(r) });
  await server.init();
  const transport = await startTransport({ kit, port: 0, revocation, onSession: server.onSession });
  try {
    const target = `127.0.0.1:${transport.port}`;
    const client = (id: string, i: number, onStep?: (round: number, step: number) => void) =>
      runClient({
        target,
        kit: join(pki, 'clients', id),
        serverName: 'localhost',
        train: data.silos[i],
        test: data.test,
        reconnectAttempts: 0,
        onStep,
      });
    const alice = client('alice', 0);
    let bobSteps = 0;
    const bob = client('bob', 1, (round, step) => {
      bobSteps++;
      if (round === 1 && step === 1) revokeClient(pki, 'bob');
    });
    await expect(bob).rejects.toThrow(/client "bob" has been revoked/);
    expect(bobSteps).toBeLessThanOrEqual(2);
    expect((await alice).losses).toHaveLength(9);
    const summary = await server.done;
    expect(summary.history.map((h) => h.clients)).toEqual([['alice'], ['alice'], ['alice']]);
    expect(summary.history[0].dropped).toEqual(['bob']);
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'cut_off',
        client: 'bob',
        reason: expect.stringMatching(/client "bob" has been revoked/),
      }),
    );
  } finally {
    await transport.close();
    await server.close();
  }
});

describe('the revocation list fails closed', () => {
  test('missing: everyone is refused with a message naming the file, logged once per peer per minute', async () => {
    const { t, logs, target } = await transportWithLog();
    const moved = `${list}.away`;
    renameSync(list, moved);
    try {
      for (let i = 0; i < 20; i++) {
        const conn = connect(target, join(pki, 'clients/alice'), 'localhost');
        await expect(hello(conn)).rejects.toThrow(`revocation list ${list} is missing`);
        conn.client.close();
      }
      expect(logs.filter((l) => l.includes('cannot check revocations'))).toHaveLength(1);
    } finally {
      renameSync(moved, list);
      await t.close();
    }
  });

  test('corrupt: everyone is refused, naming the file', async () => {
    const { t, target } = await transportWithLog();
    const good = readFileSync(list);
    writeFileSync(list, '{"revoked": [');
    try {
      const conn = connect(target, join(pki, 'clients/alice'), 'localhost');
      await expect(hello(conn)).rejects.toThrow(`revocation list ${list} is unreadable`);
      conn.client.close();
    } finally {
      writeFileSync(list, good);
      await t.close();
    }
  });

  test('a server may enforce a list kept outside its kit (--revoked)', async () => {
    const elsewhere = join(root, 'ops-revoked.json');
    const carol = JSON.parse(readFileSync(join(pki, 'manifest.json'), 'utf8')).entries.find(
      (e: { id: string }) => e.id === 'carol',
    );
    writeFileSync(
      elsewhere,
      JSON.stringify({
        revoked: [{ id: 'carol', serial: carol.serial, fingerprint256: carol.fingerprint256, at: '' }],
      }),
    );
    const { t, target } = await transportWithLog(new RevocationChecker(elsewhere));
    try {
      const conn = connect(target, join(pki, 'clients/carol'), 'localhost');
      await expect(hello(conn)).rejects.toThrow('client "carol" has been revoked');
      conn.client.close();
    } finally {
      await t.close();
    }
  });
});

describe('only sub-server certificates attach as trunk replicas', () => {
  async function subServerStream(target: string, clientKit: string): Promise<grpc.ServiceError | 'open'> {
    const conn = connect(target, clientKit, 'localhost');
    const call = (conn.client.SubServer as () => grpc.ClientDuplexStream<unknown, unknown>)();
    return new Promise((resolve) => {
      call.on('error', (e: grpc.ServiceError) => {
        conn.client.close();
        resolve(e);
      });
      call.on('end', () => {
        conn.client.close();
        resolve('open');
      });
      call.on('data', () => {});
    });
  }

  test('a client certificate named like a sub-server is refused; add-client cannot mint one', async () => {
    expect(() => addClient(pki, 'sub-server.evil', 30, 2048)).toThrow(/reserved/);
    // Even a CA-signed client certificate whose CN imitates a sub-server lacks the sub-server profile.
    const caKey = readPrivateKey(join(pki, 'ca/ca.key'));
    const caCert = readFileSync(join(pki, 'ca/ca.crt'), 'utf8');
    const keys = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const forged = join(root, 'forged');
    mkdirSync(forged);
    writeFileSync(join(forged, 'ca.crt'), caCert);
    writeFileSync(
      join(forged, 'client.crt'),
      issueCertificate({
        commonName: 'sub-server.evil',
        publicKeyPem: keys.publicKey,
        issuer: { certPem: caCert, keyPem: caKey },
        signingKeyPem: caKey,
        usage: 'client',
        role: 'client',
      }),
    );
    writeFileSync(join(forged, 'client.key'), keys.privateKey, { mode: 0o600 });
    const { t, target } = await transportWithLog();
    try {
      const refused = await subServerStream(target, forged);
      expect(refused).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
        details: expect.stringContaining('is not a sub-server certificate'),
      });
      expect(await subServerStream(target, join(pki, 'clients/dave'))).toMatchObject({
        code: grpc.status.PERMISSION_DENIED,
      });
      expect(await subServerStream(target, join(pki, 'subservers/s1'))).toBe('open');
    } finally {
      await t.close();
    }
  });
});
