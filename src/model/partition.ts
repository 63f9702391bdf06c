import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { gradients } from '../graph/autodiff.js';
import { UserError } from '../util/errors.js';
import type { ModelConfig } from './config.js';
import type { BlockContext } from './llama.js';
import { positionConstants } from './positions.js';
import { familyOf } from './families/registry.js';
import { graphWeights } from './graph-weights.js';
import { lmHeadLoss } from './lm-loss.js';
import { isTrainable, layerPrefix, type LoraTarget, type ParamStore, type PeftConfig } from './params.js';

/**
 * The FL-GLM three-way split. head = embeddings + blocks [0, p); trunk = blocks [p, L-q);
 * tail = blocks [L-q, L) + final norm + LM head + loss. `full` is the unsplit model (the
 * centralized baseline). Token ids and labels exist only in head and tail graphs.
 */
export type PartName = 'head' | 'trunk' | 'tail' | 'full';
export type ProgramKind = 'forward' | 'backward' | 'step' | 'eval';

export interface SplitPoints {
  head_blocks: number;
  tail_blocks: number;
}

export const IGNORE_INDEX = -100;

interface PartShape {
  embeds: boolean;
  layers: [number, number];
  hasLmHead: boolean;
  input: string;
  output: string;
}

export function validateSplit(c: ModelConfig, s: SplitPoints): void {
  const L = c.num_hidden_layers;
  if (s.head_blocks < 1 || s.tail_blocks < 1 || s.head_blocks + s.tail_blocks >= L) {
    throw new UserError(
      `split: need head_blocks >= 1, tail_blocks >= 1 and head_blocks + tail_blocks < ${L} (the model's layers) so the server keeps at least one block; got head_blocks ${s.head_blocks}, tail_blocks ${s.tail_blocks}`,
    );
  }
}

function partShape(part: PartName, c: ModelConfig, s: SplitPoints): PartShape {
  const L = c.num_hidden_layers;
  switch (part) {
    case 'head':
      return { embeds: true, layers: [0, s.head_blocks], hasLmHead: false, input: 'tokens', output: 'h_A' };
    case 'trunk':
      return {
        embeds: false,
        layers: [s.head_blocks, L - s.tail_blocks],
        hasLmHead: false,
        input: 'h_A',
        output: 'h_B',
      };
    case 'tail':
      return { embeds: false, layers: [L - s.tail_blocks, L], hasLmHead: true, input: 'h_B', output: 'loss' };
    case 'full':
      return { embeds: true, layers: [0, L], hasLmHead: true, input: 'tokens', output: 'loss' };
  }
}

/** The embedding and blocks a part runs (what `ModelFamily.decode` takes). */
export function partSpan(
  part: PartName,
  c: ModelConfig,
  s: SplitPoints,
): { embeds: boolean; layers: [number, number] } {
  const { embeds, layers } = partShape(part, c, s);
  return { embeds, layers };
}

/** Whether a parameter (base or PEFT) belongs to a part. */
export function partOwns(part: PartName, c: ModelConfig, s: SplitPoints): (name: string) => boolean {
  const shape = partShape(part, c, s);
  return (name) => {
    const l = name.startsWith('model.layers.') ? Number(name.split('.')[2]) : -1;
    if (l >= 0) return l >= shape.layers[0] && l < shape.layers[1];
    if (name === 'model.embed_tokens.weight') return shape.embeds || (shape.hasLmHead && c.tie_word_embeddings);
    return shape.hasLmHead; // model.norm.weight, lm_head.weight
  };
}

/** Names of every parameter (base and PEFT) a part owns, in store order. */
export function partParamNames(part: PartName, c: ModelConfig, s: SplitPoints, store: ParamStore): string[] {
  return [...store.keys()].filter(partOwns(part, c, s));
}

export function trainableNames(
  part: PartName,
  c: ModelConfig,
  s: SplitPoints,
  store: ParamStore,
  peft: PeftConfig,
): string[] {
  return partParamNames(part, c, s, store).filter((n) => isTrainable(n, peft.method));
}

export interface PartProgram {
  graph: Graph;
  part: PartName;
  kind: ProgramKind;
  trainable: string[];
  /** The part's forward result (h_A or h_B; the loss for tail/full). */
  forwardOutput: Value;
}

export const gradName = (param: string) => `grad.${param}`;

/** Graph input name of a LoRA dropout mask. */
export const dropoutMaskName = (layer: number, target: string) => `lora_dropout.${layer}.${target}`;

