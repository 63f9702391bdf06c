import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync, mkdirSync, cpSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keygen, addClient, issueCertificate, type Manifest } from '../../src/security/pki.js';
import { revokeClient } from '../../src/security/revocation.js';
import { startTransport, type RunningServer } from '../../src/server/transport.js';
import { connect, hello } from '../../src/client/transport.js';
import { loadProtocol, CHANNEL_OPTIONS } from '../../src/protocol/load.js';
import { readPrivateKey } from '../../src/security/files.js';

const root = mkdtempSync(join(tmpdir(), 'flglm-pki-'));
const pki = join(root, 'pki');
const otherPki = join(root, 'other');
let manifest: Manifest;
let server: RunningServer;
let target: string;

function rawHello(credentials: grpc.ChannelCredentials): Promise<grpc.ServiceError | { clientId: string }> {
  const { Client } = loadProtocol();
  const c = new Client(target, credentials, {
    ...CHANNEL_OPTIONS,
    'grpc.ssl_target_name_override': 'localhost',
  }) as unknown as grpc.Client & { Hello: (...args: unknown[]) => void };
  return new Promise((resolve) =>
    c.Hello(
      { version: '1' },
      { deadline: Date.now() + 5000 },
      (err: grpc.ServiceError | null, res: { clientId: string }) => {
        c.close();
        resolve(err ?? res);
      },
    ),
  );
}

beforeAll(async () => {
  manifest = keygen({
    out: pki,
    clients: ['alice', 'bob', 'carol'],
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 30,
    keyBits: 2048,
  });
  keygen({
    out: otherPki,
    clients: ['mallory'],
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 30,
    keyBits: 2048,
  });
  server = await startTransport({ kit: join(pki, 'server'), port: 0 });
  target = `127.0.0.1:${server.port}`;
});

afterAll(async () => {
  await server.close();
});

describe('keygen', () => {
  test('kits, permissions, SANs and manifest fingerprints', () => {
    for (const f of ['ca/ca.key', 'server/server.key', 'clients/alice/client.key', 'clients/alice/payload.key']) {
      expect(statSync(join(pki, f)).mode & 0o777).toBe(0o600);
    }
    const serverCert = new X509Certificate(readFileSync(join(pki, 'server/server.crt')));
    expect(serverCert.subjectAltName).toContain('DNS:localhost');
    expect(serverCert.subjectAltName).toContain('IP Address:127.0.0.1');
    for (const id of ['alice', 'bob', 'carol']) {
      const cert = new X509Certificate(readFileSync(join(pki, 'clients', id, 'client.crt')));
      const entry = manifest.entries.find((e) => e.id === id)!;
      expect(cert.subject).toContain(`CN=${id}`);
      expect(entry.fingerprint256).toBe(cert.fingerprint256);
      expect(entry.serial).toBe(cert.serialNumber);
      expect(readFileSync(join(pki, 'server/payload-keys', `${id}.pub`), 'utf8')).toBe(
        readFileSync(join(pki, 'clients', id, 'payload.pub'), 'utf8'),
      );
    }
  });

  test('openssl verify accepts client and server certificates', () => {
    const ca = join(pki, 'ca/ca.crt');
    for (const cert of ['server/server.crt', 'clients/alice/client.crt']) {
      expect(execFileSync('openssl', ['verify', '-CAfile', ca, join(pki, cert)], { encoding: 'utf8' })).toContain(
        ': OK',
      );
    }
  });

  test('an existing PKI is not overwritten without --force', () => {
    expect(() =>
      keygen({ out: pki, clients: ['x'], serverName: 'localhost', serverIps: [], days: 1, keyBits: 2048 }),
    ).toThrow(/already holds a CA key.*--force/);
  });

  test('a private key readable by others is refused, naming the file', () => {
    const copy = join(root, 'loose.key');
    writeFileSync(copy, readFileSync(join(pki, 'clients/alice/client.key')));
    chmodSync(copy, 0o644);
    expect(() => readPrivateKey(copy)).toThrow(`private key ${copy} has permissions 0644`);
  });
});

describe('mutual TLS handshake against a real server on 127.0.0.1', () => {
  test('a valid client is accepted and identified by its certificate', async () => {
    const conn = connect(target, join(pki, 'clients/alice'), 'localhost');
    await expect(hello(conn)).resolves.toMatchObject({ clientId: 'alice' });
    conn.client.close();
  });

  test('a client added later is accepted without touching the others', async () => {
    addClient(pki, 'dave', 30, 2048);
    const conn = connect(target, join(pki, 'clients/dave'), 'localhost');
    await expect(hello(conn)).resolves.toMatchObject({ clientId: 'dave' });
    conn.client.close();
  });

  test('a certificate from another CA is refused', async () => {
    const ca = readFileSync(join(pki, 'ca/ca.crt'));
    const r = await rawHello(
      grpc.credentials.createSsl(
        ca,
        readFileSync(join(otherPki, 'clients/mallory/client.key')),
        readFileSync(join(otherPki, 'clients/mallory/client.crt')),
      ),
    );
    expect((r as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    // The client's own preflight names the problem before any connection.
    const kit = join(root, 'mixed-kit');
    mkdirSync(kit, { recursive: true });
    cpSync(join(otherPki, 'clients/mallory'), kit, { recursive: true });
    writeFileSync(join(kit, 'ca.crt'), ca);
    expect(() => connect(target, kit, 'localhost')).toThrow(/was not issued by the CA in this kit/);
  });

  test('an expired certificate is refused', async () => {
    const caKey = readPrivateKey(join(pki, 'ca/ca.key'));
    const caCert = readFileSync(join(pki, 'ca/ca.crt'), 'utf8');
    const keys = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const expired = issueCertificate({
      commonName: 'eve',
      publicKeyPem: keys.publicKey,
      issuer: { certPem: caCert, keyPem: caKey },
      signingKeyPem: caKey,
      usage: 'client',
      notBefore: new Date(Date.now() - 10 * 86400e3),
      notAfter: new Date(Date.now() - 86400e3),
    });
    const r = await rawHello(
      grpc.credentials.createSsl(Buffer.from(caCert), Buffer.from(keys.privateKey), Buffer.from(expired)),
    );
    expect((r as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
    const kit = join(root, 'expired-kit');
    mkdirSync(kit, { recursive: true });
    writeFileSync(join(kit, 'ca.crt'), caCert);
    writeFileSync(join(kit, 'client.crt'), expired);
    writeFileSync(join(kit, 'client.key'), keys.privateKey, { mode: 0o600 });
    expect(() => connect(target, kit, 'localhost')).toThrow(/client\.crt expired on/);
  });

  test('a revoked client is refused with PERMISSION_DENIED naming it', async () => {
    const before = connect(target, join(pki, 'clients/bob'), 'localhost');
    await expect(hello(before)).resolves.toMatchObject({ clientId: 'bob' });
    before.client.close();
    revokeClient(pki, 'bob');
    const after = connect(target, join(pki, 'clients/bob'), 'localhost');
    await expect(hello(after)).rejects.toThrow('client "bob" has been revoked');
    after.client.close();
  });

  test('a client without a certificate is refused', async () => {
    const r = await rawHello(grpc.credentials.createSsl(readFileSync(join(pki, 'ca/ca.crt'))));
    expect((r as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
  });

  test('a plaintext client is refused', async () => {
    const conn = connect(target, null);
    await expect(hello(conn, 3000)).rejects.toThrow(/cannot reach the server|no answer/);
    conn.client.close();
  });
});
