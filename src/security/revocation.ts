import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { readManifest, writeManifest } from './pki.js';

/** `pki/server/revoked.json`: the certificates the server refuses (checked by RevocationChecker). */
export interface RevocationList {
  revoked: { id: string; serial: string; fingerprint256: string; at: string }[];
}

export function revokeClient(root: string, id: string): void {
  const m = readManifest(root);
  const entry = m.entries.find((e) => e.role === 'client' && e.id === id);
  if (!entry)
    throw new UserError(
      `unknown client "${id}" in ${root}; known clients: ${m.entries
        .filter((e) => e.role === 'client')
        .map((e) => e.id)
        .join(', ')}`,
    );
  entry.revoked = true;
  const listPath = join(join(root, 'server'), 'revoked.json');
  const list = JSON.parse(readFileSync(listPath, 'utf8')) as RevocationList;
  if (!list.revoked.some((r) => r.serial === entry.serial))
    list.revoked.push({ id, serial: entry.serial, fingerprint256: entry.fingerprint256, at: new Date().toISOString() });
  writeFileAtomic(listPath, JSON.stringify(list, null, 2));
  writeManifest(root, m);
}
