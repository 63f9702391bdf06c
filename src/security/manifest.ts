import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/** pki/manifest.json: every identity `flglm keygen` issued, with serials, fingerprints and expiry. */
export interface ManifestEntry {
  id: string;
  role: 'ca' | 'server' | 'client' | 'sub-server';
  serial: string;
  fingerprint256: string;
  notAfter: string;
  payloadKeyFingerprint256?: string;
  revoked?: boolean;
}

export interface Manifest {
  version: 1;
  serverName: string;
  serverAddress?: string;
  entries: ManifestEntry[];
}

export const paths = (root: string) => ({
  caCert: join(root, 'ca', 'ca.crt'),
  caKey: join(root, 'ca', 'ca.key'),
  server: join(root, 'server'),
  client: (id: string) => join(root, 'clients', id),
  manifest: join(root, 'manifest.json'),
});

export function readManifest(root: string): Manifest {
  const p = paths(root).manifest;
  if (!existsSync(p))
    throw new UserError(
      `${root} is not a flglm PKI (no manifest.json). Fix: create one with \`flglm keygen --out ${root}\``,
    );
  return JSON.parse(readFileSync(p, 'utf8')) as Manifest;
}

export function writeManifest(root: string, m: Manifest): void {
  writeFileAtomic(paths(root).manifest, JSON.stringify(m, null, 2));
}
