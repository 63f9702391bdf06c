/** A one-line progress display: redrawn in place on a TTY, a line every few seconds otherwise. */
export class Progress {
  private lastPrint = 0;
  private lastDone = -1;
  private readonly tty: boolean;
  constructor(private readonly label: string, private readonly total: number, private readonly stream: NodeJS.WriteStream = process.stderr, private readonly quiet = false) {
    this.tty = Boolean(stream.isTTY);
  }

  update(done: number, fields: Record<string, string | number>): void {
    if (this.quiet) return;
    const now = Date.now();
    if (!this.tty && (done === this.lastDone || (now - this.lastPrint < 5000 && done < this.total))) return;
    this.lastPrint = now;
    this.lastDone = done;
    const width = 24;
    const filled = Math.round((width * done) / Math.max(1, this.total));
    const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
    const text = Object.entries(fields).map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`).join('  ');
    const line = `${this.label} ${bar} ${done}/${this.total}  ${text}`;
    this.stream.write(this.tty ? `\r\x1b[K${line}` : `${line}\n`);
  }

  done(): void {
    if (this.tty && !this.quiet) this.stream.write('\n');
  }
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(4);
}
