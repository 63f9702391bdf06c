import type { KindOf, OfKind } from './messages.js';
import { ProtocolError } from './tensors.js';

/** How much a peer may have queued (received but not yet consumed) before it is cut off. */
export interface QueueLimits {
  maxBytes: number;
  maxMessages: number;
  /** Tensor bytes a message carries. */
  sizeOf(m: unknown): number;
}

/**
 * Turns a gRPC stream's 'data' events into awaitable messages: `next(kind)` resolves with the next
 * message of that oneof kind, or rejects on timeout, stream error or end. Heartbeats are consumed.
 * With limits, a peer that sends ahead of the protocol by more than `maxBytes`/`maxMessages` fails
 * the inbox (its waiter sees a ProtocolError) instead of growing memory without bound.
 *
 * A timeout is a deadline for the awaited message, unless `keepAlive`: then it is the longest the
 * peer may stay silent, and any message (heartbeats too) starts it again. Clients read the server
 * this way, so one waiting for its turn behind a slow or silent client waits as long as the server
 * is alive (issue 28); servers keep deadlines, so a client that only sends heartbeats is dropped.
 */
export class Inbox<M extends { kind?: string }> {
  private queue: M[] = [];
  /** Tensor bytes received and not yet consumed (bounded by the limits; a metrics gauge reads it). */
  queuedBytes = 0;
  private waiters: { resolve: (m: M) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  lastSeen = Date.now();

  constructor(
    private readonly limits: QueueLimits | null = null,
    private readonly keepAlive = false,
  ) {}

  push(m: M): void {
    this.lastSeen = Date.now();
    if (m.kind === 'heartbeat' || this.failure) return;
    const w = this.waiters.shift();
    if (w) return w.resolve(m);
    if (this.limits) {
      const bytes = this.limits.sizeOf(m);
      if (this.queuedBytes + bytes > this.limits.maxBytes || this.queue.length >= this.limits.maxMessages) {
        this.queue = [];
        this.queuedBytes = 0;
        return this.fail(
          new ProtocolError(
            `sent ahead of the protocol: more than ${this.limits.maxMessages} messages or ${this.limits.maxBytes} bytes queued`,
          ),
        );
      }
      this.queuedBytes += bytes;
    }
    this.queue.push(m);
  }

  fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
  }

  get failed(): Error | null {
    return this.failure;
  }

  /** The next message, which must be one of `kinds` (anything else is a ProtocolError). */
  async next<K extends KindOf<M>>(kinds: readonly K[], timeoutMs: number): Promise<OfKind<M, K>> {
    const m = this.queue.length ? this.take() : await this.wait(timeoutMs);
    if (!(kinds as readonly string[]).includes(m.kind ?? '') || m[m.kind as keyof M] == null)
      throw new ProtocolError(`unexpected message "${m.kind}" (expected ${kinds.join(' or ')})`);
    return m as OfKind<M, K>;
  }

  private take(): M {
    const m = this.queue.shift()!;
    if (this.limits) this.queuedBytes -= this.limits.sizeOf(m);
    return m;
  }

  private wait(timeoutMs: number): Promise<M> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<M>((resolve, reject) => {
      const entry = {
        resolve: (m: M) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      // Time left before the wait fails: from the wait's start, or with keepAlive from the last message.
      const left = (start: number) => timeoutMs - (Date.now() - (this.keepAlive ? this.lastSeen : start));
      const start = Date.now();
      // setImmediate: after a blocked event loop, messages that arrived meanwhile are pushed first.
      const arm = () => setTimeout(() => setImmediate(check), left(start));
      const check = () => {
        if (!this.waiters.includes(entry)) return;
        if (left(start) > 0) return void (timer = arm());
        this.waiters.splice(this.waiters.indexOf(entry), 1);
        reject(new Error(`peer silent for ${timeoutMs} ms`));
      };
      let timer = arm();
      this.waiters.push(entry);
    });
  }
}
