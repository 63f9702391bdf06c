import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Graph } from '../../src/graph/ir.js';
import type { ModelConfig } from '../../src/model/config.js';
import { familyOf } from '../../src/model/families/registry.js';
import { inferenceContext } from '../../src/model/decode-graphs.js';
import { weightFeed } from '../../src/model/graph-weights.js';
import { logitsOf } from '../../src/model/llama.js';
import { positionConstants } from '../../src/model/positions.js';
import { loadSafetensors } from '../../src/model/safetensors.js';
import type { ParamStore, PeftConfig } from '../../src/model/params.js';
import { CompiledGraph } from '../../src/runtime/session.js';
import { tensor, type TensorData } from '../../src/runtime/tensor.js';

/** The fixtures scripts/families/make_fixtures.py builds with transformers (see there). */
export const FIXTURES = resolve('test/fixtures/families');
export const FAMILY_FIXTURES = ['llama31', 'smollm2', 'mistral', 'gemma2', 'gemma3', 'phi3', 'qwen3'] as const;
export type FixtureName = (typeof FAMILY_FIXTURES)[number];

export interface Reference {
  family: string;
  model_type: string;
  tokens: number[][];
  labels: number[][];
  loss: number;
  lora: { targets: string[]; r: number; lora_alpha: number; loss: number; sgd_lr: number; loss_after_sgd: number };
  generate: { prompt: number[][]; greedy: number[][]; greedy_uncached: number[][]; generate_agrees: boolean };
}

export function reference(name: FixtureName): {
  ref: Reference;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
} {
  const dir = join(FIXTURES, name);
  return {
    ref: JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as Reference,
    tensors: loadSafetensors(join(dir, 'reference.safetensors')).tensors,
  };
}

/** The fixture's folder with its config.json as transformers 5 wrote it, or in the older form (a copy). */
export function fixtureFolder(name: FixtureName, form: 'v5' | 'legacy'): string {
  const dir = join(FIXTURES, name);
  if (form === 'v5') return dir;
  const copy = mkdtempSync(join(tmpdir(), `flglm-${name}-legacy-`));
  copyFileSync(join(dir, 'model.safetensors'), join(copy, 'model.safetensors'));
  copyFileSync(join(dir, 'config.legacy.json'), join(copy, 'config.json'));
  return copy;
}

export const tokensOf = (rows: number[][]): TensorData => tensor('int64', [rows.length, rows[0].length], rows.flat());
export const labelsOf = (rows: number[][]): TensorData => tensor('int64', [rows.length * rows[0].length], rows.flat());

/** The logits [B*S, V] at every position, as transformers' forward returns them. */
export async function allLogits(
  c: ModelConfig,
  peft: PeftConfig,
  store: ParamStore,
  tokens: TensorData,
): Promise<Float32Array> {
  const [b, s] = tokens.shape;
  const g = new Graph('logits');
  const x = g.input('tokens', 'int64', [b, s]);
  const ctx = inferenceContext(
    g,
    c,
    peft,
    store,
    { part: 'full', split: { head_blocks: 0, tail_blocks: 0 }, batch: b },
    positionConstants(g, c, s, 0),
  );
  const family = familyOf(c.model_type);
  const h = family.decode(ctx, x, { embeds: true, layers: [0, c.num_hidden_layers] });
  g.output(logitsOf(family.lmHead(ctx, h)), 'logits');
  const session = await CompiledGraph.create(g, { threads: 1 });
  const feeds: Record<string, TensorData> = { tokens };
  for (const spec of session.inputs) if (spec.name !== 'tokens') feeds[spec.name] = weightFeed(store.get(spec.name)!);
  const out = await session.run(feeds);
  await session.release();
  return out.logits.data as Float32Array;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
