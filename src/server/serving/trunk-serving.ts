import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { ExperimentConfig } from '../../config/schema.js';
import type { ModelConfig } from '../../model/config.js';
import { reassembling, chunkMessage } from '../../protocol/chunking.js';
import { Inbox } from '../../protocol/inbox.js';
import {
  PROTOCOL_VERSION,
  type GenerateDownOut,
  type GenerateUp,
  type ServerGenerateCall,
} from '../../protocol/messages.js';
import { decodeTensor, encodeTensor, ProtocolError, type TensorContext } from '../../protocol/tensors.js';
import { newRoundKey, PayloadChannel, wrapRoundKey } from '../../security/payload.js';
import type { PeerIdentity, RevocationChecker } from '../../security/tls.js';
import type { Log } from '../../util/logger.js';
import { DecodeBatcher } from './decode-batcher.js';
import { tensorBytesOf } from '../client-limits.js';
import type { InferenceOp, InferenceOps, InferenceWorkerInit } from './inference-worker.js';

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

interface Session {
  id: string;
  client: string;
  row0: number;
  rows: number;
}

/**
 * The trunk serving split inference (issue: serve the fine-tuned model without reassembling it):
 * one worker thread holds the trunk and one KV cache of `maxRows` sequences shared by all sessions,
 * each session owning a contiguous block of rows. Prefill runs per session; decode steps of all
 * sessions run together (DecodeBatcher: continuous batching with a deadline). Same identity,
 * revocation and payload encryption as training: a fresh AES-256 key per session, RSA-wrapped for
 * the client's kit.
 */
