import { randomUUID } from 'node:crypto';
import { encodeUpdate } from '../federation/update-encoding.js';
import type { Params } from '../federation/strategies/strategy.js';
import { encodeTensor } from '../protocol/tensors.js';
import { newRoundKey, PayloadChannel, wrapRoundKey } from '../security/payload.js';
import type { Participant } from './participant.js';
import { HIDDEN_SUM_TENSOR, type HiddenAggregate } from './secure-collect.js';

// The messages that open a round for a client and carry client parts to it, shared by training
// rounds, evaluation passes and the server's re-sync of (re)joining clients.

/** A fresh payload key for the round (RSA-OAEP wrapped for the client; empty without payload encryption). */
export function sendRoundKey(s: Participant, round: number): void {
  s.keyId = randomUUID();
  s.examplesThisRound = 0;
  if (s.payloadPublicKey) {
    const key = newRoundKey();
    s.channel = new PayloadChannel(key, 'down');
    s.send({ roundKey: { round, keyId: s.keyId, wrappedKey: wrapRoundKey(key, s.payloadPublicKey) } });
  } else {
    s.channel = null;
    s.send({ roundKey: { round, keyId: s.keyId, wrappedKey: Buffer.alloc(0) } });
  }
}

/** A hidden aggregate to a client (privacy.hide_aggregate): the masked ring sum and its total weight, to open with the federation secret. */
export function sendHidden(s: Participant, h: HiddenAggregate): void {
  const ctx = s.context(h.round, 0);
  const words = new Int32Array(h.sum.buffer, h.sum.byteOffset, h.sum.length);
  s.send({
    averaged: {
      round: h.round,
      numExamples: h.total,
      tensors: [encodeTensor(HIDDEN_SUM_TENSOR, { dtype: 'int32', shape: [words.length], data: words }, ctx)],
    },
  });
}

/**
 * Client-part parameters to a client (the round's global parts, or a hand-off); with `deltas`,
 * those parameters travel as float16 changes from the round's base (update-encoding.ts).
 */
export function sendParams(
  s: Participant,
  round: number,
  params: Params,
  deltas: Map<string, Uint16Array> | null = null,
): void {
  const ctx = s.context(round, 0);
  s.send({
    averaged: {
      round,
      tensors: encodeUpdate(params, deltas, ctx, (name, data) =>
        encodeTensor(name, { dtype: 'float32', shape: [data.length], data }, ctx),
      ),
    },
  });
}
