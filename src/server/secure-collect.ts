import type { ExperimentConfig } from '../config/schema.js';
import type { ClientPartSpec, ClientUpdate } from '../federation/strategies/strategy.js';
import { flatOrder, MASKED_TENSOR, unflattenMean } from '../federation/secure-aggregation.js';
import { decodeTensor, ProtocolError } from '../protocol/tensors.js';
import { SecAggServer } from '../security/secagg/protocol.js';
import type { Participant } from './participant.js';
import { meanWeight } from '../privacy/dp-updates.js';

/** A hidden aggregate (privacy.hide_aggregate): the ring sum the server relays, and its total weight. */
export { HIDDEN_SUM_TENSOR } from '../federation/secure-aggregation.js';
export type HiddenAggregate = NonNullable<ClientUpdate['hidden']>;

/**
 * Where secure aggregation's seconds go, per exchange (the round record's `round_end.secure_aggregation`;
 * their sum is its `secure_aggregation_s`). unmask_s: removing the masks and, unless hidden, the mean.
 */
export interface SecurePhaseSeconds {
  keys_s?: number;
  shares_s?: number;
  masked_s?: number;
  reveal_s?: number;
  unmask_s?: number;
}

/**
 * The server's half of secure aggregation for one round (security/secagg/protocol.ts has the
 * cryptography): four exchanges with the clients that finished their steps, each bounded by
 * client_timeout_ms; a client that fails or times out in any of them is dropped alone, and the round
 * completes while at least `threshold` clients stay to reveal their shares. Returns one update: the
 * weighted mean (FedAvg of one), or with a hidden aggregate the masked sum only clients can open.
 */
export async function secureCollect(
  ctx: { round: number; cfg: ExperimentConfig; drop(s: Participant, err: Error): void },
  survivors: Participant[],
  spec: ClientPartSpec,
  phases: SecurePhaseSeconds = {},
): Promise<ClientUpdate[]> {
  const cfg: ExperimentConfig = ctx.cfg;
  const { threshold: wantT, scale_bits: scaleBits } = cfg.privacy.secure_aggregation;
  const hide = cfg.privacy.hide_aggregate;
  const timeout = cfg.federation.client_timeout_ms;
  const order = flatOrder(spec);
  const length = order.reduce((a, [, n]) => a + n, 0);
  const threshold = wantT ?? Math.floor(survivors.length / 2) + 1;
  const round = ctx.round;
  if (survivors.length < threshold)
    throw new Error(
      `round ${round}: ${survivors.length} clients finished, secure aggregation needs ${threshold} to unmask`,
    );
  const agg = new SecAggServer(round, threshold, length);
  let live = [...survivors];
  let t0 = performance.now();
  const lap = (phase: keyof SecurePhaseSeconds) => {
    const t = performance.now();
    phases[phase] = (phases[phase] ?? 0) + (t - t0) / 1000;
    t0 = t;
  };
  /** One exchange with every live client; those that fail are dropped, the rest go on. */
  const exchange = async (send: (s: Participant) => void, receive: (s: Participant) => Promise<void>) => {
    const ok = await Promise.all(
      live.map(async (s) => {
        try {
          send(s);
          await receive(s);
          return s;
        } catch (e) {
          ctx.drop(s, e as Error);
          return null;
        }
      }),
    );
    live = ok.filter((s): s is Participant => s !== null);
  };
  const expect = async (s: Participant, phase: 'keys' | 'shares' | 'reveal') => {
    const m = await s.inbox.next(['secagg'], timeout);
    const up = m.secagg;
    if (up.round !== round || up.phase !== phase || !up[phase])
      throw new ProtocolError(
        `secure aggregation: expected ${phase} for round ${round}, got ${up.phase ?? 'nothing'} for round ${up.round}`,
      );
    return up;
  };
  const weights = new Map(survivors.map((s) => [s.id, meanWeight(cfg, s.examplesThisRound)]));
  await exchange(
    (s) => s.send({ secagg: { round, begin: { weight: weights.get(s.id)!, threshold, scaleBits, hide } } }),
    async (s) => {
      const { keys } = await expect(s, 'keys');
      agg.addKeys(s.id, keys!.cPk, keys!.sPk);
    },
  );
  lap('keys_s');
  const roster = agg.roster().map((p) => ({ id: p.id, cPk: p.cPk, sPk: p.sPk }));
  await exchange(
    (s) => s.send({ secagg: { round, roster: { peers: roster } } }),
    async (s) => {
      const { shares } = await expect(s, 'shares');
      agg.addShares(
        s.id,
        shares!.shares.map((x) => ({ peer: x.peer, ciphertext: x.ciphertext })),
      );
    },
  );
  lap('shares_s');
  const holders = [...agg.holders];
  live = live.filter((s) => agg.holders.has(s.id));
  await exchange(
    (s) =>
      s.send({
        secagg: {
          round,
          deliver: { shares: agg.sharesFor(s.id).map((x) => ({ peer: x.peer, ciphertext: x.ciphertext })), holders },
        },
      }),
    async (s) => {
      const m = await s.inbox.next(['parameters'], timeout);
      const p = m.parameters;
      if (p.round !== round || p.tensors.length !== 1 || p.tensors[0].name !== MASKED_TENSOR)
        throw new ProtocolError(`secure aggregation: expected one ${MASKED_TENSOR} tensor for round ${round}`);
      const words = decodeTensor(
        p.tensors[0],
        { name: MASKED_TENSOR, dtype: 'int32', shape: [length] },
        s.context(round, 0),
      ).data as Int32Array;
      agg.addInput(s.id, new Uint32Array(words.buffer, words.byteOffset, words.length));
    },
  );
  lap('masked_s');
  const { dropped, survivors: inputs } = agg.split();
  await exchange(
    (s) => s.send({ secagg: { round, unmask: { dropped, survivors: inputs } } }),
    async (s) => {
      const { reveal } = await expect(s, 'reveal');
      agg.addReveal(
        s.id,
        reveal!.shares.map((x) => ({ of: x.of, maskKey: x.maskKey, share: x.share })),
      );
    },
  );
  lap('reveal_s');
  const { sum, survivors: counted } = agg.unmask();
  const total = counted.reduce((a, id) => a + weights.get(id)!, 0);
  if (hide) {
    lap('unmask_s');
    return [{ clientId: 'secure-aggregate', numExamples: total, params: new Map(), hidden: { round, sum, total } }];
  }
  const params = unflattenMean(sum, spec, total, scaleBits);
  for (const v of params.values())
    if (!v.every(Number.isFinite)) throw new Error(`round ${round}: the secure aggregate is not finite`);
  lap('unmask_s');
  return [{ clientId: 'secure-aggregate', numExamples: total, params }];
}
