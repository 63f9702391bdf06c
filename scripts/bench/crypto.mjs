// RSA-OAEP wrap/unwrap and AES-256-GCM seal+open cost for 1, 4 and 16 MiB activations.
// Usage: npm run bench -- crypto
import { generateKeyPairSync } from 'node:crypto';
import { dist, stats, writeResult } from './common.mjs';

const { newRoundKey, PayloadChannel, wrapRoundKey, unwrapRoundKey } = await import(dist('security/payload.js'));
const keys = generateKeyPairSync('rsa', {
  modulusLength: 3072,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
const time = (fn, n) => {
  fn();
  fn();
  const xs = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    xs.push(performance.now() - t0);
  }
  return stats(xs);
};
const key = newRoundKey();
const wrapped = wrapRoundKey(key, keys.publicKey);
const rsa = {
  key_bits: 3072,
  wrap_ms: time(() => wrapRoundKey(key, keys.publicKey), 50),
  unwrap_ms: time(() => unwrapRoundKey(wrapped, keys.privateKey), 20),
};
const sizes = {};
for (const mib of [1, 4, 16]) {
  const data = new Uint8Array(mib * 2 ** 20).fill(7);
  const header = {
    clientId: 'alice',
    keyId: 's',
    round: 1,
    step: 1,
    name: 'h_A',
    dtype: 'float32',
    shape: [data.length / 4],
  };
  const up = new PayloadChannel(key, 'up'),
    down = new PayloadChannel(key, 'down');
  const seal = time(() => up.seal(header, data), 10);
  const roundTrip = time(() => down.open(header, up.seal(header, data)), 10);
  sizes[`${mib}MiB`] = { seal_ms: seal, seal_open_ms: roundTrip, gb_per_s: data.length / 1e9 / (seal.median / 1000) };
}
const result = { command: 'npm run bench -- crypto', rsa, aes_gcm: sizes };
console.log(JSON.stringify(result, null, 2));
writeResult('crypto', result);
