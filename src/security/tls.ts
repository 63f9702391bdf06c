import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readPem, readPrivateKey } from './files.js';
import type { RevocationList } from './pki.js';

export interface PeerIdentity {
  clientId: string;
  serial: string;
  fingerprint256: string;
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
  if (Date.parse(x.validTo) < now) throw new UserError(`certificate ${path} expired on ${new Date(x.validTo).toISOString()}. Fix: issue a new one (flglm keygen add-client, or keygen --force for the server)`);
  if (Date.parse(x.validFrom) > now) throw new UserError(`certificate ${path} is not valid before ${new Date(x.validFrom).toISOString()} (check the clock)`);
  if (ca && !x.verify(new X509Certificate(ca).publicKey)) throw new UserError(`certificate ${path} was not issued by the CA in this kit. Fix: use the kit made by the same \`flglm keygen\` as the server's`);
}

/** Client side: checks its own certificate first, so an expired or foreign one is named plainly. */
export function clientCredentials(kit: string): { credentials: grpc.ChannelCredentials; clientId: string } {
  const caPem = readPem(join(kit, 'ca.crt'), 'CA certificate');
  const certPem = readPem(join(kit, 'client.crt'), 'client certificate');
  const key = readPrivateKey(join(kit, 'client.key'));
  checkValidity(certPem, join(kit, 'client.crt'), caPem);
  const clientId = commonName(new X509Certificate(certPem).subject);
  return { credentials: grpc.credentials.createSsl(Buffer.from(caPem), Buffer.from(key), Buffer.from(certPem)), clientId };
}

function commonName(subject: string): string {
  return /(?:^|\n)CN=([^\n]+)/.exec(subject)?.[1] ?? '';
}

/** The client id comes from the verified certificate, never from a message field. */
export function peerIdentity(call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): PeerIdentity | null {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert) return null;
  const cn = cert.subject.CN;
  return { clientId: Array.isArray(cn) ? cn[0] : cn ?? '', serial: cert.serialNumber, fingerprint256: cert.fingerprint256 };
}

export class RevocationChecker {
  constructor(private readonly kit: string) {}
  /** Re-read on every connect so `flglm keygen revoke` takes effect without a restart. */
  isRevoked(peer: PeerIdentity): boolean {
    const file = join(this.kit, 'revoked.json');
    if (!existsSync(file)) return false;
    const list = JSON.parse(readFileSync(file, 'utf8')) as RevocationList;
    return list.revoked.some((r) => r.serial.toUpperCase() === peer.serial.toUpperCase() || r.fingerprint256 === peer.fingerprint256);
  }
}

/** Turn gRPC connection failures into one line that names the likely cause. */
export function describeConnectError(err: grpc.ServiceError, target: string): string {
  const d = `${err.details ?? err.message}`;
  if (err.code === grpc.status.PERMISSION_DENIED) return d;
  if (err.code === grpc.status.UNAUTHENTICATED) return `server refused the client: ${d}`;
  if (/certificate|SSL|TLS|handshake|self.signed|verify/i.test(d)) return `TLS handshake with ${target} failed: ${d}`;
  if (err.code === grpc.status.UNAVAILABLE) return `cannot reach the server at ${target} (${d}). Fix: check the address, that the server runs, and that both use TLS or both --insecure`;
  if (err.code === grpc.status.DEADLINE_EXCEEDED) return `no answer from ${target} before the deadline`;
  return `${grpc.status[err.code] ?? err.code}: ${d}`;
}
