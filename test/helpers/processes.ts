import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A real `bin/flglm` child process whose output can be awaited line by line. */
export class FlglmProcess {
  readonly child: ChildProcess;
  output = '';
  private waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], opts: { cwd?: string } = {}) {
    this.child = spawn(process.execPath, [`${process.cwd()}/bin/flglm`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: opts.cwd,
    });
    const onData = (d: Buffer) => {
      this.output += d.toString();
      this.waiters = this.waiters.filter((w) => {
        const m = w.re.exec(this.output);
        if (m) w.resolve(m);
        return !m;
      });
    };
    this.child.stdout!.on('data', onData);
    this.child.stderr!.on('data', onData);
    this.exited = new Promise((res) => this.child.once('exit', (code) => res(code)));
  }

  /** Resolve when the output matches `re`; reject after `timeoutMs` with the output so far. */
  waitFor(re: RegExp, timeoutMs = 60000): Promise<RegExpExecArray> {
    const m = re.exec(this.output);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`timed out waiting for ${re}; output:\n${this.output.slice(-2000)}`)),
        timeoutMs,
      );
      this.waiters.push({
        re,
        resolve: (x) => {
          clearTimeout(t);
          resolve(x);
        },
      });
    });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child.kill(signal);
  }
}

/** A TCP port free on 127.0.0.1 right now (for a process that must be told its port up front). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
