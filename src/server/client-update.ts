import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, type WeightSelection } from '../config/experiment.js';
import type { ModelConfig } from '../model/config.js';
import { baseParamShapes, isTrainable, peftParamShapes } from '../model/params.js';
import { partOwns } from '../model/partition.js';
import { decodeTensor, ProtocolError, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import type { ClientPartSpec, Params } from '../federation/strategies/strategy.js';
import { applyDelta, isDeltaEncoded } from '../federation/update-encoding.js';

/** The trainable head + tail tensors every client must send at round end, from the plan alone. */
export function clientPartSpec(cfg: ExperimentConfig, model: ModelConfig): ClientPartSpec {
  const peft = peftOf(cfg);
  const [head, tail] = [partOwns('head', model, cfg.split), partOwns('tail', model, cfg.split)];
  const shapes = [...baseParamShapes(model), ...peftParamShapes(model, peft)];
  return new Map(
    shapes
      .filter(([n]) => (head(n) || tail(n)) && isTrainable(n, peft.method))
      .map(([n, shape]) => [n, shape.reduce((a, b) => a * b, 1)]),
  );
}

/**
 * The weights the server holds: the trunk, and the client parts' trainable ones only where it must
 * know their starting values (float16-delta updates are changes from them). A client's frozen
 * head and tail weights (a LoRA run's embedding table) are never read on the server.
 */
export function serverWeights(cfg: ExperimentConfig): WeightSelection {
  return (model) => {
    const trunk = partOwns('trunk', model, cfg.split);
    const spec = isDeltaEncoded(cfg.federation.update_encoding) ? clientPartSpec(cfg, model) : new Map();
    return (name) => trunk(name) || spec.has(name);
  };
}

/**
 * A client's round-end parameters, checked against the spec before anything is aggregated: exactly
 * the expected names (none missing, none extra, none twice), float32, the expected sizes, finite,
 * each tensor's root mean square at most `maxRms` (transport.limits.max_value_rms).
 */
export function decodeClientParameters(
  tensors: WireTensor[],
  spec: ClientPartSpec,
  ctx: TensorContext,
  o: { deltaBase?: Params | null; maxRms?: number } = {},
): Map<string, Float32Array> {
  const deltaBase = o.deltaBase ?? null;
  const out = new Map<string, Float32Array>();
  for (const t of tensors) {
    const size = spec.get(t.name);
    if (size === undefined)
      throw new ProtocolError(
        `parameters: unknown tensor ${t.name} (not a trainable client-part parameter of this plan)`,
      );
    if (out.has(t.name)) throw new ProtocolError(`parameters: tensor ${t.name} sent twice`);
    // update_encoding float16-delta: parameters come as float16 changes from the round's base.
    const base = deltaBase?.get(t.name);
    const data = decodeTensor(
      t,
      { name: t.name, dtype: base ? 'float16' : 'float32', shape: [size], finite: true, maxRms: o.maxRms },
      ctx,
    ).data as Float32Array;
    out.set(t.name, base ? applyDelta(base, data, data) : data);
  }
  const missing = [...spec.keys()].filter((n) => !out.has(n));
  if (missing.length)
    throw new ProtocolError(
      `parameters: missing ${missing.length} of ${spec.size} client-part tensors (first: ${missing[0]})`,
    );
  return out;
}

/** The plan a joining client gets: the experiment as the server runs it, without the server's own paths. */
export function clientPlan(
  cfg: ExperimentConfig,
  mode: ExperimentConfig['federation']['mode'],
): Partial<ExperimentConfig> {
  return {
    ...cfg,
    data: { ...cfg.data, silos: null, test: null },
    security: { ...cfg.security, pki: null },
    federation: { ...cfg.federation, mode },
  };
}
