import { privacyProblems } from './privacy-rules.js';
import { mergedOptions } from './plugin-options.js';
import {
  DEFAULT_STRATEGY,
  STRATEGIES,
  STRATEGY_NAMES,
  strategyProblems,
  strategyTraits,
} from '../federation/strategies/lookup.js';
import { DEFAULT_MODE, MODES, modesWith, modeTraits, SERVER_MODES } from '../server/modes/lookup.js';
import { FROZEN_DTYPES, quantizedBaseProblem } from '../model/frozen-dtype.js';
import { QUANT_COMPUTES } from '../model/quantize.js';
import { z } from 'zod';
import { TASKS } from '../data/examples.js';
import { dpSchema } from './dp-schema.js';
import { dpProblems } from './dp-rules.js';

/**
 * The experiment config: one YAML file describes a whole run. Every key has a default, so the
 * resolved config (printed by `flglm config validate`) is always complete. `configs/reference.yaml`
 * lists the same keys with their defaults and must be kept in step with this file (a test checks).
 */

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

/** federation.chunk_bytes' default: tensors travel in messages of at most this many bytes of data. */
export const DEFAULT_CHUNK_BYTES = 4 * 1024 * 1024;
export const MODEL_PRESETS = ['tiny', 'small', 'base'] as const;
export const FINETUNE_METHODS = ['full', 'lora', 'prefix'] as const;
// A model's family decides which of these it has: Phi-3 fuses q, k, v into qkv and gate, up into gate_up (src/model/families).
export const LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down', 'qkv', 'gate_up'] as const;
export const DATASETS = ['spam-assassin', 'sotu', 'moby-dick'] as const;

const partitionRule = z
  .string()
  .regex(/^(natural|iid|dirichlet:(\d+(\.\d+)?|\.\d+))$/, 'expected natural|iid|dirichlet:ALPHA');

export const modelSchema = z
  .strictObject({
    preset: z.enum(MODEL_PRESETS).default('small'),
    hf_path: z.string().nullable().default(null),
    max_seq_len: positiveInt.default(256),
    /** Precision of frozen weights in memory with LoRA/prefix tuning (src/model/frozen-dtype.ts). */
    frozen_dtype: z.enum(FROZEN_DTYPES).default('auto'),
    /** How int8/int4 frozen weights are multiplied: int8 activations (fast) or float32 (src/model/quantize.ts). */
    quant_compute: z.enum(QUANT_COMPUTES).default('int8'),
  })
  .prefault({});

export const splitSchema = z
  .strictObject({
    head_blocks: positiveInt.default(1),
    tail_blocks: positiveInt.default(1),
  })
  .prefault({});

export const finetuneSchema = z
  .strictObject({
    method: z.enum(FINETUNE_METHODS).default('full'),
    lora: z
      .strictObject({
        rank: positiveInt.default(8),
        alpha: z.number().positive().default(16),
        dropout: z.number().min(0).max(1).default(0),
        targets: z.array(z.enum(LORA_TARGETS)).min(1).default(['q', 'v']),
      })
      .prefault({}),
    prefix: z.strictObject({ length: positiveInt.default(16) }).prefault({}),
  })
  .prefault({});

export const optimizerSchema = z
  .strictObject({
    name: z.enum(['adamw', 'sgd']).default('adamw'),
    lr: z.number().positive().default(1e-3),
    weight_decay: z.number().min(0).default(0.01),
    betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
    eps: z.number().positive().default(1e-8),
    momentum: z.number().min(0).lt(1).default(0.9),
    grad_clip: z.number().min(0).default(1.0),
    grad_accum: positiveInt.default(1),
  })
  .prefault({});

export const scheduleSchema = z
  .strictObject({
    warmup_steps: nonNegInt.default(10),
    decay: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
    min_lr_ratio: z.number().min(0).max(1).default(0.1),
  })
  .prefault({});

