import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, resolveModel } from '../config/experiment.js';
import { loadCorpus } from '../data/corpora.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { partOwns } from '../model/partition.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore } from '../model/params.js';
import { tensor } from '../runtime/tensor.js';
import { loadCheckpoint } from '../training/checkpoint.js';
import { PartExecutor } from '../training/part-executor.js';
import { rougeLF1 } from '../training/text-metrics.js';
import { Rng } from '../util/rng.js';
import type { CapturedStep } from './capture.js';
import { DEFAULT_INVERTER, Inverter, type InverterOptions } from './inverter.js';
import { ActivationNoise } from './activation-noise.js';
import { ActivationDp, type UplinkNoise } from './example-dp.js';

/**
 * The honest-but-curious server's inversion attack (`flglm attack invert`), as a tool to test a
 * configuration: with the head weights the server holds, it runs the head on public text (the
 * bundled State of the Union addresses and Moby-Dick) to make (h_A, token) pairs — adding the
 * plan's own activation noise, which the server knows — trains an inverter on them, then reads the
 * clients' tokens back from the h_A it received. Scores: token accuracy over the non-padding
 * positions, and ROUGE-L F1 of each reconstructed row against the client's true text.
 */

/** The head as the server sees it. */
export interface AttackerHead {
  config: ModelConfig;
  store: ParamStore;
  tokenizer: Tokenizer;
  /** Where the head's weights came from (trained global parts, or only the initial weights). */
  source: string;
}

/**
 * The head a run's server could hold: the model's initial weights (a preset from the plan's seed,
 * or the base model folder) with the trained global client parts from its round checkpoint, where
 * it holds them in the clear (not with `privacy.hide_aggregate`).
 */
export function serverViewHead(cfg: ExperimentConfig, serverCheckpoint: string | null): AttackerHead {
  const { config, store, tokenizer } = resolveModel(cfg, (m) => partOwns('head', m, cfg.split));
  let source = cfg.model.hf_path
    ? `the base model ${cfg.model.hf_path}, untrained parts`
    : `the initial weights (preset ${cfg.model.preset}, seed ${cfg.seed})`;
  if (serverCheckpoint && existsSync(join(serverCheckpoint, 'checkpoint.json'))) {
    const ckpt = loadCheckpoint(serverCheckpoint);
    const globals = [...(ckpt.extra ?? [])].filter(
      ([n]) => !n.startsWith('strategy/') && !n.startsWith('secagg/') && store.has(n),
    );
    for (const [n, t] of globals) store.set(n, { shape: store.get(n)!.shape, data: t.data });
    if (globals.length)
      source = `the global client parts of round ${ckpt.meta.round} (server checkpoint) over ${source}`;
  }
  return { config, store, tokenizer, source };
}

export interface AttackOptions {
  /** Public tokens to make training pairs from. */
  publicTokens: number;
  /** Noise the attacker adds to its own pairs (the plan's activation noise). */
  sigma: number;
  /** sigma is a multiple of each h_A's RMS, as the clients' `activation_noise.relative` makes it. */
  relative: boolean;
  inverter: InverterOptions;
  /** Reconstructions to show in the result. */
  samples: number;
}

export const DEFAULT_ATTACK: AttackOptions = {
  publicTokens: 60_000,
  sigma: 0,
  relative: false,
  inverter: DEFAULT_INVERTER,
  samples: 3,
};

export interface AttackResult {
  head: string;
  sigma: number;
  relative: boolean;
  public_pairs: number;
  inverter_final_loss: number;
  captured_steps: number;
  positions: number;
  token_accuracy: number;
  rouge_l_f1: number;
  /** RMS of the captured h_A (the scale noise is relative to). */
  activation_rms: number;
  samples: { truth: string; reconstruction: string }[];
}

