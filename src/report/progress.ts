/** A one-line progress display: redrawn in place on a TTY, a line every few seconds otherwise. */
export class Progress {
  private lastPrint = 0;
  private lastDone = -1;
  private readonly tty: boolean;
  private readonly start = Date.now();
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {
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
    const text = Object.entries(fields)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? fmt(v) : v}`)
      .join('  ');
    const elapsed = (now - this.start) / 1000;
    // ETA from the average pace so far (none before the first unit of work is done).
    const eta = done > 0 && done < this.total ? `  eta ${duration((elapsed * (this.total - done)) / done)}` : '';
    const line = `${this.label} ${bar} ${done}/${this.total}  ${text}  ${duration(elapsed)}${eta}`;
    this.stream.write(this.tty ? `\r\x1b[K${line}` : `${line}\n`);
  }

  done(): void {
    if (this.tty && !this.quiet) this.stream.write('\n');
  }
}

/** 5s, 2m05s, 1h02m. */
export function duration(s: number): string {
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(4);
}

/** A status line: an ora spinner on a terminal; plain lines, without colour codes, anywhere else. */
export interface StatusLine {
  text: string;
  succeed(message: string): void;
}

export async function statusLine(
  text: string,
  quiet = false,
  stream: NodeJS.WriteStream = process.stderr,
): Promise<StatusLine> {
  if (quiet) return { text, succeed: () => {} };
  if (stream.isTTY) {
    const { default: ora } = await import('ora');
    return ora({ text, stream }).start();
  }
  stream.write(`${text}\n`);
  let current = text;
  return {
    get text() {
      return current;
    },
    set text(t: string) {
      current = t;
      stream.write(`${t}\n`);
    },
    succeed: (message: string) => {
      stream.write(`${message}\n`);
    },
  };
}