export class TrunkServer {
  private readonly sessions = new Map<string, Session>();
  private readonly rowOwner: (string | null)[];
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void; seconds?: (s: number) => void }
  >();
  private readonly batcher: DecodeBatcher;
  cacheBytes = 0;
  /** What the trunk did since the server was last idle (logged when the last session ends). */
  private period = newPeriod();

  private constructor(
    private readonly worker: Worker,
    private readonly o: {
      cfg: ExperimentConfig;
      model: ModelConfig;
      kit: string | null;
      revocation: RevocationChecker | null;
      limits: ServeLimits;
      log: Log;
    },
  ) {
    this.rowOwner = new Array(o.limits.maxRows).fill(null);
    worker.on('message', (m: { id?: number; ok?: boolean; result?: unknown; error?: string; seconds?: number }) => {
      const p = m.id === undefined ? undefined : this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id!);
      if (m.seconds !== undefined) p.seconds?.(m.seconds);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`serving trunk: ${m.error}`));
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
    this.batcher = new DecodeBatcher(
      (span, rows, positions, hA) => {
        this.period.batches++;
        this.period.rows += rows.length;
        return this.request('decode', { span, rows, positions, hA }, (s) => (this.period.decode_s += s));
      },
      () => this.sessions.size,
      o.limits.batchWindowMs,
      o.model.hidden_size,
      o.limits.maxRows,
    );
  }

  static async start(o: {
    cfg: ExperimentConfig;
    model: ModelConfig;
    params: InferenceWorkerInit['params'];
    kit: string | null;
    revocation: RevocationChecker | null;
    limits: ServeLimits;
    log: Log;
  }): Promise<TrunkServer> {
    const cacheLen = Math.min(o.limits.cacheLen, o.model.max_position_embeddings);
    const init: InferenceWorkerInit = {
      model: o.model,
      split: o.cfg.split,
      peft: { method: o.cfg.finetune.method, lora: o.cfg.finetune.lora, prefix: o.cfg.finetune.prefix },
      runtime: {
        device: o.cfg.runtime.device,
        threads: o.cfg.runtime.threads,
        spinning: false,
        arena: o.cfg.runtime.memory_arena,
      },
      params: o.params,
      rows: o.limits.maxRows,
      cacheLen,
    };
    const worker = new Worker(new URL('./inference-worker.js', import.meta.url), { workerData: init });
    const ready = await new Promise<{ cacheBytes: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const s = new TrunkServer(worker, { ...o, limits: { ...o.limits, cacheLen } });
    s.cacheBytes = ready.cacheBytes;
    return s;
  }

  private request<K extends InferenceOp>(
    op: K,
    args: InferenceOps[K][0],
    seconds?: (s: number) => void,
  ): Promise<InferenceOps[K][1]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, seconds });
      this.worker.postMessage({ id, op, args });
    });
  }

  /**
   * The trunk's work since the server was last idle: decode batches, rows decoded, the trunk's own
   * seconds for them and for prefills. Logged as one `serving_idle` event when the last session ends,
   * so an operator (and the split-generate benchmark) can read how well decode steps were batched.
   */
  get busyPeriod(): ServingPeriod {
    return { ...this.period };
  }

  /** Sessions open and cache rows in use now (metrics, tests). */
  stats(): { sessions: number; rowsInUse: number; cacheBytes: number } {
    return {
      sessions: this.sessions.size,
      rowsInUse: this.rowOwner.filter((r) => r !== null).length,
      cacheBytes: this.cacheBytes,
    };
  }

  /** The lowest free block of `rows` contiguous cache rows (sessions stay packed at the front). */
  private allocate(id: string, rows: number): number | null {
    for (let r0 = 0; r0 + rows <= this.rowOwner.length; r0++) {
      if (this.rowOwner.slice(r0, r0 + rows).every((o) => o === null)) {
        this.rowOwner.fill(id, r0, r0 + rows);
        return r0;
      }
    }
    return null;
  }

  private async free(s: Session): Promise<void> {
    if (!this.sessions.delete(s.id)) return;
    this.rowOwner.fill(null, s.row0, s.row0 + s.rows);
    this.batcher.forget(s.id);
    await this.request('clear', { row0: s.row0, count: s.rows }).catch(() => {});
    if (this.sessions.size === 0 && this.period.sessions > 0) {
      const p = this.period;
      this.period = newPeriod();
      const f = (x: number) => x.toFixed(3);
      this.o.log(
        `serving idle: ${p.sessions} sessions, ${p.rows} decode rows in ${p.batches} batches (${(p.rows / Math.max(1, p.batches)).toFixed(1)} per batch), trunk ${f(p.decode_s)} s decoding, ${f(p.prefill_s)} s prefilling`,
        { event: 'serving_idle', ...p },
      );
    }
  }

  /** gRPC's per-message cap for a serving endpoint: one chunk of a tensor and its framing. */
  get maxMessageBytes(): number {
    return this.o.cfg.federation.chunk_bytes + 2 ** 20;
  }

  onGenerate = (call: ServerGenerateCall, peer: PeerIdentity): void => {
    // A client may be ahead of the protocol by one step at most: bounded by the largest tensor a
    // session can send (a prefill of every row at every position) and a few messages.
    const { maxRows, cacheLen } = this.o.limits;
    const inbox = new Inbox<GenerateUp>({
      maxBytes: maxRows * cacheLen * this.o.model.hidden_size * 4 + 2 ** 20,
      maxMessages: 8,
      sizeOf: tensorBytesOf,
    });
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
      for (const part of chunkMessage(m, this.o.cfg.federation.chunk_bytes)) call.write(part);
    };
    let session: Session | null = null;
    void this.serve(peer, inbox, send, (s) => (session = s))
      .catch((e: Error) => {
        if (!(e instanceof ProtocolError && /closed the stream/.test(e.message)))
          this.o.log(`generation session of ${peer.clientId} ended: ${e.message}`, {
            event: 'generate_end',
            client: peer.clientId,
            reason: e.message,
          });
        try {
          call.write({ error: { code: e instanceof EvictedError ? 'EVICTED' : 'REFUSED', message: e.message } });
        } catch {
          /* gone */
        }
      })
      .finally(() => {
        if (session) void this.free(session);
        try {
          call.end();
        } catch {
          /* gone */
        }
      });
  };

  private async serve(
    peer: PeerIdentity,
    inbox: Inbox<GenerateUp>,
    send: (m: GenerateDownOut) => void,
    opened: (s: Session) => void,
  ): Promise<void> {
    const { limits, model, cfg } = this.o;
    const checkRevoked = () => {
      if (this.o.revocation?.isRevoked(peer)) throw new ProtocolError(`client "${peer.clientId}" has been revoked`);
    };
    const open = (await inbox.next(['open'], 30000)).open;
    checkRevoked();
    if (open.protocol !== PROTOCOL_VERSION)
      throw new ProtocolError(
        `client speaks ${open.protocol || 'an unknown protocol'}, this server ${PROTOCOL_VERSION}: use the same flglm version on both sides`,
      );
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
    if (this.sessions.size >= limits.maxSessions)
      throw new ProtocolError(
        `the server is busy: ${this.sessions.size} generation sessions open (--max-sessions ${limits.maxSessions}); try again later`,
      );
    const id = randomUUID();
    const row0 = this.allocate(id, b);
    if (row0 === null)
      throw new ProtocolError(
        `the server is busy: no ${b} free sequences in its cache (--max-rows ${limits.maxRows}); try again later or ask for fewer`,
      );
    const session: Session = { id, client: peer.clientId, row0, rows: b };
    this.sessions.set(id, session);
    this.period.sessions++;
    opened(session);
    const keyId = randomUUID();
    let channel: PayloadChannel | null = null,
      wrapped: Uint8Array = Buffer.alloc(0);
    if (this.o.kit && cfg.security.payload_encryption) {
      const pub = join(this.o.kit, 'payload-keys', `${peer.clientId}.pub`);
      if (!existsSync(pub)) throw new ProtocolError(`no payload key for "${peer.clientId}" in the server kit (${pub})`);
      const key = newRoundKey();
      channel = new PayloadChannel(key, 'down');
      wrapped = wrapRoundKey(key, readFileSync(pub, 'utf8'));
    }
    const ctx = (step: number): TensorContext => ({
      clientId: peer.clientId,
      keyId,
      round: 0,
      step,
      channel,
      activations: 'float32',
    });
    const noise = cfg.privacy.activation_noise;
    send({
      opened: {
        sessionId: id,
        keyId,
        wrappedKey: wrapped,
        cacheLen: limits.cacheLen,
        noiseSigma: noise.sigma,
        noiseRelative: noise.relative,
        headBlocks: cfg.split.head_blocks,
        tailBlocks: cfg.split.tail_blocks,
        chunkBytes: cfg.federation.chunk_bytes,
      },
    });
    const D = model.hidden_size;
    const positions = [...open.lengths];
    for (let step = 0; ; step++) {
      let m;
      try {
        m = await inbox.next(['step', 'close'], limits.idleTimeoutMs);
      } catch (e) {
        if (/silent for/.test((e as Error).message))
          throw new EvictedError(`session idle for ${limits.idleTimeoutMs} ms: evicted, its cache freed`);
        throw e;
      }
      checkRevoked();
      if (m.kind === 'close') return;
      const st = m.step;
      if (!st.tensor || st.step !== step) throw new ProtocolError(`step ${st.step}: expected step ${step}`);
      if (step === 0) {
        const hA = decodeTensor(
          st.tensor,
          { name: 'h_A', dtype: 'float32', shape: [b, P, D], finite: true },
          ctx(step),
        );
        const hB = await this.request(
          'prefill',
          { row0, hA, lengths: open.lengths },
          (sec) => (this.period.prefill_s += sec),
        );
        send({ trunkOut: { step, tensor: encodeTensor('h_B', hB, ctx(step)), rows: st.rows } });
        continue;
      }
      const rows = st.rows;
      if (
        rows.length === 0 ||
        rows.length > b ||
        new Set(rows).size !== rows.length ||
        rows.some((r) => !(r >= 0 && r < b))
      )
        throw new ProtocolError(`step ${step}: rows must be distinct and in 0..${b - 1}`);
      if (rows.some((r) => positions[r] >= limits.cacheLen))
        throw new EvictedError(`a sequence reached the server's ${limits.cacheLen} positions (--cache-len)`);
      const hA = decodeTensor(
        st.tensor,
        { name: 'h_A', dtype: 'float32', shape: [rows.length, 1, D], finite: true },
        ctx(step),
      ).data as Float32Array;
      const hB = await this.batcher.submit(
        id,
        rows.map((r) => row0 + r),
        rows.map((r) => positions[r]),
        hA,
      );
      for (const r of rows) positions[r]++;
      send({
        trunkOut: {
          step,
          tensor: encodeTensor('h_B', { dtype: 'float32', shape: [rows.length, 1, D], data: hB }, ctx(step)),
          rows,
        },
      });
    }
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

class EvictedError extends Error {}

/** One busy period of the serving trunk (see TrunkServer.busyPeriod). */
export interface ServingPeriod {
  sessions: number;
  batches: number;
  rows: number;
  decode_s: number;
  prefill_s: number;
}
const newPeriod = (): ServingPeriod => ({ sessions: 0, batches: 0, rows: 0, decode_s: 0, prefill_s: 0 });
