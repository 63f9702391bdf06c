import { statSync, readFileSync, existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/** Read a private key, refusing (like ssh) one whose permissions let others read it. */
export function readPrivateKey(path: string): string {
  if (!existsSync(path))
    throw new UserError(
      `private key not found: ${path}. Fix: check the --pki folder, or create it with \`flglm keygen\``,
    );
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new UserError(
      `private key ${path} has permissions ${mode.toString(8).padStart(4, '0')}, which let others read it. Fix: chmod 600 ${path}`,
    );
  }
  return readFileSync(path, 'utf8');
}

export function readPem(path: string, what: string): string {
  if (!existsSync(path))
    throw new UserError(`${what} not found: ${path}. Fix: check the --pki folder, or create it with \`flglm keygen\``);
  return readFileSync(path, 'utf8');
}

export function writePrivateKey(path: string, pem: string): void {
  writeFileAtomic(path, pem, 0o600);
}
