import { generateKeyPairSync } from 'node:crypto';
import {
  newRoundKey,
  PayloadChannel,
  PayloadError,
  unwrapRoundKey,
  wrapRoundKey,
  type TensorHeader,
} from '../../src/security/payload.js';

const header: TensorHeader = {
  clientId: 'alice',
  keyId: 's1',
  round: 1,
  step: 3,
  name: 'h_A',
  dtype: 'float32',
  shape: [2, 4],
};
const plaintext = Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);

function pair() {
  const key = newRoundKey();
  return { client: new PayloadChannel(key, 'up'), server: new PayloadChannel(key, 'down') };
}

describe('payload encryption (real AES-256-GCM, RSA-OAEP)', () => {
  test('round trip, both directions', () => {
    const { client, server } = pair();
    expect(server.open(header, client.seal(header, plaintext))).toEqual(plaintext);
    expect(client.open(header, server.seal(header, plaintext))).toEqual(plaintext);
  });

  test('a flipped ciphertext bit is rejected', () => {
    const { client, server } = pair();
    const sealed = client.seal(header, plaintext);
    sealed.ciphertext[5] ^= 0x01;
    expect(() => server.open(header, sealed)).toThrow(PayloadError);
    expect(() => server.open(header, sealed)).toThrow(/authentication failed for tensor h_A/);
  });

  test('a replayed message is rejected and state is unchanged', () => {
    const { client, server } = pair();
    const first = client.seal(header, plaintext);
    server.open(header, first);
    expect(() => server.open(header, first)).toThrow(/replayed or reordered/);
    expect(server.open(header, client.seal(header, plaintext))).toEqual(plaintext);
  });

  test('swapped (reordered) messages are rejected', () => {
    const { client, server } = pair();
    const a = client.seal(header, plaintext);
    const b = client.seal({ ...header, step: 4 }, plaintext);
    server.open({ ...header, step: 4 }, b);
    expect(() => server.open(header, a)).toThrow(/replayed or reordered/);
  });

  test('changed AAD (another client id, step, shape or direction) is rejected', () => {
    for (const other of [
      { ...header, clientId: 'bob' },
      { ...header, step: 9 },
      { ...header, shape: [4, 2] },
      { ...header, round: 2 },
    ]) {
      const { client, server } = pair();
      expect(() => server.open(other, client.seal(header, plaintext))).toThrow(PayloadError);
    }
    const { client } = pair();
    const reflected = client.seal(header, plaintext);
    expect(() => client.open(header, reflected)).toThrow(PayloadError);
  });

  test('a message sealed with another key is rejected', () => {
    const a = pair();
    const b = pair();
    expect(() => b.server.open(header, a.client.seal(header, plaintext))).toThrow(PayloadError);
  });

  test('session keys unwrap only with the right payload key', () => {
    const alice = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const bob = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    const key = newRoundKey();
    const wrapped = wrapRoundKey(key, alice.publicKey);
    expect(unwrapRoundKey(wrapped, alice.privateKey)).toEqual(key);
    expect(() => unwrapRoundKey(wrapped, bob.privateKey)).toThrow(/not made for this client/);
  });
});
