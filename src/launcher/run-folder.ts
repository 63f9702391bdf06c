import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../util/atomic-write.js';
import { prepareOutputDir } from '../util/output-dir.js';
import { UserError } from '../util/errors.js';

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/**
 * A new run folder, created exclusively: `<base>/<name>-<time>`, or `-2`, `-3`... when another
 * run started in the same second, so two runs never write into one folder. An explicit `--out`
 * must not already hold a run.
 */
export function createRunFolder(outDir: string | undefined, base: string, name: string): string {
  if (outDir) {
    const dir = resolve(outDir);
    if (existsSync(join(dir, 'status.json')))
      throw new UserError(
        `${outDir} already holds a run (status.json). Fix: choose another --out, or continue it with flglm run --resume ${outDir}`,
      );
    prepareOutputDir(dir, '--out');
    mkdirSync(dir, { recursive: true });
    return dir;
  }
  prepareOutputDir(base, 'output_dir');
  mkdirSync(base, { recursive: true });
  const stem = join(resolve(base), `${name}-${timestamp()}`);
  for (let i = 1; i < 1000; i++) {
    const dir = i === 1 ? stem : `${stem}-${i}`;
    try {
      mkdirSync(dir); // not recursive: fails if another run took the name first
      return dir;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new UserError(`could not create a run folder under ${base}: 999 runs named ${name} this second`);
}

/** `status.json` of a run: what a user (or a script) checks to know how it went. */
export interface RunStatus {
  state: 'running' | 'failed' | 'finished';
  pid: number;
  started: string;
  ended?: string;
  /** Why it failed, in one line. */
  reason?: string;
  /** Rounds completed, from the server's checkpoint. */
  resumes?: number;
}

export function writeStatus(runDir: string, s: RunStatus): void {
  writeFileAtomic(join(runDir, 'status.json'), JSON.stringify(s, null, 2));
}

export function readStatus(runDir: string): RunStatus | null {
  const p = join(runDir, 'status.json');
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as RunStatus;
  } catch {
    return null;
  }
}

/** The child's own one-line error (`flglm: ...`), from the end of its log, if it printed one. */
export function rootCause(logPath: string): string | null {
  if (!existsSync(logPath)) return null;
  const lines = readFileSync(logPath, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  for (let i = lines.length - 1; i >= 0 && i >= lines.length - 50; i--) {
    if (lines[i].startsWith('flglm: ') && !lines[i].startsWith('flglm: WARNING'))
      return lines[i].slice('flglm: '.length);
  }
  return null;
}

/** The client silos a run prepared (`data/client-0`...), for --resume. */
export function clientSilos(dataDir: string, clients: number): string[] {
  const silos = Array.from({ length: clients }, (_, i) => join(dataDir, `client-${i}`));
  const missing = silos.find((s) => !existsSync(s));
  if (missing) throw new UserError(`cannot resume: ${missing} is gone. Fix: start a new run`);
  return silos;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Client ids from silo folder names: valid kit ids (letters, digits, . _ -), unique, not reserved. */
export function clientNames(silos: string[]): string[] {
  const seen = new Set<string>();
  return silos.map((dir, i) => {
    let id = basename(dir.replace(/\/+$/, ''))
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 60);
    if (!id || /^(sub-server|ca$|server$)/i.test(id)) id = `client-${i}`;
    let unique = id;
    for (let k = 2; seen.has(unique); k++) unique = `${id}-${k}`;
    seen.add(unique);
    return unique;
  });
}

/** The sub-folders of `dir` (none if it does not exist). */
export function listDirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => join(dir, e.name));
}
