/**
 * Turns a gRPC stream's 'data' events into awaitable messages: `next(kind)` resolves with the next
 * message of that oneof kind, or rejects on timeout, stream error or end. Heartbeats are consumed.
 */
export class Inbox<M extends { kind?: string }> {
  private queue: M[] = [];
  private waiters: { resolve: (m: M) => void; reject: (e: Error) => void }[] = [];
  private failure: Error | null = null;
  lastSeen = Date.now();

  push(m: M): void {
    this.lastSeen = Date.now();
    if (m.kind === 'heartbeat') return;
    const w = this.waiters.shift();
    if (w) w.resolve(m);
    else this.queue.push(m);
  }

  fail(e: Error): void {
    this.failure ??= e;
    for (const w of this.waiters.splice(0)) w.reject(e);
  }

  async next(kinds: string[], timeoutMs: number): Promise<M> {
    const m = this.queue.length ? this.queue.shift()! : await this.wait(timeoutMs);
    if (!kinds.includes(m.kind ?? '')) throw new Error(`unexpected message "${m.kind}" (expected ${kinds.join(' or ')})`);
    return m;
  }

  /** The kind of the next message, without consuming it. */
  async peekKind(timeoutMs: number): Promise<string> {
    if (!this.queue.length) this.queue.unshift(await this.wait(timeoutMs));
    return this.queue[0].kind ?? '';
  }

  private wait(timeoutMs: number): Promise<M> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<M>((resolve, reject) => {
      const entry = {
        resolve: (m: M) => { clearTimeout(timer); resolve(m); },
        reject: (e: Error) => { clearTimeout(timer); reject(e); },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(entry), 1);
        reject(new Error(`peer silent for ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(entry);
    });
  }
}
