import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentConfig } from '../../config/schema.js';
import { reassembling, chunkMessage } from '../../protocol/chunking.js';
import { Inbox } from '../../protocol/inbox.js';
import type { GenerateDownOut, GenerateUp, ServerGenerateCall } from '../../protocol/messages.js';
import { ProtocolError } from '../../protocol/tensors.js';
import { newRoundKey, PayloadChannel, wrapRoundKey } from '../../security/payload.js';
import type { PeerIdentity } from '../../security/tls.js';
import { tensorBytesOf } from '../client-limits.js';

/** The pieces of a generation session around the trunk: its limits, its opening, its stream and its key. */

/** Bounds of what generation sessions may hold on the server (`flglm server --serve` options). */
export interface ServeLimits {
  /** Sessions open at once. */
  maxSessions: number;
  /** Sequences (rows) of all sessions together: the rows of the shared trunk KV cache. */
  maxRows: number;
  /** Positions per sequence (prompt + new tokens). */
  cacheLen: number;
  /** A session silent this long is evicted (its cache freed) with an error telling it so. */
  idleTimeoutMs: number;
  /** How long a decode step waits for other sessions' steps to batch with. */
  batchWindowMs: number;
}

export const DEFAULT_SERVE_LIMITS: ServeLimits = {
  maxSessions: 16,
  maxRows: 32,
  cacheLen: 512,
  idleTimeoutMs: 60000,
  batchWindowMs: 5,
};

export class EvictedError extends Error {}

/** A refusal for capacity (sessions or cache rows all taken): sent as code BUSY, so a client can answer 429. */
export class BusyError extends ProtocolError {}

/** The code of the `error` a session ends with: EVICTED, BUSY (capacity) or REFUSED. */
export const refusalCode = (e: Error): string =>
  e instanceof EvictedError ? 'EVICTED' : e instanceof BusyError ? 'BUSY' : 'REFUSED';

/** One busy period of the serving trunk (see TrunkServer.busyPeriod). */
export interface ServingPeriod {
  sessions: number;
  batches: number;
  rows: number;
  decode_s: number;
  prefill_s: number;
}
export const newPeriod = (): ServingPeriod => ({ sessions: 0, batches: 0, rows: 0, decode_s: 0, prefill_s: 0 });

/** One generation session: its client and its block of rows in the shared cache. */
export interface Session {
  id: string;
  client: string;
  row0: number;
  rows: number;
}

/** A session's `open` message, checked against the server's limits before any cache row is taken. */
export function checkOpen(
  open: { batch: number; promptLen: number; maxNewTokens: number; lengths: readonly number[] },
  limits: ServeLimits,
): void {
  const b = open.batch,
    P = open.promptLen;
  if (!(b >= 1 && b <= limits.maxRows))
    throw new ProtocolError(`batch ${b}: this server serves 1..${limits.maxRows} sequences per session`);
  if (!(P >= 1 && P + open.maxNewTokens <= limits.cacheLen))
    throw new ProtocolError(
      `prompt ${P} + ${open.maxNewTokens} new tokens exceed the server's ${limits.cacheLen} positions per sequence (--cache-len)`,
    );
  if (open.lengths.length !== b || open.lengths.some((n) => !(n >= 1 && n <= P)))
    throw new ProtocolError(`lengths: expected ${b} prompt lengths in 1..${P}`);
}

/** A fresh AES-256 key for one session, RSA-wrapped for the client's kit (none without payload encryption). */
export function sessionChannel(
  kit: string | null,
  cfg: ExperimentConfig,
  peer: PeerIdentity,
): { channel: PayloadChannel | null; wrapped: Uint8Array } {
  let channel: PayloadChannel | null = null,
    wrapped: Uint8Array = Buffer.alloc(0);
  if (kit && cfg.security.payload_encryption) {
    const pub = join(kit, 'payload-keys', `${peer.clientId}.pub`);
    if (!existsSync(pub)) throw new ProtocolError(`no payload key for "${peer.clientId}" in the server kit (${pub})`);
    const key = newRoundKey();
    channel = new PayloadChannel(key, 'down');
    wrapped = wrapRoundKey(key, readFileSync(pub, 'utf8'));
  }
  return { channel, wrapped };
}

/** The inbox of a generation stream (reassembled, bounded) and its chunking sender. */
export function generateStream(
  call: ServerGenerateCall,
  maxBytes: number,
  chunkBytes: number,
): { inbox: Inbox<GenerateUp>; send: (m: GenerateDownOut) => void } {
  const inbox = new Inbox<GenerateUp>({ maxBytes, maxMessages: 8, sizeOf: tensorBytesOf });
  call.on(
    'data',
    reassembling<GenerateUp>(
      (m) => inbox.push(m),
      (e) => inbox.fail(new ProtocolError(e.message)),
    ),
  );
  call.on('end', () => inbox.fail(new ProtocolError('the client closed the stream')));
  call.on('error', () => inbox.fail(new ProtocolError('the stream failed')));
  const send = (m: GenerateDownOut) => {
    for (const part of chunkMessage(m, chunkBytes)) call.write(part);
  };
  return { inbox, send };
}
