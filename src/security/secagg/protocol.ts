import { randomBytes } from 'node:crypto';
import { addMask, addWords, agree, derive, open, seal, x25519Pair, type X25519Pair } from './crypto.js';
import { combineShares, splitSecret, type Share } from './shamir.js';

/**
 * Secure aggregation (Bonawitz et al., CCS 2017), the semi-honest version with dropouts, as pure
 * state machines: no transport here (server/secure-collect.ts and client/secure-upload.ts carry the
 * messages). Per round, each client i
 *   1. makes two X25519 pairs: c (encrypts the shares it sends through the server) and s (mask keys),
 *      and a self-mask seed b_i;
 *   2. Shamir-shares s_sk_i and b_i among the round's key holders (threshold t), one sealed share each;
 *   3. uploads y_i = x_i + PRG(b_i) + sum_{j>i} PRG(s_ij) - sum_{j<i} PRG(s_ij) over Z_2^32, where x_i
 *      is its quantised, weighted parameters and s_ij = X25519(s_sk_i, s_pk_j) = X25519(s_sk_j, s_pk_i):
 *      each y_i alone is uniformly random, the pairwise masks cancel in the sum;
 *   4. for every client that dropped after sharing, reveals its share of that client's s_sk (so the
 *      server can remove the masks that no longer cancel), and for every survivor its share of b
 *      (so the server can remove the self-masks) — never both for one client.
 * With `hide` (privacy.hide_aggregate) x_i also carries weight_i * PRG(K), K a secret only clients
 * hold: the server removes every mask it can and still sees only sum + (sum of weights) * PRG(K).
 */

export interface PeerKeys {
  id: string;
  cPk: Uint8Array;
  sPk: Uint8Array;
}
export interface SealedShare {
  peer: string;
  ciphertext: Uint8Array;
}
export interface RevealedShare {
  of: string;
  maskKey: boolean;
  share: Uint8Array;
}

const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const pairSeed = (secret: Uint8Array, round: number) => derive(secret, `pair mask round ${round}`);
const selfSeed = (b: Uint8Array, round: number) => derive(b, `self mask round ${round}`);
const shareAad = (round: number, from: string, to: string) => `flglm secagg share ${round} ${from} -> ${to}`;

/** acc += k * PRG(K, round), the mask only clients can remove (privacy.hide_aggregate), in place (k a weight, or 2^32 - total weight to remove it). */
export function addHideMask(acc: Uint32Array, federationSecret: Uint8Array, round: number, k: number): void {
  addMask(acc, hideSeed(federationSecret, round), k);
}
const hideSeed = (federationSecret: Uint8Array, round: number) => derive(federationSecret, `hide round ${round}`);

export class SecAggClient {
  private readonly c: X25519Pair = x25519Pair();
  private readonly s: X25519Pair = x25519Pair();
  private readonly b = randomBytes(32);
  private roster: PeerKeys[] = [];
  /** Shares others sent this client: [s_sk share, b share] by sender. */
  private readonly held = new Map<string, { sk: Share; b: Share }>();
  private holders: string[] = [];

  constructor(
    readonly id: string,
    readonly round: number,
  ) {}

  keys(): { cPk: Uint8Array; sPk: Uint8Array } {
    return { cPk: this.c.publicKey, sPk: this.s.publicKey };
  }

  /** Step 2: the roster of key holders (this client among them) -> one sealed share for each other holder. */
  shareKeys(roster: PeerKeys[], threshold: number): SealedShare[] {
    const ids = roster.map((p) => p.id);
    if (new Set(ids).size !== ids.length || !ids.includes(this.id))
      throw new Error('secure aggregation: the roster must list each key holder once, this client included');
    if (roster.length > 255) throw new Error('secure aggregation supports at most 255 clients per round');
    this.roster = [...roster].sort((a, b) => order(a.id, b.id));
    const xs = this.roster.map((_, k) => k + 1);
    const skShares = splitSecret(this.s.privateKey, xs, threshold),
      bShares = splitSecret(this.b, xs, threshold);
    const out: SealedShare[] = [];
    this.roster.forEach((peer, k) => {
      const payload = Buffer.concat([Buffer.from([xs[k]]), skShares[k].y, bShares[k].y]);
      if (peer.id === this.id) {
        this.keep(this.id, payload);
        return;
      }
      out.push({
        peer: peer.id,
        ciphertext: seal(
          derive(agree(this.c.privateKey, peer.cPk), 'share key'),
          payload,
          shareAad(this.round, this.id, peer.id),
        ),
      });
    });
    return out;
  }

