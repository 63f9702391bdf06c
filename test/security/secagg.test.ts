import { createCipheriv, randomBytes } from 'node:crypto';
import { combineShares, splitSecret } from '../../src/security/secagg/shamir.js';
import { SecAggClient, SecAggServer, dequantise, quantise } from '../../src/security/secagg/protocol.js';
import { addMask } from '../../src/security/secagg/crypto.js';
import { openHidden } from '../../src/federation/secure-aggregation.js';

describe('Shamir over GF(2^8)', () => {
  test('any t of n shares give the secret back; t - 1 do not', () => {
    const secret = randomBytes(32);
    const shares = splitSecret(secret, [1, 2, 3, 4, 5], 3);
    for (const pick of [
      [0, 1, 2],
      [4, 2, 0],
      [1, 3, 4],
      [0, 1, 2, 3, 4],
    ])
      expect(Buffer.from(combineShares(pick.map((i) => shares[i])))).toEqual(secret);
    expect(Buffer.from(combineShares([shares[0], shares[3]]))).not.toEqual(secret);
    expect(() => splitSecret(secret, [1, 1, 2], 2)).toThrow(/distinct/);
  });
});

// Four clients, one of which drops after sending its shares: the server gets exactly the weighted
// sum of the other three, each masked input alone looks like noise, and with hide the server's
// result is noise too while the clients recover the same average.
function run(opts: { hide?: Uint8Array; dropAfterSharing?: string }) {
  const ids = ['alice', 'bob', 'carol', 'dave'];
  const L = 5000,
    scale = 16,
    round = 7;
  const params = new Map(
    ids.map((id, k) => [id, Float32Array.from({ length: L }, (_, i) => Math.sin(i * (k + 1)) * 0.5)]),
  );
  const weights = new Map(ids.map((id, k) => [id, 8 * (k + 1)]));
  const clients = new Map(ids.map((id) => [id, new SecAggClient(id, round)]));
  const server = new SecAggServer(round, 3, L);
  for (const [id, c] of clients) {
    const k = c.keys();
    server.addKeys(id, k.cPk, k.sPk);
  }
  for (const [id, c] of clients) server.addShares(id, c.shareKeys(server.roster(), 3));
  const holders = [...server.holders];
  const masked = new Map<string, Uint32Array>();
  for (const [id, c] of clients) {
    c.receiveShares(server.sharesFor(id), holders);
    if (id === opts.dropAfterSharing) continue;
    const y = c.mask(
      quantise(params.get(id)!, weights.get(id)!, scale),
      opts.hide ? { secret: opts.hide, weight: weights.get(id)! } : undefined,
    );
    masked.set(id, Uint32Array.from(y));
    server.addInput(id, y);
  }
  const { dropped, survivors } = server.split();
  for (const id of survivors) server.addReveal(id, clients.get(id)!.reveal(dropped, survivors));
  const { sum } = server.unmask();
  const total = survivors.reduce((a, id) => a + weights.get(id)!, 0);
  const expected = new Float32Array(L);
  for (const id of survivors)
    for (let i = 0; i < L; i++) expected[i] += (weights.get(id)! * params.get(id)![i]) / total;
  return { sum, total, expected, masked, params, dropped, survivors, clients, L, scale, round };
}

