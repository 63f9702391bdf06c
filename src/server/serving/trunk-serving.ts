import { randomUUID } from 'node:crypto';
import type { ExperimentConfig } from '../../config/schema.js';
import type { ModelConfig } from '../../model/config.js';
import { Inbox } from '../../protocol/inbox.js';
import {
  PROTOCOL_VERSION,
  type GenerateDownOut,
  type GenerateUp,
  type ServerGenerateCall,
} from '../../protocol/messages.js';
import { decodeTensor, encodeTensor, ProtocolError, type TensorContext } from '../../protocol/tensors.js';
import type { PeerIdentity, RevocationChecker } from '../../security/tls.js';
import type { Log } from '../../util/logger.js';
import { DecodeBatcher } from './decode-batcher.js';
import {
  BusyError,
  checkOpen,
  EvictedError,
  generateStream,
  newPeriod,
  refusalCode,
  sessionChannel,
  type ServeLimits,
  type ServingPeriod,
  type Session,
} from './session-setup.js';
export { DEFAULT_SERVE_LIMITS, type ServeLimits, type ServingPeriod } from './session-setup.js';
import type { InferenceWorkerInit } from './inference-worker.js';
import { InferenceWorkerClient } from './worker-client.js';

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
  private readonly batcher: DecodeBatcher;
  /** What the trunk did since the server was last idle (logged when the last session ends). */
  private period = newPeriod();

  private constructor(
    private readonly worker: InferenceWorkerClient,
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
    this.batcher = new DecodeBatcher(
      (span, rows, positions, hA) => {
        this.period.batches++;
        this.period.rows += rows.length;
        return this.worker.request('decode', { span, rows, positions, hA }, (s) => (this.period.decode_s += s));
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
    const worker = await InferenceWorkerClient.start(init);
    return new TrunkServer(worker, { ...o, limits: { ...o.limits, cacheLen } });
  }

  /** The trunk's work since it was last idle (decode batches, rows, its seconds), logged as `serving_idle`. */
  get busyPeriod(): ServingPeriod {
    return { ...this.period };
  }

  get cacheBytes(): number {
    return this.worker.cacheBytes;
  }

  /** Sessions open and cache rows in use now (metrics, tests). */
  stats(): { sessions: number; rowsInUse: number; cacheBytes: number } {
    return {
      sessions: this.sessions.size,
      rowsInUse: this.rowOwner.filter((r) => r !== null).length,
      cacheBytes: this.worker.cacheBytes,
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
    await this.worker.request('clear', { row0: s.row0, count: s.rows }).catch(() => {});
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
    const { maxRows, cacheLen } = this.o.limits;
    // A client may be ahead of the protocol by one step at most: bounded by the largest tensor a
    // session can send (a prefill of every row at every position) and a few messages.
    const maxBytes = maxRows * cacheLen * this.o.model.hidden_size * 4 + 2 ** 20;
    const { inbox, send } = generateStream(call, maxBytes, this.o.cfg.federation.chunk_bytes);
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
          call.write({ error: { code: refusalCode(e), message: e.message } });
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
    checkOpen(open, limits);
    const { batch: b, promptLen: P } = open;
    if (this.sessions.size >= limits.maxSessions)
      throw new BusyError(
        `the server is busy: ${this.sessions.size} generation sessions open (--max-sessions ${limits.maxSessions}); try again later`,
      );
    const id = randomUUID();
    const row0 = this.allocate(id, b);
    if (row0 === null)
      throw new BusyError(
        `the server is busy: no ${b} free sequences in its cache (--max-rows ${limits.maxRows}); try again later or ask for fewer`,
      );
    const session: Session = { id, client: peer.clientId, row0, rows: b };
    this.sessions.set(id, session);
    this.period.sessions++;
    opened(session);
    const keyId = randomUUID();
    const { channel, wrapped } = sessionChannel(this.o.kit, cfg, peer);
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
        const hB = await this.worker.request(
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
