/**
 * Continuous batching of decode steps across generation sessions: each session submits the h_A of
 * its rows for one step and waits; a batch runs as soon as every open session has submitted, or
 * `windowMs` after the first did (a slow client does not stall the others: it joins the next batch).
 * Sessions join and leave between batches. One batch runs at a time over cache rows [0, span), span
 * the next power of two above the highest row in it (one compiled program per span; sessions are
 * packed at the front of the cache, so span stays small).
 */
type Run = (span: number, rows: number[], positions: number[], hA: Float32Array) => Promise<Float32Array>;

interface Entry {
  rows: number[];
  positions: number[];
  hA: Float32Array;
  resolve: (hB: Float32Array) => void;
  reject: (e: Error) => void;
}

export class DecodeBatcher {
  private readonly pending = new Map<string, Entry>();
  private running = false;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly run: Run,
    private readonly openSessions: () => number,
    private readonly windowMs: number,
    private readonly width: number,
    private readonly maxRows = Number.POSITIVE_INFINITY,
  ) {}

  submit(session: string, rows: number[], positions: number[], hA: Float32Array): Promise<Float32Array> {
    if (this.pending.has(session))
      return Promise.reject(new Error('a session submitted a second step before its first was answered'));
    return new Promise((resolve, reject) => {
      this.pending.set(session, { rows, positions, hA, resolve, reject });
      this.schedule();
    });
  }

  /** A session went away: its waiting step (if any) is dropped, and the others need not wait for it. */
  forget(session: string): void {
    const e = this.pending.get(session);
    if (e) {
      this.pending.delete(session);
      e.reject(new Error('session closed'));
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.running || this.pending.size === 0) return;
    if (this.pending.size >= this.openSessions()) {
      void this.flush();
      return;
    }
    this.timer ??= setTimeout(() => void this.flush(), this.windowMs);
  }

  private async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.running || this.pending.size === 0) return;
    this.running = true;
    const batch = [...this.pending.values()];
    this.pending.clear();
    const rows = batch.flatMap((e) => e.rows),
      positions = batch.flatMap((e) => e.positions);
    const hA = new Float32Array(rows.length * this.width);
    let at = 0;
    for (const e of batch) {
      hA.set(e.hA, at);
      at += e.hA.length;
    }
    const highest = Math.max(...rows) + 1;
    const span = Math.min(this.maxRows, 2 ** Math.ceil(Math.log2(highest)));
    try {
      const out = await this.run(span, rows, positions, hA);
      at = 0;
      for (const e of batch) {
        e.resolve(out.slice(at, at + e.hA.length));
        at += e.hA.length;
      }
    } catch (err) {
      for (const e of batch) e.reject(err as Error);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}
