import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';

/**
 * Where a kit's owner connects (`server.json` in client and sub-server kits, like NVFlare's startup
 * kits): the address to dial and the name on the server's certificate, so that
 * `flglm client --pki KIT --data SILO` needs nothing else.
 */
export interface KitServer {
  address: string;
  server_name: string;
}

export const DEFAULT_PORT = 50051;

export function writeKitServer(kitDir: string, server: KitServer): void {
  writeFileAtomic(join(kitDir, 'server.json'), JSON.stringify(server, null, 2));
}

/** The kit's server.json, or null for kits made before it existed. */
export function readKitServer(kitDir: string): KitServer | null {
  const path = join(kitDir, 'server.json');
  if (!existsSync(path)) return null;
  let v: Partial<KitServer>;
  try {
    v = JSON.parse(readFileSync(path, 'utf8')) as Partial<KitServer>;
  } catch (e) {
    throw new UserError(
      `${path}: not JSON (${(e as Error).message}). Fix: restore the kit from flglm keygen, or pass --server and --server-name`,
    );
  }
  if (typeof v.address !== 'string' || typeof v.server_name !== 'string')
    throw new UserError(
      `${path}: needs "address" and "server_name". Fix: restore the kit from flglm keygen, or pass --server and --server-name`,
    );
  return { address: withDefaultPort(v.address), server_name: v.server_name };
}

/** `host` alone means the default port (gRPC would otherwise assume 443). */
export function withDefaultPort(address: string): string {
  if (/^\[.*\]:\d+$/.test(address) || /^[^:]+:\d+$/.test(address)) return address;
  return address.includes(':') && !address.startsWith('[')
    ? `[${address}]:${DEFAULT_PORT}`
    : `${address}:${DEFAULT_PORT}`;
}
