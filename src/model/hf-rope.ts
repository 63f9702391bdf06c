import { UserError } from '../util/errors.js';
import type { Rope, RopeScaling } from './config.js';
import type { ConfigKeys } from './hf-config-keys.js';

/**
 * RoPE in both config.json forms: transformers 5's `rope_parameters` ({rope_theta, rope_type, ...},
 * or for Gemma 3 one such dict per layer type) and the older top-level `rope_theta` + `rope_scaling`
 * (`rope_type` or `type`) + `rope_local_base_freq`. Every key of a rope dict is read or refused.
 */
type Dict = Record<string, unknown>;

const TYPE_KEYS: Record<string, readonly string[]> = {
  default: [],
  linear: ['factor'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
  yarn: [
    'factor',
    'original_max_position_embeddings',
    'attention_factor',
    'beta_fast',
    'beta_slow',
    'mscale',
    'mscale_all_dim',
    'truncate',
  ],
  longrope: ['short_factor', 'long_factor', 'factor', 'attention_factor', 'original_max_position_embeddings'],
};
const ANY_TYPE = ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'];
const WHY_NOT: Record<string, string> = {
  dynamic: 'dynamic NTK scaling changes the frequencies with the sequence length at inference only',
};

export interface RopeRead {
  rope_theta: number;
  rope_scaling?: RopeScaling;
  local_rope?: Rope;
  partial_rotary_factor?: number;
}

const isDict = (v: unknown): v is Dict => typeof v === 'object' && v !== null && !Array.isArray(v);

function dictOf(keys: ConfigKeys, key: string): Dict | null {
  const v = keys.get(key);
  if (v === null || v === undefined) return null;
  if (!isDict(v))
    throw new UserError(`config.json: "${key}" must be an object (got ${JSON.stringify(v).slice(0, 60)})`);
  return { ...v };
}

/** One rope dict -> Rope, checking every key. `where` names it in errors. */
function parseRope(
  where: string,
  d: Dict,
  o: {
    theta: number;
    maxPositions: number;
    rotaryDim: () => number;
    originalMax?: number;
    aliases?: Readonly<Record<string, string>>;
  },
): Rope {
  if (d.rope_type !== undefined && d.type !== undefined && d.rope_type !== d.type)
    throw new UserError(`config.json: ${where} has rope_type "${d.rope_type}" and type "${d.type}"; keep one`);
  const named = String(d.rope_type ?? d.type ?? 'default');
  const type = o.aliases?.[named] ?? named;
  const known = TYPE_KEYS[type];
  if (!known)
    throw new UserError(
      `config.json: ${where} rope type "${named}" is not supported (${WHY_NOT[type] ?? 'unknown'}; supported: ${Object.keys(TYPE_KEYS).join(', ')})`,
    );
  for (const k of Object.keys(d))
    if (!known.includes(k) && !ANY_TYPE.includes(k))
      throw new UserError(
        `config.json: ${where}.${k} is not a key flglm reads for rope type ${type}; refused rather than ignored`,
      );
  const num = (k: string, fallback?: number): number => {
    const v = d[k] ?? fallback;
    if (typeof v !== 'number') throw new UserError(`config.json: ${where}.${k} must be a number for rope type ${type}`);
    return v;
  };
  const rope_theta = d.rope_theta === undefined ? o.theta : num('rope_theta');
  const original = () => o.originalMax ?? num('original_max_position_embeddings', o.maxPositions);
  const scaling = ((): RopeScaling | undefined => {
    switch (type) {
      case 'default':
        return undefined;
      case 'linear':
        return { rope_type: 'linear', factor: num('factor') };
      case 'llama3':
        return {
          rope_type: 'llama3',
          factor: num('factor'),
          low_freq_factor: num('low_freq_factor'),
          high_freq_factor: num('high_freq_factor'),
          original_max_position_embeddings: original(),
        };
      case 'yarn': {
        const orig = original();
        const factor = d.factor == null ? o.maxPositions / orig : num('factor');
        const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
        const [m, mAll] = [d.mscale, d.mscale_all_dim] as (number | undefined)[];
        const attention =
          d.attention_factor != null
            ? num('attention_factor')
            : m && mAll
              ? mscale(factor, m) / mscale(factor, mAll)
              : mscale(factor);
        return {
          rope_type: 'yarn',
          factor,
          original_max_position_embeddings: orig,
          attention_factor: attention,
          beta_fast: (d.beta_fast as number) || 32,
          beta_slow: (d.beta_slow as number) || 1,
          truncate: d.truncate === undefined ? true : Boolean(d.truncate),
        };
      }
      case 'longrope': {
        const orig = original();
        const factors = (k: string) => {
          const v = d[k];
          if (!Array.isArray(v) || v.length !== o.rotaryDim() / 2 || !v.every((x) => typeof x === 'number'))
            throw new UserError(
              `config.json: ${where}.${k} must be ${o.rotaryDim() / 2} numbers (rotary dimension / 2)`,
            );
          return v as number[];
        };
        const factor = d.factor == null ? o.maxPositions / orig : num('factor');
        const attention =
          d.attention_factor != null
            ? num('attention_factor')
            : factor <= 1
              ? 1
              : Math.sqrt(1 + Math.log(factor) / Math.log(orig));
        return {
          rope_type: 'longrope',
          short_factor: factors('short_factor'),
          long_factor: factors('long_factor'),
          original_max_position_embeddings: orig,
          attention_factor: attention,
        };
      }
    }
  })();
  return { rope_theta, ...(scaling ? { rope_scaling: scaling } : {}) };
}

/** Both forms must say the same where a file has both (transformers reads rope_scaling then). */
function merged(where: string, a: Dict | null, b: Dict | null): Dict {
  if (!a || !b) return { ...(a ?? {}), ...(b ?? {}) };
  for (const k of Object.keys(a))
    if (k in b && JSON.stringify(a[k]) !== JSON.stringify(b[k]) && !(k === 'type' || k === 'rope_type'))
      throw new UserError(`config.json: rope_parameters.${k} and rope_scaling.${k} disagree; keep one of ${where}`);
  return { ...a, ...b };
}

export function readRope(
  keys: ConfigKeys,
  o: { maxPositions: number; headDim: number; aliases?: Readonly<Record<string, string>>; perLayerType: boolean },
): RopeRead {
  const params = dictOf(keys, 'rope_parameters');
  const scaling = dictOf(keys, 'rope_scaling');
  const topTheta = keys.has('rope_theta') ? keys.optionalNum('rope_theta') : undefined;
  const theta = topTheta ?? keys.num('rope_theta', 10000);
  // The rotated fraction of each head: the rope dict's, else the top-level key (Phi-3 reads both).
  const flat = o.perLayerType ? null : merged('the two', params, scaling);
  const partialTop = keys.reads('partial_rotary_factor') ? keys.optionalNum('partial_rotary_factor') : undefined;
  const partial =
    (typeof flat?.partial_rotary_factor === 'number' ? flat.partial_rotary_factor : undefined) ?? partialTop;
  if (partial !== undefined && partial !== 1 && !keys.reads('partial_rotary_factor'))
    throw new UserError(
      `config.json: partial_rotary_factor ${partial} is not supported for model_type ${keys.type} (it rotates whole heads)`,
    );
  const rotaryDim = () => Math.floor(o.headDim * (partial ?? 1));
  // Phi-3's top-level original_max_position_embeddings wins over the rope dict's, as in transformers.
  const originalMax = keys.reads('original_max_position_embeddings')
    ? keys.num('original_max_position_embeddings')
    : undefined;
  const opts = { maxPositions: o.maxPositions, rotaryDim, originalMax, aliases: o.aliases };
  const checkTheta = (where: string, d: Dict) => {
    if (topTheta !== undefined && typeof d.rope_theta === 'number' && d.rope_theta !== topTheta)
      throw new UserError(
        `config.json: rope_theta ${topTheta} and ${where}.rope_theta ${d.rope_theta} disagree; keep one`,
      );
  };
  if (o.perLayerType) {
    const nested = params ?? {};
    for (const k of Object.keys(nested))
      if (k !== 'full_attention' && k !== 'sliding_attention')
        throw new UserError(
          `config.json: rope_parameters.${k} is not a layer type (full_attention, sliding_attention)`,
        );
    const fullDict = merged('the two', isDict(nested.full_attention) ? nested.full_attention : null, scaling);
    checkTheta('rope_parameters.full_attention', fullDict);
    const full = parseRope('rope_parameters.full_attention', fullDict, { ...opts, theta });
    const localDict = isDict(nested.sliding_attention) ? nested.sliding_attention : {};
    const localTheta = keys.optionalNum('rope_local_base_freq') ?? keys.num('rope_local_base_freq', 10000);
    const local = parseRope('rope_parameters.sliding_attention', localDict, { ...opts, theta: localTheta });
    return { ...full, local_rope: local };
  }
  if (params && ('full_attention' in params || 'sliding_attention' in params))
    throw new UserError(`config.json: rope_parameters per layer type is not how model_type ${keys.type} gives RoPE`);
  checkTheta('rope_parameters', flat!);
  const rope = parseRope(scaling ? 'rope_scaling' : 'rope_parameters', flat!, { ...opts, theta });
  return { ...rope, ...(partial !== undefined && partial !== 1 ? { partial_rotary_factor: partial } : {}) };
}

/** The older form's keys for a Rope: rope_theta + rope_scaling (null without scaling). */
export function legacyRope(r: Rope): { rope_theta: number; rope_scaling: Dict | null } {
  return { rope_theta: r.rope_theta, rope_scaling: r.rope_scaling ? { ...r.rope_scaling } : null };
}

/** transformers 5's form of one Rope: {rope_theta, rope_type, ...}. */
export function ropeParameters(r: Rope, extra: Dict = {}): Dict {
  return r.rope_scaling
    ? { rope_theta: r.rope_theta, ...r.rope_scaling, ...extra }
    : { rope_theta: r.rope_theta, rope_type: 'default', ...extra };
}
