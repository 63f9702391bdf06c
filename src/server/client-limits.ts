import type { ExperimentConfig } from '../config/schema.js';
import type { ModelConfig } from '../model/config.js';
import type { ChunkLimits } from '../protocol/chunking.js';
import type { QueueLimits } from '../protocol/inbox.js';
import { byteLengthOf, messageBody } from '../protocol/chunking.js';
import type { WireTensor } from '../protocol/tensors.js';

import type { ClientPartSpec } from '../federation/strategies/strategy.js';
import { modeTraits } from './modes/lookup.js';

/**
 * Everything a client may make the server hold, derived from the plan. A client never has a
 * reason to send more than one step tensor ahead plus its parameter set, so anything beyond that
 * is refused as it arrives (docs/security.md states these limits).
 */
export interface ClientLimits {
  /** h_A or dL/dh_B: batch_size x seq_len x hidden_size float32. */
  stepTensorBytes: number;
  /** The whole client-part parameter set, float32. */
  parameterBytes: number;
  chunks: ChunkLimits;
  queue: QueueLimits;
  /** gRPC's per-message cap on the server: one chunk plus framing (names, shapes, counters). */
  maxMessageBytes: number;
}

/** Protobuf framing allowed on top of a chunk's tensor bytes. */
const FRAMING_BYTES = 1 << 20;

/** Tensor bytes a (whole or partial) message carries. */
export function tensorBytesOf(m: object): number {
  const body = messageBody(m) as { tensor?: WireTensor | null; tensors?: WireTensor[] } | undefined;
  if (!body) return 0;
  if (body.tensor) return byteLengthOf(body.tensor.data);
  return (body.tensors ?? []).reduce((a, t) => a + byteLengthOf(t.data), 0);
}

export function clientLimits(cfg: ExperimentConfig, model: ModelConfig, parts: ClientPartSpec): ClientLimits {
  const chunk = cfg.federation.chunk_bytes;
  const stepTensorBytes = cfg.data.batch_size * cfg.data.seq_len * model.hidden_size * 4;
  const parameterBytes = [...parts.values()].reduce((a, n) => a + 4 * n, 0);
  const pieces = (bytes: number, tensors: number) => Math.ceil(bytes / chunk) + tensors;
  const step = { maxBytes: stepTensorBytes, maxPieces: pieces(stepTensorBytes, 0) };
  const params = { maxBytes: parameterBytes, maxPieces: pieces(parameterBytes, parts.size) };
  const none = { maxBytes: 0, maxPieces: 1 };
  // Lockstep mode: one flattened part gradient per step, as int32 ring-word pairs when masked.
  const partGradBytes = modeTraits(cfg.federation.mode).averagesPartGrads
    ? parameterBytes * (cfg.privacy.secure_aggregation.enabled ? 2 : 1)
    : 0;
  const partGrad = { maxBytes: partGradBytes, maxPieces: pieces(partGradBytes, 0) };
  return {
    stepTensorBytes,
    parameterBytes,
    chunks: {
      budget: (kind) =>
        kind === 'activations' || kind === 'tailGrad'
          ? step
          : kind === 'parameters'
            ? params
            : kind === 'partGrad'
              ? partGrad
              : none,
    },
    // One step tensor waiting for its turn, one in flight, the round's parameters (and a part gradient).
    queue: { maxBytes: 2 * stepTensorBytes + parameterBytes + partGradBytes, maxMessages: 16, sizeOf: tensorBytesOf },
    maxMessageBytes: chunk + FRAMING_BYTES,
  };
}