export const dataSchema = z
  .strictObject({
    task: z.enum(TASKS).default('classify'),
    dataset: z.enum(DATASETS).default('spam-assassin'),
    silos: z.array(z.string()).nullable().default(null),
    test: z.string().nullable().default(null),
    partition: partitionRule.default('natural'),
    test_fraction: z.number().gt(0).lt(1).default(0.1),
    batch_size: positiveInt.default(8),
    seq_len: positiveInt.default(128),
    max_examples: positiveInt.nullable().default(null),
    /** Format prompt/completion examples with the model's chat template (tokenizer_config.json). */
    chat_template: z.boolean().default(false),
  })
  .prefault({});

export const strategySchema = z
  .strictObject({
    name: z.enum(STRATEGY_NAMES).default(DEFAULT_STRATEGY),
    // Each strategy's own keys (server_lr, momentum, ...), declared in its file under federation/strategies/.
    ...mergedOptions(STRATEGIES),
    client_optimizer: z.enum(['keep', 'reset', 'average']).default('keep'),
  })
  .prefault({});

export type StrategyConfig = z.output<typeof strategySchema>;

export const federationSchema = z
  .strictObject({
    strategy: strategySchema,
    mode: z.enum(SERVER_MODES).default(DEFAULT_MODE),
    clients: positiveInt.default(3),
    rounds: positiveInt.default(5),
    local_steps: positiveInt.default(10),
    // Each mode's own keys (sub_servers, batch_clients, ...), declared in its file under server/modes/.
    ...mergedOptions(MODES),
    min_clients: positiveInt.default(1),
    heartbeat_ms: positiveInt.default(2000),
    client_timeout_ms: positiveInt.default(60000),
    chunk_bytes: positiveInt.default(DEFAULT_CHUNK_BYTES),
    checkpoint_every_rounds: positiveInt.default(1),
    /** How client parameters travel at round end: float32, or float16 differences from the round's start (half the bytes). */
    update_encoding: z.enum(['float32', 'float16-delta']).default('float32'),
  })
  .prefault({});

export const securitySchema = z
  .strictObject({
    tls: z.boolean().default(true),
    payload_encryption: z.boolean().default(true),
    pki: z.string().nullable().default(null),
  })
  .prefault({});

export const privacySchema = z
  .strictObject({
    /** Gaussian noise on h_A before it leaves a client (training and evaluation); sigma absolute, or with `relative` a multiple of the batch's RMS. */
    activation_noise: z
      .strictObject({
        sigma: z.number().min(0).default(0),
        gradients: z.boolean().default(false),
        relative: z.boolean().default(false),
      })
      .prefault({}),
    /** The server aggregates client parts without seeing any one client's (Bonawitz et al. 2017; docs/security.md). */
    secure_aggregation: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** Shares that unmask a round (its survivors); null = a majority of the round's clients. */
        threshold: positiveInt.nullable().default(null),
        /** Fixed-point bits of the ring encoding: |sum of weight x parameter| must stay below 2^(31 - scale_bits). */
        scale_bits: z.number().int().min(4).max(24).default(16),
      })
      .prefault({}),
    /** With secure aggregation: the aggregate is masked with a secret only clients hold (their kits), so the server never learns the global head and tail. */
    hide_aggregate: z.boolean().default(false),
    /** Differential privacy with an accountant (dp-schema.ts): DP-FedAvg of client parts, clipped and noised h_A. */
    dp: dpSchema,
    /** Stop a run before its ε would pass this (null: no budget); δ is the accountant's. */
    target_epsilon: z.number().positive().nullable().default(null),
    delta: z.number().gt(0).lt(1).default(1e-5),
  })
  .prefault({});

/** What one peer (one certificate) may make the server hold, and for how long (docs/security.md). */
export const transportLimitsSchema = z
  .strictObject({
    /** RMS of any float tensor a client sends (h_A, dL/dh_B, parameters, moments); finite is not enough. */
    max_value_rms: z.number().positive().default(1e4),
  })
  .prefault({});

export type TransportLimits = z.output<typeof transportLimitsSchema>;

export const transportSchema = z
  .strictObject({
    /** How h_A, h_B and their gradients travel: float32, or float16 / bfloat16 at half the bytes (before encryption). */
    activation_dtype: z.enum(['fp32', 'fp16', 'bf16']).default('fp32'),
    limits: transportLimitsSchema,
  })
  .prefault({});