/**
 * Build one program of a part for a fixed [batch, seq]:
 * - forward: input -> activation (head, trunk)
 * - backward: input + upstream gradient -> input gradient (trunk) + parameter gradients; the
 *   forward is recomputed inside the graph (see docs/training-core.md for why)
 * - step: input + labels -> loss + input gradient (tail) + parameter gradients (tail, full)
 * - eval: input + labels -> loss + argmax predictions (tail, full)
 */

export function buildPartProgram(
  part: PartName,
  kind: ProgramKind,
  c: ModelConfig,
  s: SplitPoints,
  peft: PeftConfig,
  store: ParamStore,
  batch: number,
  seq: number,
  opts: { training?: boolean; lossChunkRows?: number } = {},
): PartProgram {
  const shape = partShape(part, c, s);
  if ((kind === 'step' || kind === 'eval') !== shape.hasLmHead) throw new Error(`${part} has no ${kind} program`);
  const g = new Graph(`${part}_${kind}`);
  const names = new Set(partParamNames(part, c, s, store));
  const trainable = [...names].filter((n) => isTrainable(n, peft.method));
  const differentiate = kind === 'backward' || kind === 'step';

  const x = shape.embeds
    ? g.input('tokens', 'int64', [batch, seq])
    : g.input(shape.input, 'float32', [batch, seq, c.hidden_size]);
  const labels = shape.hasLmHead ? g.input('labels', 'int64', [batch * seq]) : null;
  const { weight, has, inputs, times } = graphWeights(g, store, names, part, trainable);
  // Dropout applies to training passes: backward and step programs, and forwards marked training.
  const dropout = peft.method === 'lora' && peft.lora.dropout > 0 && (differentiate || opts.training === true);
  const family = familyOf(c.model_type);
  const ctx: BlockContext = {
    config: c,
    traits: family.traits,
    peft,
    weight,
    has,
    times,
    positions: positionConstants(g, c, seq, peft.method === 'prefix' ? peft.prefix.length : 0),
    ...(dropout
      ? {
          loraDropout: (layer: number, target: LoraTarget, like: Value) =>
            g.input(dropoutMaskName(layer, target), 'float32', like.shape),
        }
      : {}),
  };

  const h = family.decode(ctx, x, shape);

  const wrt = [...inputs];
  const gradInput = differentiate && !shape.embeds;
  if (gradInput) wrt.push(x);

  let forwardOutput = h;
  if (shape.hasLmHead) {
    const head = family.lmHead(ctx, h);
    const weightIndex = wrt.indexOf(head.weight);
    const result = lmHeadLoss(head, labels!, {
      ignoreIndex: IGNORE_INDEX,
      gradients: kind !== 'step' ? 'none' : weightIndex >= 0 ? 'hidden+weight' : 'hidden',
      predictions: kind === 'eval',
      chunkRows: opts.lossChunkRows,
    });
    forwardOutput = result.loss;
    g.output(result.loss, 'loss');
    if (kind === 'eval') g.output(result.pred!, 'pred');
    if (kind === 'step') {
      // Autodiff from the LM head's input down; the head's own weight gradient comes from lmHeadLoss.
      const grads = gradients([head.hidden], [result.gradHidden!], wrt);
      if (weightIndex >= 0)
        grads[weightIndex] = grads[weightIndex] ? op.add(grads[weightIndex]!, result.gradWeight!) : result.gradWeight!;
      emitGradients(g, grads, trainable, gradInput ? shape.input : null);
    }
  } else if (kind === 'forward') {
    g.output(h, shape.output);
  } else {
    const upstream = g.input(`grad_${shape.output}`, 'float32', h.shape);
    emitGradients(g, gradients([h], [upstream], wrt), trainable, gradInput ? shape.input : null);
  }
  return { graph: g, part, kind, trainable, forwardOutput };
}

function emitGradients(g: Graph, grads: (Value | null)[], trainable: string[], inputName: string | null): void {
  trainable.forEach((name, i) => {
    const gr = grads[i] ?? op.expand(op.scalar(g, 0), g.inputs.find((v) => v.name === name)!.shape);
    g.output(gr, gradName(name));
  });
  if (inputName)
    g.output(
      grads[trainable.length] ?? op.expand(op.scalar(g, 0), g.inputs.find((v) => v.name === inputName)!.shape),
      `grad_${inputName}`,
    );
}

export { layerPrefix };
