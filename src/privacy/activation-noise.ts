import type { TensorData } from '../runtime/tensor.js';
import { Rng } from '../util/rng.js';

/**
 * `privacy.activation_noise` (FedSEA-LLaMA's defence): Gaussian noise N(0, sigma^2) added on the
 * client to every h_A before it leaves (training and evaluation), and with `gradients: true` to
 * dL/dh_B too (the only other tensor that carries the client's labels' signal to the server). The
 * head is trained as if the noise were not there (its gradient arrives at the noisy h_A). Seeded
 * per client, so runs repeat. With `relative`, sigma is a multiple of each tensor's RMS: measured
 * (docs/privacy.md), training answers a fixed sigma by growing h_A (2.5x at sigma = 0.2 |h_A|), which
 * a noise that scales with it cannot be outgrown by.
 */
export class ActivationNoise {
  private readonly rng: Rng;

  constructor(
    readonly sigma: number,
    readonly gradients: boolean,
    seed: number,
    clientId: string,
    readonly relative = false,
  ) {
    let h = seed >>> 0;
    for (const c of clientId) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
    this.rng = new Rng(h);
  }

  /** A noisy copy of `t` (the original stays clean for the client's own backward pass); `t` itself when sigma is 0. */
  apply(t: TensorData): TensorData {
    if (this.sigma <= 0) return t;
    const src = t.data as Float32Array;
    let scale = this.sigma;
    if (this.relative) {
      let sq = 0;
      for (const x of src) sq += x * x;
      scale *= Math.sqrt(sq / Math.max(1, src.length));
    }
    const data = new Float32Array(src.length);
    for (let i = 0; i < data.length; i++) data[i] = src[i] + scale * this.rng.normal();
    return { ...t, data };
  }
}
