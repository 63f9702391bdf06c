import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';

/**
 * Follows a JSON-lines file another process appends to: each `poll()` reads only the bytes added
 * since the last one and returns the complete new records (a half-written last line waits).
 */
export class JsonLinesTail {
  private offset = 0;
  private partial = '';

  constructor(private readonly path: string) {}

  poll(): Record<string, unknown>[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size <= this.offset) return [];
    const buf = Buffer.alloc(size - this.offset);
    const fd = openSync(this.path, 'r');
    try {
      readSync(fd, buf, 0, buf.length, this.offset);
    } finally {
      closeSync(fd);
    }
    this.offset = size;
    const lines = (this.partial + buf.toString('utf8')).split('\n');
    this.partial = lines.pop() ?? '';
    return lines
      .filter((l) => l.trim())
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }
}