/** Public text as [B, S] token batches shaped like the clients' (BOS, then a window of a document). */
function publicBatches(tok: Tokenizer, batch: number, seq: number, tokens: number, seed: number): BigInt64Array[] {
  const docs = [...loadCorpus('sotu'), ...loadCorpus('moby-dick')].map((d) => d.text);
  const rng = new Rng(seed);
  const out: BigInt64Array[] = [];
  for (let made = 0; made < tokens; made += batch * seq) {
    const b = new BigInt64Array(batch * seq);
    for (let r = 0; r < batch; r++) {
      const text = docs[rng.int(docs.length)];
      const at = rng.int(Math.max(1, text.length - 4 * seq));
      const ids = [tok.bos, ...tok.encode(text.slice(at, at + 8 * seq))].slice(0, seq);
      for (let t = 0; t < seq; t++) b[r * seq + t] = BigInt(ids[t] ?? tok.pad);
    }
    out.push(b);
  }
  return out;
}

export async function invertActivations(
  cfg: ExperimentConfig,
  head: AttackerHead,
  captured: CapturedStep[],
  o: AttackOptions = DEFAULT_ATTACK,
): Promise<AttackResult> {
  const { batch_size: B, seq_len: S } = cfg.data;
  const d = head.config.hidden_size;
  const runtime = { threads: cfg.runtime.threads };
  const executor = new PartExecutor('head', head.config, cfg.split, peftOf(cfg), head.store, runtime, 'recompute');
  // The same noise as the clients', absolute or relative to each batch's RMS (activation-noise.ts), or
  // with privacy.dp.activations the same per-example clipping and noise (the plan tells the server).
  const dp = cfg.privacy.dp.activations;
  const noise: UplinkNoise = dp.enabled
    ? new ActivationDp(dp.clip_norm, dp.noise_multiplier)
    : new ActivationNoise(o.sigma, false, o.inverter.seed + 1, 'attacker', o.relative);
  // Pairs from public text through the attacker's head.
  const batches = publicBatches(head.tokenizer, B, S, o.publicTokens, o.inverter.seed);
  const acts = new Float32Array(batches.length * B * S * d),
    ids = new Int32Array(batches.length * B * S);
  let count = 0;
  for (const b of batches) {
    const hA = noise.apply(await executor.forward(tensor('int64', [B, S], b))).data as Float32Array;
    for (let p = 0; p < B * S; p++) {
      if (Number(b[p]) === head.tokenizer.pad) continue;
      acts.set(hA.subarray(p * d, (p + 1) * d), count * d);
      ids[count++] = Number(b[p]);
    }
  }
  await executor.release();
  const { inverter, losses } = await Inverter.train(
    acts.subarray(0, count * d),
    ids.subarray(0, count),
    d,
    head.config.vocab_size,
    { ...o.inverter, runtime },
  );
  // Read the clients' tokens back from what the server received.
  let correct = 0,
    positions = 0,
    sumSq = 0,
    values = 0;
  const rouge: number[] = [];
  const samples: AttackResult['samples'] = [];
  for (const c of captured) {
    const rows = c.tokens.length,
      seq = c.tokens[0]?.length ?? 0;
    const pred = await inverter.predict(c.hA.data, rows * seq);
    for (const x of c.hA.data) sumSq += x * x;
    values += c.hA.data.length;
    for (let r = 0; r < rows; r++) {
      const truth: number[] = [],
        guess: number[] = [];
      for (let t = 0; t < seq; t++) {
        const id = c.tokens[r][t];
        if (id === c.pad) continue;
        truth.push(id);
        guess.push(pred[r * seq + t]);
        positions++;
        if (pred[r * seq + t] === id) correct++;
      }
      const [truthText, guessText] = [head.tokenizer.decode(truth), head.tokenizer.decode(guess)];
      rouge.push(rougeLF1(guessText, truthText));
      if (samples.length < o.samples)
        samples.push({ truth: truthText.slice(0, 160), reconstruction: guessText.slice(0, 160) });
    }
  }
  await inverter.release();
  const tail = losses.slice(-20);
  return {
    head: head.source,
    sigma: o.sigma,
    relative: o.relative,
    public_pairs: count,
    inverter_final_loss: tail.reduce((a, b) => a + b, 0) / tail.length,
    captured_steps: captured.length,
    positions,
    token_accuracy: positions ? correct / positions : 0,
    rouge_l_f1: rouge.length ? rouge.reduce((a, b) => a + b, 0) / rouge.length : 0,
    activation_rms: Math.sqrt(sumSq / Math.max(1, values)),
    samples,
  };
}