  private keep(from: string, payload: Uint8Array): void {
    if (payload.length !== 65)
      throw new Error(`secure aggregation: a share from ${from} has ${payload.length} bytes, expected 65`);
    this.held.set(from, {
      sk: { x: payload[0], y: payload.subarray(1, 33) },
      b: { x: payload[0], y: payload.subarray(33, 65) },
    });
  }

  /** Step 3a: shares addressed to this client, and who holds shares (the clients whose masks this client's input carries). */
  receiveShares(shares: SealedShare[], holders: string[]): void {
    for (const sh of shares) {
      const from = this.roster.find((p) => p.id === sh.peer);
      if (!from) throw new Error(`secure aggregation: a share from ${sh.peer}, who is not in the roster`);
      this.keep(
        sh.peer,
        open(
          derive(agree(this.c.privateKey, from.cPk), 'share key'),
          sh.ciphertext,
          shareAad(this.round, sh.peer, this.id),
        ),
      );
    }
    if (!holders.includes(this.id) || holders.some((h) => !this.roster.some((p) => p.id === h)))
      throw new Error('secure aggregation: the share holders must be roster members, this client included');
    this.holders = [...holders].sort(order);
  }

  /** Step 3b: this client's masked input (x is consumed: masks are added in place). */
  mask(x: Uint32Array, hidden?: { secret: Uint8Array; weight: number }): Uint32Array {
    addMask(x, selfSeed(this.b, this.round), 1);
    for (const id of this.holders) {
      if (id === this.id) continue;
      const peer = this.roster.find((p) => p.id === id)!;
      addMask(x, pairSeed(agree(this.s.privateKey, peer.sPk), this.round), order(this.id, id) < 0 ? 1 : -1);
    }
    if (hidden) addHideMask(x, hidden.secret, this.round, hidden.weight);
    return x;
  }

  /** Step 4: the shares that unmask the sum (mask keys of the dropped, self-mask seeds of the survivors). */
  reveal(dropped: string[], survivors: string[]): RevealedShare[] {
    if (dropped.some((d) => survivors.includes(d)))
      throw new Error(
        'secure aggregation: the server asked for both mask keys of one client (it would unmask that client alone); refusing',
      );
    if (dropped.includes(this.id))
      throw new Error('secure aggregation: the server calls this client dropped; refusing to reveal its mask key');
    const out: RevealedShare[] = [];
    for (const id of dropped) {
      const h = this.held.get(id);
      if (h) out.push({ of: id, maskKey: true, share: Buffer.from([h.sk.x, ...h.sk.y]) });
    }
    for (const id of survivors) {
      const h = this.held.get(id);
      if (h) out.push({ of: id, maskKey: false, share: Buffer.from([h.b.x, ...h.b.y]) });
    }
    return out;
  }
}

/**
 * The server's side of one round: the roster, the routing of sealed shares, and the unmasking of the
 * sum once the survivors have revealed their shares.
 */
export class SecAggServer {
  readonly keys = new Map<string, PeerKeys>();
  /** Share senders (U2) and the sealed shares addressed to each client. */
  readonly holders = new Set<string>();
  private readonly inbox = new Map<string, SealedShare[]>();
  /** Masked inputs (U3) and what was revealed for unmasking. */
  private readonly inputs = new Map<string, Uint32Array>();
  private readonly revealed = new Map<string, { maskKey: Share[]; self: Share[] }>();

  constructor(
    readonly round: number,
    readonly threshold: number,
    readonly length: number,
  ) {}

  addKeys(id: string, cPk: Uint8Array, sPk: Uint8Array): void {
    if (cPk.length !== 32 || sPk.length !== 32)
      throw new Error(`secure aggregation: ${id} sent keys that are not 32-byte X25519 keys`);
    this.keys.set(id, { id, cPk, sPk });
  }

  roster(): PeerKeys[] {
    return [...this.keys.values()].sort((a, b) => order(a.id, b.id));
  }

  addShares(from: string, shares: SealedShare[]): void {
    const others = this.roster()
      .filter((p) => p.id !== from)
      .map((p) => p.id)
      .sort(order);
    const to = shares.map((s) => s.peer).sort(order);
    if (to.join() !== others.join())
      throw new Error(`secure aggregation: ${from} must send one share to each other key holder`);
    if (shares.some((s) => s.ciphertext.length > 256))
      throw new Error(`secure aggregation: a share from ${from} is too large`);
    this.holders.add(from);
    for (const s of shares)
      this.inbox.set(s.peer, [...(this.inbox.get(s.peer) ?? []), { peer: from, ciphertext: s.ciphertext }]);
  }

