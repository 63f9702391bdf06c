import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readPem, readPrivateKey } from './files.js';
import type { RevocationList } from './revocation.js';
import { ROLE_OU, type CertificateRole } from './roles.js';

export interface PeerIdentity {
  clientId: string;
  serial: string;
  fingerprint256: string;
  /** From the verified certificate's OU; null for certificates without a flglm role. */
  role?: CertificateRole | null;
}

/** Server side of mutual TLS: clients must present a certificate signed by the kit's CA. */
export function serverCredentials(kit: string): grpc.ServerCredentials {
  const ca = Buffer.from(readPem(join(kit, 'ca.crt'), 'CA certificate'));
  const cert = Buffer.from(readPem(join(kit, 'server.crt'), 'server certificate'));
  const key = Buffer.from(readPrivateKey(join(kit, 'server.key')));
  checkValidity(cert.toString(), join(kit, 'server.crt'));
  return grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], true);
}

function checkValidity(pem: string, path: string, ca?: string): void {
  const x = new X509Certificate(pem);
  const now = Date.now();
  if (Date.parse(x.validTo) < now)
    throw new UserError(
      `certificate ${path} expired on ${new Date(x.validTo).toISOString()}. Fix: issue a new one (flglm keygen add-client, or keygen --force for the server)`,
    );
  if (Date.parse(x.validFrom) > now)
    throw new UserError(
      `certificate ${path} is not valid before ${new Date(x.validFrom).toISOString()} (check the clock)`,
    );
  if (ca && !x.verify(new X509Certificate(ca).publicKey))
    throw new UserError(
      `certificate ${path} was not issued by the CA in this kit. Fix: use the kit made by the same \`flglm keygen\` as the server's`,
    );
}

/** Client side: checks its own certificate first, so an expired or foreign one is named plainly. */
export function clientCredentials(kit: string): { credentials: grpc.ChannelCredentials; clientId: string } {
  const caPem = readPem(join(kit, 'ca.crt'), 'CA certificate');
  const certPem = readPem(join(kit, 'client.crt'), 'client certificate');
  const key = readPrivateKey(join(kit, 'client.key'));
  checkValidity(certPem, join(kit, 'client.crt'), caPem);
  const clientId = commonName(new X509Certificate(certPem).subject);
  return {
    credentials: grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(key), Buffer.from(certPem)),
    clientId,
  };
}

function commonName(subject: string): string {
  return /(?:^|\n)CN=([^\n]+)/.exec(subject)?.[1] ?? '';
}

/** The client id comes from the verified certificate, never from a message field. */
export function peerIdentity(
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
): PeerIdentity | null {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert) return null;
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : (v ?? ''));
  const ou = first(cert.subject.OU);
  const role = (Object.keys(ROLE_OU) as CertificateRole[]).find((r) => ROLE_OU[r] === ou) ?? null;
  return { clientId: first(cert.subject.CN), serial: cert.serialNumber, fingerprint256: cert.fingerprint256, role };
}

/**
 * The server's revocation list (`revoked.json`, written by `flglm keygen revoke`). It fails closed:
 * a missing, unreadable or corrupt list refuses everyone with an error naming the file, never
 * admits anyone. Re-read whenever the file changes, so a revocation takes effect on the next
 * message of a live session, not only at the next connect.
 */
export class RevocationChecker {
  private cached: { stamp: string; serials: Set<string>; fingerprints: Set<string> } | null = null;

  constructor(readonly file: string) {}

  /** Read (or re-read) the list; throws a UserError naming the file when it cannot be trusted. */
  load(): { serials: Set<string>; fingerprints: Set<string> } {
    let stamp: string;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      throw new UserError(
        `revocation list ${this.file} is missing: refusing all clients. Fix: restore it (an empty list is {"revoked": []}) or point --revoked at it`,
      );
    }
    if (this.cached?.stamp === stamp) return this.cached;
    let list: RevocationList;
    try {
      list = JSON.parse(readFileSync(this.file, 'utf8')) as RevocationList;
      if (
        !Array.isArray(list?.revoked) ||
        list.revoked.some((r) => typeof r?.serial !== 'string' || typeof r?.fingerprint256 !== 'string')
      )
        throw new Error('expected {"revoked": [{"serial", "fingerprint256", ...}]}');
    } catch (e) {
      this.cached = null;
      throw new UserError(
        `revocation list ${this.file} is unreadable (${(e as Error).message}): refusing all clients. Fix: restore it from the PKI (flglm keygen revoke rewrites it)`,
      );
    }
    this.cached = {
      stamp,
      serials: new Set(list.revoked.map((r) => r.serial.toUpperCase())),
      fingerprints: new Set(list.revoked.map((r) => r.fingerprint256)),
    };
    return this.cached;
  }

  isRevoked(peer: PeerIdentity): boolean {
    const list = this.load();
    return list.serials.has(peer.serial.toUpperCase()) || list.fingerprints.has(peer.fingerprint256);
  }
}

/** Turn gRPC connection failures into one line that names the likely cause. */
export function describeConnectError(err: grpc.ServiceError, target: string): string {
  const d = `${err.details ?? err.message}`;
  if (err.code === grpc.status.PERMISSION_DENIED) return d;
  if (err.code === grpc.status.UNAUTHENTICATED) return `server refused the client: ${d}`;
  if (/certificate|SSL|TLS|handshake|self.signed|verify/i.test(d)) return `TLS handshake with ${target} failed: ${d}`;
  if (err.code === grpc.status.UNAVAILABLE)
    return `cannot reach the server at ${target} (${d}). Fix: check the address, that the server runs, and that both use TLS or both --insecure`;
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return `no answer from ${target} before the deadline`;
  return `${grpc.status[err.code] ?? err.code}: ${d}`;
}

/**
 * A server kit checked before anything starts (certificates, key permissions) and its revocation
 * list loaded (fails closed): `revoked` overrides <kit>/revoked.json. Null without a kit (--insecure).
 */
export function checkedServerKit(kit: string | null, revoked?: string): RevocationChecker | null {
  if (!kit) return null;
  serverCredentials(kit);
  const revocation = new RevocationChecker(revoked ?? join(kit, 'revoked.json'));
  revocation.load();
  return revocation;
}
