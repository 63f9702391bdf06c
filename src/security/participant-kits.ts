import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readPem, readPrivateKey, writePrivateKey } from './files.js';
import { ensureFederationSecret, writeFederationSecret } from './federation-secret.js';
import { describeCert, issueCertificate } from './certificates.js';
import { writeKitServer, type KitServer } from './kit-server.js';
import { paths, type ManifestEntry } from './manifest.js';

/** One participant's startup kit (client or sub-server), its keys and its certificate. */
const CLIENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function rsaKeyPair(bits: number): { publicKey: string; privateKey: string } {
  return generateKeyPairSync('rsa', {
    modulusLength: bits,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

export function daysFromNow(days: number): Date {
  return new Date(Date.now() + days * 86400 * 1000);
}

/** Ids a client may not take: sub-server identities, and the names of the PKI's own parts. */
const RESERVED_ID = /^(sub-server|ca$|server$)/i;

export function checkId(id: string, what: 'client' | 'sub-server'): void {
  if (!CLIENT_ID.test(id))
    throw new UserError(`${what} id "${id}" is not allowed: use letters, digits, ".", "_" or "-" (up to 64)`);
  if (what === 'client' && RESERVED_ID.test(id))
    throw new UserError(`client id "${id}" is reserved (sub-server identities and the PKI's own names); pick another`);
}

/** A private folder (keys inside): 0700 whatever the umask. */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
}

/**
 * Build a kit in a temporary sibling folder and rename it into place, so a failure never leaves a
 * half-written kit under its real name.
 */
function buildFolder(dir: string, fill: (tmp: string) => void): void {
  mkdirSync(dirname(dir), { recursive: true });
  const tmp = mkdtempSync(join(dirname(dir), `.${basename(dir)}.tmp-`));
  try {
    chmodSync(tmp, 0o700);
    fill(tmp);
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** A participant's TLS key pair and its certificate, signed by the PKI's CA (read from `root`). */
function issueKitIdentity(
  root: string,
  commonName: string,
  role: 'client' | 'sub-server',
  keyBits: number,
  days: number,
): { caCertPem: string; tls: { publicKey: string; privateKey: string }; certPem: string } {
  const p = paths(root);
  const caCertPem = readPem(p.caCert, 'CA certificate');
  const caKeyPem = readPrivateKey(p.caKey);
  const tls = rsaKeyPair(keyBits);
  const certPem = issueCertificate({
    commonName,
    publicKeyPem: tls.publicKey,
    issuer: { certPem: caCertPem, keyPem: caKeyPem },
    signingKeyPem: caKeyPem,
    usage: 'client',
    role,
    notAfter: daysFromNow(days),
  });
  return { caCertPem, tls, certPem };
}

export function createClientKit(
  root: string,
  id: string,
  days: number,
  keyBits: number,
  server: KitServer,
): ManifestEntry {
  checkId(id, 'client');
  const p = paths(root);
  const { caCertPem, tls, certPem } = issueKitIdentity(root, id, 'client', keyBits, days);
  const payload = rsaKeyPair(keyBits);
  const dir = p.client(id);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true }); // a revoked client's old kit, re-issued
  buildFolder(dir, (tmp) => {
    writeFileAtomic(join(tmp, 'ca.crt'), caCertPem);
    writeFileAtomic(join(tmp, 'client.crt'), certPem);
    writePrivateKey(join(tmp, 'client.key'), tls.privateKey);
    writePrivateKey(join(tmp, 'payload.key'), payload.privateKey);
    writeFileAtomic(join(tmp, 'payload.pub'), payload.publicKey);
    writeFileAtomic(join(tmp, 'client.json'), JSON.stringify({ id }, null, 2));
    writeKitServer(tmp, server);
    writeFederationSecret(tmp, ensureFederationSecret(dirname(p.caKey)));
  });
  // The server wraps each session key with the client's payload public key.
  writeFileAtomic(join(p.server, 'payload-keys', `${id}.pub`), payload.publicKey);
  return {
    id,
    role: 'client',
    ...describeCert(certPem),
    payloadKeyFingerprint256: fingerprintOfPublicKey(payload.publicKey),
  };
}

/** A sub-server kit: a TLS identity the parent server accepts on its SubServer stream. */
export function createSubServerKit(
  root: string,
  id: string,
  days: number,
  keyBits: number,
  server: KitServer,
): ManifestEntry {
  checkId(id, 'sub-server');
  const { caCertPem, tls, certPem } = issueKitIdentity(root, `sub-server.${id}`, 'sub-server', keyBits, days);
  buildFolder(join(root, 'subservers', id), (dir) => {
    writeFileAtomic(join(dir, 'ca.crt'), caCertPem);
    writeFileAtomic(join(dir, 'client.crt'), certPem);
    writePrivateKey(join(dir, 'client.key'), tls.privateKey);
    writeKitServer(dir, server);
  });
  return { id, role: 'sub-server', ...describeCert(certPem) };
}

/** SHA-256 of the DER SubjectPublicKeyInfo, formatted like X509Certificate.fingerprint256. */
export function fingerprintOfPublicKey(pem: string): string {
  const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').toUpperCase().match(/../g)!.join(':');
}
