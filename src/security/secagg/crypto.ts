import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
} from 'node:crypto';

/**
 * The primitives of secure aggregation, all from node:crypto: X25519 key agreement, HKDF-SHA256,
 * AES-256-GCM for the shares clients send each other through the server, and AES-256-CTR as the
 * pseudo-random generator that expands a 32-byte seed into a mask of any length over Z_2^32.
 */

export interface X25519Pair {
  publicKey: Buffer;
  privateKey: Buffer;
}

// X25519 keys as their 32 raw bytes inside the fixed DER wrappers (RFC 8410): PKCS#8 and SPKI.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/** A fresh X25519 key pair, both halves as their 32 raw bytes. */
export function x25519Pair(): X25519Pair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return {
    publicKey: (publicKey.export({ format: 'der', type: 'spki' }) as Buffer).subarray(SPKI_PREFIX.length),
    privateKey: (privateKey.export({ format: 'der', type: 'pkcs8' }) as Buffer).subarray(PKCS8_PREFIX.length),
  };
}

/** The X25519 shared secret of a private key (raw) and a peer's public key (raw), both 32 bytes. */
export function agree(privateKey: Uint8Array, peerPublic: Uint8Array): Buffer {
  if (privateKey.length !== 32 || peerPublic.length !== 32) throw new Error('X25519 keys are 32 bytes');
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, privateKey]), format: 'der', type: 'pkcs8' });
  const pub = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, peerPublic]), format: 'der', type: 'spki' });
  return diffieHellman({ privateKey: priv, publicKey: pub });
}

/** 32 bytes derived from key material for one purpose (`info` binds the purpose, round and parties). */
export function derive(material: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, Buffer.alloc(0), Buffer.from(`flglm secagg ${info}`, 'utf8'), 32));
}

/** AES-256-GCM with a random nonce: nonce (12) || ciphertext || tag (16). */
export function seal(key: Uint8Array, plaintext: Uint8Array, aad: string): Buffer {
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  c.setAAD(Buffer.from(aad, 'utf8'));
  return Buffer.concat([nonce, c.update(plaintext), c.final(), c.getAuthTag()]);
}

export function open(key: Uint8Array, sealed: Uint8Array, aad: string): Buffer {
  if (sealed.length < 28) throw new Error('sealed share is too short');
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  d.setAAD(Buffer.from(aad, 'utf8'));
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(12, sealed.length - 16)), d.final()]);
}

// The keystream is made and added a chunk at a time: one 11 MB mask (the `small` preset's client
// parts) as a whole buffer, copied into words and added took 100-270 ms; in 256 KiB chunks into a
// reused buffer 7-20 ms (2 cores, Node 20; the per-exchange seconds are in each round record).
const CHUNK_WORDS = 1 << 16;
const ZEROS = Buffer.alloc(4 * CHUNK_WORDS);
const KEYSTREAM = new Uint32Array(CHUNK_WORDS);
const KEYSTREAM_BYTES = new Uint8Array(KEYSTREAM.buffer);

/** acc += k * PRG(seed) (mod 2^32), in place, without materialising the mask (k an integer: 1, -1, a weight). PRG: the AES-256-CTR keystream over zeros. */
export function addMask(acc: Uint32Array, seed: Uint8Array, k: number): void {
  const c = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  const ks = KEYSTREAM;
  for (let at = 0; at < acc.length; at += CHUNK_WORDS) {
    const m = Math.min(CHUNK_WORDS, acc.length - at);
    KEYSTREAM_BYTES.set(c.update(ZEROS.subarray(0, 4 * m)));
    if (k === 1) for (let i = 0; i < m; i++) acc[at + i] = (acc[at + i] + ks[i]) >>> 0;
    else if (k === -1) for (let i = 0; i < m; i++) acc[at + i] = (acc[at + i] - ks[i]) >>> 0;
    else for (let i = 0; i < m; i++) acc[at + i] = (acc[at + i] + Math.imul(ks[i], k)) >>> 0;
  }
}

/** acc += sign * words (mod 2^32), in place. */
export function addWords(acc: Uint32Array, words: Uint32Array, sign: 1 | -1 = 1): void {
  if (sign === 1) for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] + words[i]) >>> 0;
  else for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] - words[i]) >>> 0;
}
