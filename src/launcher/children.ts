import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withMallocEnv } from '../util/malloc-env.js';
import { UserError } from '../util/errors.js';
import { rootCause } from './run-folder.js';
import { readSummary, type ServerReady } from './summaries.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'flglm');

/** The flglm child processes of one run (server, clients, baseline), each logging to `logs/<name>.log`. */
export class RunChildren {
  private readonly children = new Set<ChildProcess>();

  constructor(private readonly runDir: string) {}

  spawnFlglm(args: string[], logName: string): ChildProcess {
    mkdirSync(join(this.runDir, 'logs'), { recursive: true });
    const log = createWriteStream(join(this.runDir, 'logs', `${logName}.log`));
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: withMallocEnv() });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.children.add(child);
    child.on('exit', () => {
      this.children.delete(child);
    });
    return child;
  }

  /** Stop every child process: SIGTERM, then SIGKILL after 3 s. */
  async stopAll(): Promise<void> {
    const alive = [...this.children];
    for (const c of alive) c.kill('SIGTERM');
    await Promise.all(
      alive.map(
        (c) =>
          new Promise<void>((res) => {
            const t = setTimeout(() => {
              c.kill('SIGKILL');
              res();
            }, 3000);
            c.once('exit', () => {
              clearTimeout(t);
              res();
            });
          }),
      ),
    );
  }

  /** A child's exit; a failure names the child's own error line and its log. */
  exitOf(child: ChildProcess, what: string, logName: string): Promise<void> {
    const log = join(this.runDir, 'logs', `${logName}.log`);
    return new Promise((res, rej) =>
      child.once('exit', (code, signal) => {
        if (code === 0) return res();
        // The log stream may still be flushing the child's last line.
        setTimeout(() => {
          const cause = rootCause(log);
          rej(new UserError(`${what} failed: ${cause ?? `exited with ${signal ?? `code ${code}`}`} (log: ${log})`));
        }, 100);
      }),
    );
  }

  /** The server's ready file (it listens), or its exit, or 60 s. */
  async waitReady(readyFile: string, serverDone: Promise<void>): Promise<ServerReady> {
    let exited: Error | null = null;
    serverDone.catch((e: Error) => {
      exited = e;
    });
    for (const deadline = Date.now() + 60000; Date.now() < deadline;) {
      if (existsSync(readyFile)) return readSummary<ServerReady>(readyFile, 'the server');
      if (exited) throw exited;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new UserError(`the server did not start in 60 s; see ${join(this.runDir, 'logs', 'server.log')}`);
  }
}
