import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TensorData } from '../runtime/tensor.js';
import { loadSafetensors, saveSafetensors } from '../model/safetensors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';

/**
 * `--capture DIR` (off by default, loud when on), for measuring the inversion attack on a real run:
 * the server keeps the last `steps` h_A tensors it received from each client (what a curious server
 * could keep), and each client keeps the token ids of the same steps, on its own machine, as the
 * truth to score a reconstruction against. The last steps, because the attack runs with the head the
 * server holds at the end. Written when the run ends (`flush`): DIR/server/<client>/r<round>-s<step>.safetensors
 * and DIR/clients/<client>/r<round>-s<step>.json, keyed by the client id the server knows.
 */
export class Capture {
  private readonly kept = new Map<string, { round: number; step: number; write: (dir: string) => void }[]>();

  constructor(
    readonly dir: string,
    readonly steps: number,
  ) {}

  private keep(clientId: string, round: number, step: number, write: (dir: string) => void): void {
    const list = this.kept.get(clientId) ?? [];
    list.push({ round, step, write });
    if (list.length > this.steps) list.shift();
    this.kept.set(clientId, list);
  }

  /** Server side: a training step's h_A as received (after the client's noise, if any). */
  activations(clientId: string, round: number, step: number, hA: TensorData): void {
    const data = hA.data as Float32Array,
      shape = [...hA.shape];
    this.keep(clientId, round, step, (dir) =>
      saveSafetensors(join(dir, `r${round}-s${step}.safetensors`), new Map([['h_A', { shape, data }]])),
    );
  }

  /** Client side: the token ids [B, S] behind that step's h_A, and the padding id. */
  tokens(clientId: string, round: number, step: number, tokens: TensorData, pad: number): void {
    const [b, s] = tokens.shape;
    const rows = Array.from({ length: b }, (_, r) =>
      Array.from((tokens.data as BigInt64Array).subarray(r * s, (r + 1) * s), Number),
    );
    this.keep(clientId, round, step, (dir) =>
      writeFileAtomic(join(dir, `r${round}-s${step}.json`), JSON.stringify({ pad, tokens: rows })),
    );
  }

  /** Write what was kept: `side` is server (activations) or clients (truths). */
  flush(side: 'server' | 'clients'): void {
    for (const [client, list] of this.kept) {
      const dir = join(this.dir, side, safe(client));
      mkdirSync(dir, { recursive: true });
      for (const k of list) k.write(dir);
    }
  }
}

/** A client id as a folder name. */
function safe(id: string): string {
  return id.replace(/[^A-Za-z0-9._-]/g, '_');
}

/** One captured step: what the server received and what the client sent it from. */
export interface CapturedStep {
  client: string;
  round: number;
  step: number;
  /** h_A [B, S, D]. */
  hA: { shape: number[]; data: Float32Array };
  /** Token ids per row, and the padding id (positions holding it are not scored). */
  tokens: number[][];
  pad: number;
}

/** Every step captured on both sides in DIR (those the server kept and the client kept the truth for). */
export function readCapture(dir: string): CapturedStep[] {
  const serverDir = join(dir, 'server'),
    clientDir = join(dir, 'clients');
  if (!existsSync(serverDir) || !existsSync(clientDir))
    throw new UserError(
      `${dir}: no captured activations (server/) and truths (clients/). Fix: run with --capture ${dir} on the server and the clients (flglm run --attack does)`,
    );
  const out: CapturedStep[] = [];
  for (const client of readdirSync(serverDir).sort()) {
    for (const f of readdirSync(join(serverDir, client)).sort()) {
      const m = /^r(\d+)-s(\d+)\.safetensors$/.exec(f);
      const truthFile = join(clientDir, client, `r${m?.[1]}-s${m?.[2]}.json`);
      if (!m || !existsSync(truthFile)) continue;
      const hA = loadSafetensors(join(serverDir, client, f)).tensors.get('h_A')!;
      const truth = JSON.parse(readFileSync(truthFile, 'utf8')) as { pad: number; tokens: number[][] };
      out.push({ client, round: Number(m[1]), step: Number(m[2]), hA, tokens: truth.tokens, pad: truth.pad });
    }
  }
  if (out.length === 0) throw new UserError(`${dir}: no step was captured on both the server and a client side`);
  return out;
}