export const runtimeSchema = z
  .strictObject({
    device: z.enum(['cpu', 'cuda']).default('cpu'),
    /** ONNX Runtime intra-op threads per process; null: one per physical core (runtime/threads.ts; a trunk replica gets its share). */
    threads: positiveInt.nullable().default(null),
    /**
     * ONNX Runtime's CPU memory arena. Off, freed buffers go back to malloc: lower peaks (the arena
     * grows in power-of-two regions and keeps them), and as fast as the arena when malloc keeps
     * freed memory mapped (flglm's malloc settings, src/util/malloc-env.ts), much slower when it does
     * not. Qwen2.5-0.5B-shaped LoRA step, one process (`memory-arena`): with the settings 8.49 s /
     * 4967 MiB off against 8.65 s / 5463 MiB on; with glibc's defaults 13.1 s / 5254 MiB off
     * against 9.6 s / 6665 MiB on. auto: off with the settings, on without.
     */
    memory_arena: z.union([z.literal('auto'), z.boolean()]).default('auto'),
  })
  .prefault({});

export const evalSchema = z
  .strictObject({
    every_rounds: positiveInt.default(1),
    max_batches: positiveInt.nullable().default(null),
    /** Task generate: tokens decoded per held-out example (greedy, KV cache) for ROUGE-L and exact match. */
    max_new_tokens: positiveInt.default(48),
  })
  .prefault({});

export const trackingSchema = z
  .strictObject({
    /** Write TensorBoard event files here (one run per participant, the config as text); null = off. */
    tensorboard: z.string().nullable().default(null),
  })
  .prefault({});

export const experimentSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, ".", "_" or "-"')
      .default('experiment'),
    seed: nonNegInt.default(0),
    output_dir: z.string().default('runs'),
    baseline: z.enum(['none', 'centralized']).default('none'),
    model: modelSchema,
    split: splitSchema,
    finetune: finetuneSchema,
    optimizer: optimizerSchema,
    schedule: scheduleSchema,
    data: dataSchema,
    federation: federationSchema,
    security: securitySchema,
    transport: transportSchema,
    privacy: privacySchema,
    runtime: runtimeSchema,
    eval: evalSchema,
    tracking: trackingSchema,
  })
  .superRefine((cfg, ctx) => {
    if (cfg.federation.min_clients > cfg.federation.clients) {
      ctx.addIssue({
        code: 'custom',
        path: ['federation', 'min_clients'],
        message: `must be at most federation.clients (${cfg.federation.clients}), got ${cfg.federation.min_clients}`,
      });
    }
    const strategy = cfg.federation.strategy.name;
    if (strategyTraits(strategy).handoff && !modeTraits(cfg.federation.mode).handoff) {
      ctx.addIssue({
        code: 'custom',
        path: ['federation', 'strategy', 'name'],
        message: `${strategy} hands the client parts from one client to the next, which needs federation.mode: ${modesWith('handoff').join(' or ')} (got ${cfg.federation.mode})`,
      });
    }
    if (cfg.federation.update_encoding !== 'float32' && strategyTraits(strategy).handoff) {
      ctx.addIssue({
        code: 'custom',
        path: ['federation', 'update_encoding'],
        message: `${strategy} hands absolute parts and optimizer state from client to client; use update_encoding: float32 with it`,
      });
    }
    for (const p of strategyProblems(cfg.federation.strategy, cfg.federation))
      ctx.addIssue({ code: 'custom', path: ['federation', 'strategy', p.key], message: p.message });
    const quantized = quantizedBaseProblem(cfg.model.frozen_dtype, cfg.finetune.method);
    if (quantized) ctx.addIssue({ code: 'custom', path: ['model', 'frozen_dtype'], message: quantized });
    for (const p of privacyProblems(cfg)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
    for (const p of dpProblems(cfg)) ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
    if (cfg.data.silos && cfg.data.silos.length !== cfg.federation.clients) {
      ctx.addIssue({
        code: 'custom',
        path: ['data', 'silos'],
        message: `lists ${cfg.data.silos.length} silos but federation.clients is ${cfg.federation.clients}; give one silo per client`,
      });
    }
  });

export type ExperimentConfig = z.output<typeof experimentSchema>;
