import { join } from 'node:path';
import { DEFAULT_CHUNK_BYTES } from '../config/schema.js';
import { paddedTokens, type Stepper } from '../model/generate.js';
import { PartDecoder, type KvStore } from '../model/part-decoder.js';
import type { SplitPoints } from '../model/partition.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore, PeftConfig } from '../model/params.js';
import { longRopeSwitch } from '../model/rope.js';
import { chunkMessage, reassembling } from '../protocol/chunking.js';
import { Inbox } from '../protocol/inbox.js';
import {
  PROTOCOL_VERSION,
  type ClientGenerateCall,
  type GenerateDown,
  type GenerateUpOut,
} from '../protocol/messages.js';
import { decodeTensor, encodeTensor, type TensorContext } from '../protocol/tensors.js';
import { readPrivateKey } from '../security/files.js';
import { PayloadChannel, unwrapRoundKey } from '../security/payload.js';
import { describeConnectError } from '../security/tls.js';
import type { RuntimeOptions } from '../runtime/session.js';
import { tensor } from '../runtime/tensor.js';
import { UserError } from '../util/errors.js';
import { ActivationNoise } from '../privacy/activation-noise.js';
import { status as grpcStatus } from '@grpc/grpc-js';
import { connect } from './transport.js';
import { DelayLine, type LinkModel } from './netem.js';

/**
 * Split inference from the client's side (the model stays split: the server never gets the head,
 * the client never gets the trunk). Head and tail run here with their own KV caches; per decode step
 * only the new position's h_A of the rows still decoding goes to the server, which runs the trunk
 * with its cache for this session and sends h_B back. One session per generated batch.
 */
export interface SplitGenerateOptions {
  target: string;
  kit: string | null;
  serverName?: string;
  config: ModelConfig;
  peft: PeftConfig;
  /** The client's parts: head and tail weights (a client checkpoint). */
  store: ParamStore;
  batch: number;
  promptLen: number;
  maxNewTokens: number;
  runtime?: RuntimeOptions;
  /** A simulated WAN link to the server (benchmarks; client/netem.ts); null = none. */
  link?: LinkModel | null;
  /** Seconds spent waiting for the server, summed (timings in `--json`). */
  timings?: { trunk_s: number; client_s: number; bytes_up: number; bytes_down: number };
  /**
   * Head and tail decoders shared by many sessions (the OpenAI endpoint: compiled once, each session
   * with its own caches), for the server's split; this session then does not release them. Their
   * cacheLen must hold promptLen + maxNewTokens.
   */
  parts?: (split: SplitPoints) => { head: PartDecoder; tail: PartDecoder };
}

/** Why a split generation session failed, for callers that answer for it (the OpenAI endpoint's 429 / 503 / 400). */
export type SplitFailure = 'busy' | 'refused' | 'unreachable' | 'ended';

export class SplitSessionError extends UserError {
  constructor(
    message: string,
    readonly failure: SplitFailure,
  ) {
    super(message);
  }
}

export class SplitStepper implements Stepper {
  readonly cacheLen: number;
  private call: { write(m: GenerateUpOut): void; end(): void } | null = null;
  private inbox: Inbox<GenerateDown> | null = null;
  private ctx: ((step: number) => TensorContext) | null = null;
  private head: PartDecoder | null = null;
  private tail: PartDecoder | null = null;
  private caches: { head: KvStore; tail: KvStore } | null = null;
  private noise: ActivationNoise | null = null;
  private step = 0;
  /** Largest message this client sends: the server's federation.chunk_bytes, from its `opened` reply. */
  chunkBytes = DEFAULT_CHUNK_BYTES;

  constructor(private readonly o: SplitGenerateOptions) {
    this.cacheLen = Math.min(o.config.max_position_embeddings, o.promptLen + o.maxNewTokens);
  }

