import type { Params } from '../federation/strategies/strategy.js';
import { flattenWeighted, MASKED_TENSOR } from '../federation/secure-aggregation.js';
import type { Inbox } from '../protocol/inbox.js';
import type { ClientMessageOut, ServerMessage } from '../protocol/messages.js';
import { encodeTensor, type TensorContext } from '../protocol/tensors.js';
import { SecAggClient } from '../security/secagg/protocol.js';
import { UserError } from '../util/errors.js';

type Phase = 'begin' | 'roster' | 'deliver' | 'unmask';

/**
 * A client's round-end upload under secure aggregation (security/secagg/protocol.ts): keys, sealed
 * shares of its mask keys for the other clients, its masked parameters, then the shares that let the
 * server remove the masks of the sum — never anything that unmasks this client's parameters alone.
 * `dropped` turns the server's error message into the error the client's loop retries on.
 */
export async function secureUpload(o: {
  call: { write(m: ClientMessageOut): void };
  inbox: Inbox<ServerMessage>;
  round: number;
  /** This client's id as the server knows it (the roster's). */
  clientId: string;
  params: Params;
  ctx: TensorContext;
  timeoutMs: number;
  secret: Buffer | null;
  dropped: (message: string) => Error;
  /** Told after each part this client sent (observation; tests use it to fail a client mid-protocol). */
  sent?: (phase: 'keys' | 'shares' | 'masked' | 'reveal') => void;
}): Promise<void> {
  const { call, round } = o;
  const next = async <P extends Phase>(phase: P) => {
    const m = await o.inbox.next(['secagg', 'error'], o.timeoutMs);
    if (m.kind === 'error') throw o.dropped(m.error.message);
    const down = m.secagg;
    const body = down[phase];
    if (down.round !== round || down.phase !== phase || !body)
      throw new UserError(
        `secure aggregation: the server sent ${down.phase ?? 'nothing'} for round ${down.round}, expected ${phase} for round ${round}`,
      );
    return body as NonNullable<ServerMessage['secagg']>[P] & object;
  };
  const begin = await next('begin');
  if (begin.hide && !o.secret)
    throw new UserError(
      'the server asks for a hidden aggregate, but this client has no federation secret (its kit predates it, or runs --insecure)',
    );
  const weight = Number(begin.weight);
  const agg = new SecAggClient(o.clientId, round);
  call.write({ secagg: { round, keys: agg.keys() } });
  o.sent?.('keys');
  const roster = await next('roster');
  call.write({
    secagg: {
      round,
      shares: {
        shares: agg.shareKeys(
          roster.peers.map((p) => ({ id: p.id, cPk: p.cPk, sPk: p.sPk })),
          begin.threshold,
        ),
      },
    },
  });
  o.sent?.('shares');
  const deliver = await next('deliver');
  agg.receiveShares(
    deliver.shares.map((s) => ({ peer: s.peer, ciphertext: s.ciphertext })),
    deliver.holders,
  );
  const y = agg.mask(
    flattenWeighted(o.params, weight, begin.scaleBits),
    begin.hide ? { secret: o.secret!, weight } : undefined,
  );
  call.write({
    parameters: {
      round,
      numExamples: weight,
      tensors: [
        encodeTensor(
          MASKED_TENSOR,
          { dtype: 'int32', shape: [y.length], data: new Int32Array(y.buffer, y.byteOffset, y.length) },
          o.ctx,
        ),
      ],
    },
  });
  o.sent?.('masked');
  const unmask = await next('unmask');
  call.write({
    secagg: {
      round,
      reveal: {
        shares: agg
          .reveal(unmask.dropped, unmask.survivors)
          .map((s) => ({ of: s.of, maskKey: s.maskKey, share: s.share })),
      },
    },
  });
  o.sent?.('reveal');
}
