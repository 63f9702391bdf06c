/**
 * Logs a line at most once per key per period (e.g. once per peer per minute), then says how many
 * like it were held back, so a peer retrying 200 times costs the log one line, not 200.
 */
export class LogLimiter {
  private readonly seen = new Map<string, { at: number; held: number }>();

  constructor(
    private readonly write: (line: string) => void,
    private readonly periodMs = 60_000,
    private readonly now = () => Date.now(),
  ) {}

  log(key: string, line: string): void {
    const t = this.now();
    const entry = this.seen.get(key);
    if (entry && t - entry.at < this.periodMs) {
      entry.held++;
      return;
    }
    const held = entry?.held ?? 0;
    this.seen.set(key, { at: t, held: 0 });
    if (this.seen.size > 1024) for (const [k, e] of this.seen) if (t - e.at >= this.periodMs) this.seen.delete(k);
    this.write(held ? `${line} (${held} more like it in the last ${Math.round(this.periodMs / 1000)} s)` : line);
  }
}