  get batch(): number {
    return this.o.batch;
  }
  get promptLen(): number {
    return this.o.promptLen;
  }
  get vocab(): number {
    return this.o.config.vocab_size;
  }
  get ropeSwitch(): number | undefined {
    return longRopeSwitch(this.o.config);
  }

  private send(m: GenerateUpOut): void {
    for (const part of chunkMessage(m, this.chunkBytes)) {
      if (this.o.timings)
        this.o.timings.bytes_up += (part.step?.tensor?.data as Uint8Array | undefined)?.byteLength ?? 0;
      this.call!.write(part);
    }
  }

  private async trunk(hA: Float32Array, shape: number[], rows: number[]): Promise<Float32Array> {
    const t0 = performance.now();
    const step = this.step++;
    const noisy = this.noise ? (this.noise.apply({ dtype: 'float32', shape, data: hA }).data as Float32Array) : hA;
    this.send({
      step: { step, tensor: encodeTensor('h_A', { dtype: 'float32', shape, data: noisy }, this.ctx!(step)), rows },
    });
    const m = await this.inbox!.next(['trunkOut', 'error'], 120000);
    if (m.kind === 'error')
      throw new SplitSessionError(`the server ended the generation session: ${m.error.message}`, 'ended');
    const out = m.trunkOut;
    if (out.step !== step || !out.tensor)
      throw new UserError(`malformed message from the server: trunk_out for step ${out.step}, expected ${step}`);
    if (this.o.timings) {
      this.o.timings.trunk_s += (performance.now() - t0) / 1000;
      this.o.timings.bytes_down += out.tensor.data.byteLength;
    }
    return decodeTensor(out.tensor, { name: 'h_B', dtype: 'float32', shape, finite: true }, this.ctx!(step))
      .data as Float32Array;
  }

