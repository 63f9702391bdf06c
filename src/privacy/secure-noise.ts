import { randomFillSync } from 'node:crypto';

/**
 * Gaussian noise for a differential-privacy mechanism, from the operating system's CSPRNG: a seeded
 * generator would let anyone who knows the seed (the server sends the plan's) subtract the noise.
 * Box–Muller in float64 on 53-bit uniforms; the last float32 rounding is left as it is (the
 * floating-point attacks of Mironov 2012 apply, as to Opacus).
 */
export class SecureGaussian {
  private readonly words = new Uint32Array(4096);
  private at = this.words.length;
  private spare: number | null = null;

  private uniform(): number {
    if (this.at + 2 > this.words.length) {
      randomFillSync(this.words);
      this.at = 0;
    }
    const hi = this.words[this.at++] >>> 5,
      lo = this.words[this.at++] >>> 6;
    // (0, 1]: never 0, so log() stays finite.
    return (hi * 67108864 + lo + 1) / 9007199254740992;
  }

  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform())),
      t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  /** x += N(0, std²) per element, in place. */
  addTo(x: Float32Array, std: number): void {
    if (std <= 0) return;
    for (let i = 0; i < x.length; i++) x[i] += std * this.normal();
  }
}