describe('secure aggregation', () => {
  test('a client dropping after sharing: the server unmasks exactly the weighted sum of the others', () => {
    const r = run({ dropAfterSharing: 'carol' });
    expect(r.dropped).toEqual(['carol']);
    expect(r.survivors).toEqual(['alice', 'bob', 'dave']);
    const avg = dequantise(r.sum, r.total, r.scale);
    let worst = 0;
    for (let i = 0; i < r.L; i++) worst = Math.max(worst, Math.abs(avg[i] - r.expected[i]));
    expect(worst).toBeLessThan(2 ** -16); // quantisation only
  });

  test('each masked input the server sees is indistinguishable from uniform noise', () => {
    const r = run({});
    for (const [id, y] of r.masked) {
      // Byte histogram of the masked words: chi-square against uniform, 255 degrees of freedom.
      const counts = new Array(256).fill(0);
      for (const b of new Uint8Array(y.buffer)) counts[b]++;
      const n = y.length * 4,
        e = n / 256;
      const chi2 = counts.reduce((a, c) => a + (c - e) ** 2 / e, 0);
      expect(chi2).toBeLessThan(340); // p ~ 0.0003 for a uniform source
      // ...and carries no trace of the update: correlation with the client's quantised parameters ~ 0.
      const q = quantise(r.params.get(id)!, 1, 16);
      const a = Array.from(y, (v) => v | 0),
        b = Array.from(q, (v) => v | 0);
      const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
      const [ma, mb] = [mean(a), mean(b)];
      let cov = 0,
        va = 0,
        vb = 0;
      for (let i = 0; i < a.length; i++) {
        cov += (a[i] - ma) * (b[i] - mb);
        va += (a[i] - ma) ** 2;
        vb += (b[i] - mb) ** 2;
      }
      expect(Math.abs(cov / Math.sqrt(va * vb))).toBeLessThan(0.06);
    }
  });

  test("hide_aggregate: the server's unmasked sum is noise; clients holding the federation secret recover the average", () => {
    const secret = randomBytes(32);
    const r = run({ hide: secret, dropAfterSharing: 'bob' });
    const serverView = dequantise(r.sum, r.total, r.scale);
    let far = 0;
    for (let i = 0; i < r.L; i++) if (Math.abs(serverView[i] - r.expected[i]) > 0.01) far++;
    expect(far / r.L).toBeGreaterThan(0.99);
    const unmasked = openHidden(r.sum, secret, r.round, r.total);
    const avg = dequantise(unmasked, r.total, r.scale);
    for (let i = 0; i < r.L; i++) expect(Math.abs(avg[i] - r.expected[i])).toBeLessThan(2 ** -16);
  });

  test('a client never reveals both mask keys of one client, nor its own mask key', () => {
    const r = run({});
    const alice = r.clients.get('alice')!;
    expect(() => alice.reveal(['bob'], ['bob', 'carol'])).toThrow(/both mask keys/);
    expect(() => alice.reveal(['alice'], ['bob'])).toThrow(/refusing to reveal its mask key/);
  });

  test('too many dropouts: the sum cannot be unmasked, and the server says why', () => {
    const clients = ['a', 'b', 'c'].map((id) => new SecAggClient(id, 1));
    const server = new SecAggServer(1, 3, 10);
    for (const c of clients) {
      const k = c.keys();
      server.addKeys(c.id, k.cPk, k.sPk);
    }
    for (const c of clients) server.addShares(c.id, c.shareKeys(server.roster(), 3));
    for (const c of clients) c.receiveShares(server.sharesFor(c.id), [...server.holders]);
    for (const c of clients.slice(0, 2)) server.addInput(c.id, c.mask(new Uint32Array(10)));
    const { dropped, survivors } = server.split();
    server.addReveal('a', clients[0].reveal(dropped, survivors));
    expect(() => server.unmask()).toThrow(/only 1 shares of .* the threshold is 3/);
  });
});

describe('masks', () => {
  // Masks are made a chunk of the keystream at a time: across chunk boundaries they must be the
  // AES-256-CTR keystream itself, and adding k times a mask must equal k times the whole mask.
  test('addMask adds k x the AES-256-CTR keystream, across chunk boundaries', () => {
    const seed = randomBytes(32),
      n = 3 * 65536 + 7;
    const reference = new Uint32Array(n);
    new Uint8Array(reference.buffer).set(
      createCipheriv('aes-256-ctr', seed, Buffer.alloc(16)).update(Buffer.alloc(4 * n)),
    );
    const mask = new Uint32Array(n);
    addMask(mask, seed, 1);
    expect(mask).toEqual(reference);
    const base = Uint32Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 0);
    const acc = Uint32Array.from(base);
    addMask(acc, seed, 5);
    const expected = Uint32Array.from(base, (x, i) => (x + Math.imul(reference[i], 5)) >>> 0);
    expect(acc).toEqual(expected);
    addMask(acc, seed, 1);
    addMask(acc, seed, -1);
    addMask(acc, seed, (2 ** 32 - 5) >>> 0);
    expect(acc).toEqual(base);
  });
});
