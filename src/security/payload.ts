import { createCipheriv, createDecipheriv, privateDecrypt, publicEncrypt, randomBytes, constants } from 'node:crypto';

/**
 * Payload encryption for every tensor message, independent of TLS (so activations stay sealed
 * through a TLS-terminating proxy, in logs or captures). Per client and round the server
 * makes a fresh AES-256 key and sends it wrapped with RSA-OAEP-SHA256 to the client's payload key.
 * Each message is AES-256-GCM with a 96-bit nonce = direction (4 bytes) || counter (8 bytes), and
 * AAD binding client, round key id, round, step, direction, tensor name, dtype and shape. Counters must
 * strictly increase per direction, so replayed, reordered or dropped-then-resent messages fail.
 */
export type Direction = 'up' | 'down';

export interface TensorHeader {
  clientId: string;
  keyId: string;
  round: number;
  step: number;
  name: string;
  dtype: string;
  shape: number[];
}

export interface SealedPayload {
  counter: bigint;
  ciphertext: Buffer;
  tag: Buffer;
}

export class PayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadError';
  }
}

export function wrapRoundKey(key: Buffer, clientPayloadPublicKeyPem: string): Buffer {
  return publicEncrypt(
    { key: clientPayloadPublicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
    key,
  );
}

export function unwrapRoundKey(wrapped: Uint8Array, payloadPrivateKeyPem: string): Buffer {
  try {
    return privateDecrypt(
      { key: payloadPrivateKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
      wrapped,
    );
  } catch {
    throw new PayloadError(
      "could not unwrap the round key: it was not made for this client's payload key (wrong kit?)",
    );
  }
}

export function newRoundKey(): Buffer {
  return randomBytes(32);
}

function nonce(direction: Direction, counter: bigint): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(direction === 'up' ? 0x75700000 : 0x646f0000, 0);
  n.writeBigUInt64BE(counter, 4);
  return n;
}

export function additionalData(h: TensorHeader, direction: Direction, counter: bigint): Buffer {
  return Buffer.from(
    JSON.stringify([h.clientId, h.keyId, h.round, h.step, direction, h.name, h.dtype, h.shape, counter.toString()]),
    'utf8',
  );
}

/**
 * One direction of one client's round: seals outgoing tensors with increasing counters and opens incoming
 * ones, refusing any counter that does not increase.
 */
export class PayloadChannel {
  private sendCounter = 0n;
  private lastReceived = -1n;

  constructor(
    private readonly key: Buffer,
    private readonly sendDirection: Direction,
  ) {
    if (key.length !== 32) throw new Error('AES-256 key must be 32 bytes');
  }

  private get receiveDirection(): Direction {
    return this.sendDirection === 'up' ? 'down' : 'up';
  }

  seal(header: TensorHeader, plaintext: Uint8Array): SealedPayload {
    const counter = ++this.sendCounter;
    const cipher = createCipheriv('aes-256-gcm', this.key, nonce(this.sendDirection, counter));
    cipher.setAAD(additionalData(header, this.sendDirection, counter));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { counter, ciphertext, tag: cipher.getAuthTag() };
  }

  /** Decrypt and authenticate; throws PayloadError without changing state when anything is off. */
  open(header: TensorHeader, sealed: SealedPayload): Buffer {
    if (sealed.counter <= this.lastReceived) {
      throw new PayloadError(
        `replayed or reordered message: counter ${sealed.counter} after ${this.lastReceived} (tensor ${header.name}, round ${header.round}, step ${header.step})`,
      );
    }
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, nonce(this.receiveDirection, sealed.counter));
      decipher.setAAD(additionalData(header, this.receiveDirection, sealed.counter));
      decipher.setAuthTag(sealed.tag);
      plain = Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
    } catch {
      throw new PayloadError(
        `message authentication failed for tensor ${header.name} (round ${header.round}, step ${header.step}): tampered, mislabelled or sealed with another key`,
      );
    }
    this.lastReceived = sealed.counter;
    return plain;
  }
}