  /** The shares for `id` from the holders (U2) only. */
  sharesFor(id: string): SealedShare[] {
    return (this.inbox.get(id) ?? []).filter((s) => this.holders.has(s.peer));
  }

  addInput(id: string, y: Uint32Array): void {
    if (!this.holders.has(id)) throw new Error(`secure aggregation: a masked input from ${id}, who sent no shares`);
    if (y.length !== this.length)
      throw new Error(`secure aggregation: ${id}'s masked input has ${y.length} words, expected ${this.length}`);
    this.inputs.set(id, y);
  }

  /** Who dropped after sharing (U2 \ U3) and who stayed (U3). */
  split(): { dropped: string[]; survivors: string[] } {
    const survivors = [...this.inputs.keys()].sort(order);
    return { dropped: [...this.holders].filter((h) => !this.inputs.has(h)).sort(order), survivors };
  }

  addReveal(from: string, shares: RevealedShare[]): void {
    const { dropped, survivors } = this.split();
    for (const s of shares) {
      if (s.share.length !== 33)
        throw new Error(`secure aggregation: a revealed share from ${from} has ${s.share.length} bytes, expected 33`);
      const wanted = s.maskKey ? dropped.includes(s.of) : survivors.includes(s.of);
      if (!wanted) throw new Error(`secure aggregation: ${from} revealed a share of ${s.of} that was not asked for`);
      const r = this.revealed.get(s.of) ?? { maskKey: [], self: [] };
      (s.maskKey ? r.maskKey : r.self).push({ x: s.share[0], y: s.share.subarray(1) });
      this.revealed.set(s.of, r);
    }
  }

  /** The sum of the survivors' inputs (their masks removed), or an error naming who is short of shares. */
  unmask(): { sum: Uint32Array; survivors: string[] } {
    const { dropped, survivors } = this.split();
    const need = (id: string, shares: Share[] | undefined, what: string) => {
      const got = [...new Map((shares ?? []).map((s) => [s.x, s])).values()];
      if (got.length < this.threshold)
        throw new Error(
          `secure aggregation: only ${got.length} shares of ${id}'s ${what}, the threshold is ${this.threshold} (too many clients dropped this round)`,
        );
      return combineShares(got.slice(0, this.threshold));
    };
    const sum = new Uint32Array(this.length);
    for (const id of survivors) addWords(sum, this.inputs.get(id)!);
    for (const id of survivors)
      addMask(sum, selfSeed(need(id, this.revealed.get(id)?.self, 'self-mask seed'), this.round), -1);
    for (const j of dropped) {
      const sk = need(j, this.revealed.get(j)?.maskKey, 'mask key');
      for (const i of survivors) {
        // i added +PRG(s_ij) when i < j, -PRG(s_ij) when i > j; j's cancelling term never came.
        addMask(sum, pairSeed(agree(sk, this.keys.get(i)!.sPk), this.round), order(i, j) < 0 ? -1 : 1);
      }
    }
    return { sum, survivors };
  }
}

/** Parameters as ring elements: round(weight * x * 2^scaleBits) in two's complement. */
export function quantise(
  x: Float32Array,
  weight: number,
  scaleBits: number,
  into = new Uint32Array(x.length),
  at = 0,
): Uint32Array {
  const k = weight * 2 ** scaleBits;
  const limit = 2 ** 31;
  for (let i = 0; i < x.length; i++) {
    const v = Math.round(x[i] * k);
    if (!(Math.abs(v) < limit))
      throw new Error(
        `secure aggregation: a parameter (${x[i]}) times the weight ${weight} does not fit the ring at scale 2^${scaleBits}. Fix: lower privacy.secure_aggregation.scale_bits`,
      );
    into[at + i] = v >>> 0;
  }
  return into;
}

/** The average from a ring sum: signed value / (total weight * 2^scaleBits). */
export function dequantise(
  sum: Uint32Array,
  totalWeight: number,
  scaleBits: number,
  from = 0,
  length = sum.length - from,
): Float32Array {
  const k = 1 / (totalWeight * 2 ** scaleBits);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = (sum[from + i] | 0) * k;
  return out;
}
