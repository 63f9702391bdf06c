import { ropeOf, rotaryDim, type LayerType, type ModelConfig, type Rope } from './config.js';

/**
 * Rotary position embeddings: the inverse frequency of each rotated pair of dimensions and the factor
 * cos/sin are multiplied by, for each scaling transformers implements that flglm reads (config.ts's
 * RopeScaling). The arithmetic follows transformers' modeling_rope_utils step for step in float32
 * (`f` rounds where torch holds a float32 tensor), so the tables match its own to the last bit or two.
 */
const f = Math.fround;

/** base^(-2i/dim) for i < dim/2, as torch computes it in float32. */
function plainInverse(base: number, dim: number): number[] {
  return Array.from({ length: dim / 2 }, (_, i) => f(1 / f(Math.pow(base, f((2 * i) / dim)))));
}

/** Inverse frequencies [rotaryDim/2] and the cos/sin factor of a RoPE, for a sequence of `seqLen` positions. */
export function ropeFrequencies(rope: Rope, dim: number, seqLen: number): { inv: number[]; scale: number } {
  const s = rope.rope_scaling;
  const base = rope.rope_theta;
  if (!s) return { inv: plainInverse(base, dim), scale: 1 };
  switch (s.rope_type) {
    case 'linear':
      return { inv: plainInverse(base, dim).map((x) => f(x / s.factor)), scale: 1 };
    case 'llama3': {
      // Llama 3.1: long wavelengths divided by `factor`, short ones kept, a smooth blend between.
      const old = s.original_max_position_embeddings;
      const lowWave = old / s.low_freq_factor,
        highWave = old / s.high_freq_factor;
      const inv = plainInverse(base, dim).map((x) => {
        const wave = f(f(2 * Math.PI) / x);
        const scaled = wave > lowWave ? f(x / s.factor) : x;
        if (wave < highWave || wave > lowWave) return scaled;
        const smooth = f(f(f(old / wave) - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor));
        return f(f(f(f(1 - smooth) * scaled) / s.factor) + f(smooth * scaled));
      });
      return { inv, scale: 1 };
    }
    case 'yarn': {
      // YaRN: interpolate the low frequencies, extrapolate the high ones, ramp between (the correction
      // range comes from how many rotations a dimension makes over the original context).
      const old = s.original_max_position_embeddings;
      const correction = (rotations: number) =>
        (dim * Math.log(old / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
      let low = correction(s.beta_fast),
        high = correction(s.beta_slow);
      if (s.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
      low = Math.max(low, 0);
      high = Math.min(high, dim - 1);
      if (low === high) high += 0.001;
      const inv = Array.from({ length: dim / 2 }, (_, i) => {
        const pos = f(Math.pow(base, f((2 * i) / dim)));
        const extrapolation = f(1 / pos),
          interpolation = f(1 / f(s.factor * pos));
        const ramp = Math.min(1, Math.max(0, f(f(i - low) / f(high - low))));
        const keep = f(1 - ramp);
        return f(f(interpolation * f(1 - keep)) + f(extrapolation * keep));
      });
      return { inv, scale: s.attention_factor };
    }
    case 'longrope': {
      // Phi-3: per-dimension factors, the long ones once the sequence passes the original context.
      const factors = seqLen > s.original_max_position_embeddings ? s.long_factor : s.short_factor;
      const inv = Array.from({ length: dim / 2 }, (_, i) =>
        f(1 / f(f(factors[i]) * f(Math.pow(base, f((2 * i) / dim))))),
      );
      return { inv, scale: s.attention_factor };
    }
  }
}

/**
 * A position's rotary cos/sin into row `row` of [rows, rotaryDim/2] tables, for one kind of layer;
 * `seqLen` is the length of the sequence the position belongs to (see longrope).
 */
export function writeRotaryRow(
  c: ModelConfig,
  type: LayerType,
  position: number,
  seqLen: number,
  cos: Float32Array,
  sin: Float32Array,
  row: number,
): void {
  const { inv, scale } = ropeFrequencies(ropeOf(c, type), rotaryDim(c), seqLen);
  const half = inv.length,
    s = f(scale);
  for (let i = 0; i < half; i++) {
    const angle = f(inv[i] * position);
    cos[row * half + i] = f(f(Math.cos(angle)) * s);
    sin[row * half + i] = f(f(Math.sin(angle)) * s);
  }
}

/**
 * The sequence length past which a LongRoPE model switches to its long factors (undefined for other
 * RoPEs). transformers recomputes the whole KV cache the step a generation crosses it (Phi-3's
 * prepare_inputs_for_generation), so keys made with the short factors never meet queries made with
 * the long ones; generate.ts does the same.
 */
export function longRopeSwitch(c: ModelConfig): number | undefined {
  const s = c.rope_scaling ?? c.local_rope?.rope_scaling;
  return s?.rope_type === 'longrope' ? s.original_max_position_embeddings : undefined;
}
