import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { writePrivateKey } from './files.js';
import { describeCert, issueCertificate } from './certificates.js';
import { DEFAULT_PORT, withDefaultPort } from './kit-server.js';
import { paths, readManifest, writeManifest, type Manifest, type ManifestEntry } from './manifest.js';
import {
  checkId,
  createClientKit,
  createSubServerKit,
  daysFromNow,
  privateDir,
  rsaKeyPair,
} from './participant-kits.js';

/**
 * `flglm keygen`: a small PKI laid out as startup kits (one folder per participant, copied to
 * that machine as is), like NVFlare's provisioning:
 *
 *   pki/ca/               ca.crt, ca.key                 (stays with the operator)
 *   pki/server/           ca.crt, server.crt, server.key, revoked.json, payload-keys/<id>.pub
 *   pki/clients/<id>/     ca.crt, client.crt, client.key, payload.key, payload.pub, server.json, federation.secret
 *   pki/manifest.json     ids, serials, SHA-256 fingerprints, expiry
 *
 * Key generation uses node:crypto; node-forge only builds and signs the X.509 certificates.
 */
export interface KeygenOptions {
  out: string;
  clients: string[];
  /** Sub-server kits (hierarchical scale-out), certificate CN "sub-server.<id>". */
  subServers?: string[];
  serverName: string;
  serverIps: string[];
  /** What clients and sub-servers dial (their kits' server.json); default `<serverName>:50051`. */
  serverAddress?: string;
  days: number;
  keyBits: number;
  force?: boolean;
}

export { issueCertificate, type IssueOptions } from './certificates.js';
export { paths, readManifest, writeManifest, type Manifest, type ManifestEntry } from './manifest.js';
export { fingerprintOfPublicKey } from './participant-kits.js';

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Every input of `keygen`, checked before anything is written. */
function checkKeygenOptions(o: KeygenOptions): void {
  if (o.clients.length === 0) throw new UserError('--clients: give at least one client id');
  const ids = new Set<string>();
  for (const id of o.clients) {
    checkId(id, 'client');
    if (ids.has(id)) throw new UserError(`client id "${id}" is listed twice`);
    ids.add(id);
  }
  const subs = new Set<string>();
  for (const id of o.subServers ?? []) {
    checkId(id, 'sub-server');
    if (subs.has(id)) throw new UserError(`sub-server id "${id}" is listed twice`);
    subs.add(id);
  }
  if (!DNS_NAME.test(o.serverName))
    throw new UserError(
      `--server-name: ${JSON.stringify(o.serverName.slice(0, 80))} is not a DNS name (letters, digits, "-" and dots; for an IP address use --server-ip)`,
    );
  for (const ip of o.serverIps)
    if (!isIP(ip))
      throw new UserError(`--server-ip: ${JSON.stringify(ip.slice(0, 80))} is not an IPv4 or IPv6 address`);
  if (
    o.serverAddress !== undefined &&
    !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(o.serverAddress)
  )
    throw new UserError(`--server-address: ${JSON.stringify(o.serverAddress.slice(0, 80))} is not HOST or HOST:PORT`);
  if (!(o.days > 0)) throw new UserError(`--days must be positive, got ${o.days}`);
  if (!(o.keyBits >= 2048)) throw new UserError(`--key-bits must be at least 2048, got ${o.keyBits}`);
}

/**
 * Create a whole PKI: CA, server kit, one kit per client, manifest. Everything is checked first,
 * built in a temporary sibling folder and renamed into place, so a failure leaves nothing behind
 * and an existing CA key is never replaced without --force (which moves the old PKI aside).
 */
export function keygen(o: KeygenOptions): Manifest & { replaced?: string } {
  checkKeygenOptions(o);
  const out = resolve(o.out);
  const existing = existsSync(out) ? readdirSync(out) : [];
  if (existing.length && !o.force) {
    const what = existsSync(paths(out).caKey) ? 'a CA key' : existsSync(paths(out).manifest) ? 'a PKI' : 'other files';
    throw new UserError(
      `${o.out} already holds ${what}; refusing to overwrite it. Fix: use another --out, \`flglm keygen add-client\`, or --force (the old folder is kept as ${o.out}.replaced-<time>)`,
    );
  }
  let manifest!: Manifest;
  const tmp = mkdtempSync(join(dirname(out), `.${basename(out)}.tmp-`));
  try {
    manifest = writePki(tmp, o);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let replaced: string | undefined;
  if (existsSync(out)) {
    if (existing.length) {
      replaced = `${out}.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      renameSync(out, replaced);
    } else rmSync(out, { recursive: true });
  }
  renameSync(tmp, out);
  chmodSync(out, 0o755);
  return replaced ? { ...manifest, replaced } : manifest;
}

function writePki(root: string, o: KeygenOptions): Manifest {
  const p = paths(root);
  const ca = rsaKeyPair(o.keyBits);
  const caCertPem = issueCertificate({
    commonName: 'flglm CA',
    publicKeyPem: ca.publicKey,
    signingKeyPem: ca.privateKey,
    isCa: true,
    notAfter: daysFromNow(o.days),
  });
  privateDir(join(root, 'ca'));
  writeFileAtomic(p.caCert, caCertPem);
  writePrivateKey(p.caKey, ca.privateKey);

  const srv = rsaKeyPair(o.keyBits);
  const serverCertPem = issueCertificate({
    commonName: o.serverName,
    publicKeyPem: srv.publicKey,
    issuer: { certPem: caCertPem, keyPem: ca.privateKey },
    signingKeyPem: ca.privateKey,
    usage: 'server',
    dnsNames: [o.serverName],
    ips: o.serverIps,
    notAfter: daysFromNow(o.days),
  });
  privateDir(p.server);
  mkdirSync(join(p.server, 'payload-keys'), { recursive: true });
  writeFileAtomic(join(p.server, 'ca.crt'), caCertPem);
  writeFileAtomic(join(p.server, 'server.crt'), serverCertPem);
  writePrivateKey(join(p.server, 'server.key'), srv.privateKey);
  writeFileAtomic(join(p.server, 'revoked.json'), JSON.stringify({ revoked: [] }, null, 2));

  const server = { address: withDefaultPort(o.serverAddress ?? o.serverName), server_name: o.serverName };
  const manifest: Manifest = {
    version: 1,
    serverName: o.serverName,
    serverAddress: server.address,
    entries: [
      { id: 'ca', role: 'ca', ...describeCert(caCertPem) },
      { id: o.serverName, role: 'server', ...describeCert(serverCertPem) },
      ...o.clients.map((id) => createClientKit(root, id, o.days, o.keyBits, server)),
      ...(o.subServers ?? []).map((id) => createSubServerKit(root, id, o.days, o.keyBits, server)),
    ],
  };
  writeManifest(root, manifest);
  return manifest;
}

export function addClient(root: string, id: string, days: number, keyBits: number): ManifestEntry {
  const m = readManifest(root);
  if (m.entries.some((e) => e.role === 'client' && e.id === id && !e.revoked))
    throw new UserError(`client "${id}" already exists in ${root}. Fix: pick another id, or revoke it first`);
  const entry = createClientKit(root, id, days, keyBits, {
    address: m.serverAddress ?? `${m.serverName}:${DEFAULT_PORT}`,
    server_name: m.serverName,
  });
  m.entries = m.entries.filter((e) => !(e.role === 'client' && e.id === id)).concat(entry);
  writeManifest(root, m);
  return entry;
}
