import { randomBytes } from 'node:crypto';

/**
 * Shamir secret sharing over GF(2^8), byte by byte: a secret of any length becomes n shares, any t
 * of which give it back and fewer give nothing (each byte is the constant term of a random degree
 * t-1 polynomial; share x holds its values at x). Secure aggregation shares each client's mask keys
 * this way, so the round completes when up to n - t clients drop out.
 */

const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  // The AES field: x^8 + x^4 + x^3 + x + 1, generator 3.
  let v = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = v;
    LOG[v] = i;
    v ^= (v << 1) ^ (v & 0x80 ? 0x11b : 0);
    v &= 0xff;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}

const mul = (a: number, b: number) => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);
const div = (a: number, b: number) => (a === 0 ? 0 : EXP[LOG[a] + 255 - LOG[b]]);

export interface Share {
  /** 1..255: the point the polynomial was evaluated at. */
  x: number;
  y: Uint8Array;
}

/** Split `secret` into shares at the points `xs` (distinct, 1..255), any `threshold` of which recover it. */
export function splitSecret(secret: Uint8Array, xs: readonly number[], threshold: number): Share[] {
  if (threshold < 1 || threshold > xs.length) throw new Error(`Shamir: threshold ${threshold} must be 1..${xs.length}`);
  if (new Set(xs).size !== xs.length || xs.some((x) => !Number.isInteger(x) || x < 1 || x > 255))
    throw new Error('Shamir: share points must be distinct integers in 1..255');
  const coefficients = randomBytes(secret.length * (threshold - 1));
  return xs.map((x) => {
    const y = new Uint8Array(secret.length);
    for (let b = 0; b < secret.length; b++) {
      // Horner from the highest coefficient down to the secret byte.
      let acc = 0;
      for (let k = threshold - 2; k >= 0; k--) acc = mul(acc, x) ^ coefficients[b * (threshold - 1) + k];
      y[b] = mul(acc, x) ^ secret[b];
    }
    return { x, y };
  });
}

/** The secret from `threshold` or more shares (Lagrange interpolation at 0). */
export function combineShares(shares: readonly Share[]): Uint8Array {
  if (shares.length === 0) throw new Error('Shamir: no shares');
  const len = shares[0].y.length;
  if (shares.some((s) => s.y.length !== len)) throw new Error('Shamir: shares of different lengths');
  if (new Set(shares.map((s) => s.x)).size !== shares.length) throw new Error('Shamir: two shares at the same point');
  const out = new Uint8Array(len);
  shares.forEach((si, i) => {
    // l_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is xor in GF(2^8).
    let l = 1;
    shares.forEach((sj, j) => {
      if (j !== i) l = mul(l, div(sj.x, sj.x ^ si.x));
    });
    for (let b = 0; b < len; b++) out[b] ^= mul(si.y[b], l);
  });
  return out;
}