  /** Open the session (limits, key, split), then the prompts through head, trunk and tail. */
  async prefill(prompts: number[][]): Promise<Float32Array> {
    const { batch: B, promptLen: P, config: c } = this.o;
    const { data, lengths } = paddedTokens(prompts, B, P);
    const conn = connect(this.o.target, this.o.kit, this.o.serverName);
    const call: ClientGenerateCall = conn.client.Generate();
    const inbox = new Inbox<GenerateDown>();
    // On a simulated link both directions queue behind the link's delay and bandwidth, in order.
    const link = this.o.link ?? null;
    const down = link ? new DelayLine<GenerateDown>(link, (m) => inbox.push(m)) : null;
    const up = link ? new DelayLine<GenerateUpOut>(link, (m) => call.write(m)) : null;
    call.on(
      'data',
      reassembling<GenerateDown>(
        (m) => (down ? down.push(m) : inbox.push(m)),
        (e) => inbox.fail(new UserError(`malformed message from the server: ${e.message}`)),
      ),
    );
    call.on('error', (e: Error & { code?: number }) =>
      inbox.fail(
        new SplitSessionError(
          describeConnectError(e as never, this.o.target),
          e.code === grpcStatus.UNAVAILABLE ? 'unreachable' : 'ended',
        ),
      ),
    );
    call.on('end', () => inbox.fail(new SplitSessionError('the server closed the generation session', 'ended')));
    this.call = { write: (m) => (up ? up.push(m) : call.write(m)), end: () => call.end() };
    this.inbox = inbox;
    this.send({
      open: { protocol: PROTOCOL_VERSION, batch: B, promptLen: P, maxNewTokens: this.o.maxNewTokens, lengths },
    });
    const first = await inbox.next(['opened', 'error'], 60000);
    if (first.kind === 'error')
      throw new SplitSessionError(
        `the server refused the generation session: ${first.error.message}`,
        first.error.code === 'BUSY' ? 'busy' : 'refused',
      );
    const opened = first.opened;
    const channel =
      opened.wrappedKey.length && this.o.kit
        ? new PayloadChannel(unwrapRoundKey(opened.wrappedKey, readPrivateKey(join(this.o.kit, 'payload.key'))), 'up')
        : null;
    this.ctx = (step) => ({
      clientId: conn.clientId,
      keyId: opened.keyId,
      round: 0,
      step,
      channel,
      activations: 'float32',
    });
    if (opened.noiseSigma > 0)
      this.noise = new ActivationNoise(opened.noiseSigma, false, Date.now() >>> 0, conn.clientId, opened.noiseRelative);
    // The server takes no message over its chunk_bytes (and framing): send in its parts (older servers: the default).
    this.chunkBytes = opened.chunkBytes || DEFAULT_CHUNK_BYTES;
    const split = { head_blocks: opened.headBlocks, tail_blocks: opened.tailBlocks };
    const need = [
      `model.layers.${split.head_blocks - 1}.input_layernorm.weight`,
      `model.layers.${c.num_hidden_layers - split.tail_blocks}.input_layernorm.weight`,
    ];
    if (need.some((n) => !this.o.store.has(n)))
      throw new UserError(
        `the server's trunk was trained with split ${split.head_blocks} | ${c.num_hidden_layers - split.head_blocks - split.tail_blocks} | ${split.tail_blocks}, and this client checkpoint does not hold those head and tail layers. Fix: use a client checkpoint of the same run`,
      );
    // No spinning: between its parts' runs the client waits on the server, and spinning threads
    // would take the cores from a trunk on the same machine (16 sessions in one process: 36 instead
    // of 197 tokens/s in all with 2 threads each, split-generate benchmark).
    const runtime = { spinning: false, ...this.o.runtime };
    const shared = this.o.parts?.(split);
    this.head = shared?.head ?? new PartDecoder(c, this.o.peft, this.o.store, 'head', split, this.cacheLen, runtime);
    this.tail = shared?.tail ?? new PartDecoder(c, this.o.peft, this.o.store, 'tail', split, this.cacheLen, runtime);
    this.caches = { head: this.head.newCache(B), tail: this.tail.newCache(B) };
    const t0 = performance.now();
    const hA = (await this.head.prefill(tensor('int64', [B, P], data), lengths, this.caches.head)).data as Float32Array;
    this.clientTime(t0);
    const hB = await this.trunk(
      hA,
      [B, P, c.hidden_size],
      Array.from({ length: B }, (_, r) => r),
    );
    const t1 = performance.now();
    const logits = (await this.tail.prefill(tensor('float32', [B, P, c.hidden_size], hB), lengths, this.caches.tail))
      .data as Float32Array;
    this.clientTime(t1);
    return logits;
  }

  private clientTime(t0: number): void {
    if (this.o.timings) this.o.timings.client_s += (performance.now() - t0) / 1000;
  }

  async decode(tokens: number[], positions: (number | null)[]): Promise<Float32Array> {
    const { batch: B, config: c } = this.o;
    const D = c.hidden_size;
    const t0 = performance.now();
    const hA = (await this.head!.decode(tensor('int64', [B, 1], tokens), positions, this.caches!.head))
      .data as Float32Array;
    this.clientTime(t0);
    const rows = positions.flatMap((p, r) => (p === null ? [] : [r]));
    const picked = new Float32Array(rows.length * D);
    rows.forEach((r, k) => picked.set(hA.subarray(r * D, (r + 1) * D), k * D));
    const hBRows = await this.trunk(picked, [rows.length, 1, D], rows);
    const hB = new Float32Array(B * D);
    rows.forEach((r, k) => hB.set(hBRows.subarray(k * D, (k + 1) * D), r * D));
    const t1 = performance.now();
    const logits = (await this.tail!.decode(tensor('float32', [B, 1, D], hB), positions, this.caches!.tail))
      .data as Float32Array;
    this.clientTime(t1);
    return logits;
  }

  async release(): Promise<void> {
    try {
      this.call?.write({ close: { reason: 'done' } });
      this.call?.end();
    } catch {
      /* gone */
    }
    if (this.o.parts) return; // shared: their owner releases them
    await this.head?.release();
    await this.tail?.release();
  }
}
