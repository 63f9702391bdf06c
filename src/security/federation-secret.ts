import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readPrivateKey, writePrivateKey } from './files.js';

/**
 * The federation secret (privacy.hide_aggregate): 32 random bytes every client kit holds and the
 * server kit never does. Clients mask the secure aggregate with it, so the server relays the global
 * head and tail without learning them. `flglm keygen` keeps the master copy in pki/ca (for
 * add-client): whoever holds pki/ca can read aggregates, so keep it off the server's machine.
 */
export const FEDERATION_SECRET = 'federation.secret';

/** pki/ca's secret, made on first use (a PKI from before this file existed gets one then). */
export function ensureFederationSecret(caDir: string): Buffer {
  const path = join(caDir, FEDERATION_SECRET);
  if (!existsSync(path)) writePrivateKey(path, `${randomBytes(32).toString('hex')}\n`);
  return readFederationSecretFile(path);
}

export function writeFederationSecret(kitDir: string, secret: Buffer): void {
  writePrivateKey(join(kitDir, FEDERATION_SECRET), `${secret.toString('hex')}\n`);
}

/** A client kit's secret; a clear error (and the fix) when the kit predates it. */
export function readFederationSecret(kitDir: string): Buffer {
  const path = join(kitDir, FEDERATION_SECRET);
  if (!existsSync(path))
    throw new UserError(
      `privacy.hide_aggregate needs the federation secret in the client kit, and ${kitDir} has no ${FEDERATION_SECRET} (a kit made before it existed). Fix: re-issue the kit with \`flglm keygen add-client <id> --pki <pki>\``,
    );
  return readFederationSecretFile(path);
}

function readFederationSecretFile(path: string): Buffer {
  const hex = readPrivateKey(path).trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new UserError(`${path}: not a federation secret (64 hex digits expected)`);
  return Buffer.from(hex, 'hex');
}
