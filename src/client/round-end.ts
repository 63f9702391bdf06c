import { peftOf } from '../config/experiment.js';
import { partParamNames } from '../model/partition.js';
import type { Inbox } from '../protocol/inbox.js';
import type { ServerMessage } from '../protocol/messages.js';
import { saveCheckpoint } from '../training/checkpoint.js';
import { UserError } from '../util/errors.js';
import type { ClientParts } from './client-parts.js';
import { RetryableError, type ClientLink } from './client-link.js';
import { secureUpload } from './secure-upload.js';
import type { Trainer } from './trainer.js';
import type { Uplink } from './uplink.js';
import { privatizeClientUpdate } from '../privacy/dp-updates.js';

/**
 * A training round's end: the client half finishes its round, then the parts go up, in the clear
 * (with the half's entries and shared optimizer state) or through secure aggregation.
 */
export async function uploadRound(o: {
  t: Trainer;
  parts: ClientParts;
  link: ClientLink;
  call: Uplink;
  inbox: Inbox<ServerMessage>;
  round: number;
  /** This client's id as the server knows it, and its FedAvg weight as it claims it. */
  serverId: string;
  numExamples: number;
  secret: Buffer | null;
  onSecureAggregation?: (round: number, phase: 'keys' | 'shares' | 'masked' | 'reveal') => void;
}): Promise<void> {
  const { t, round } = o;
  const extra = t.half?.finishRound?.(t.params) ?? [];
  // DP-FedAvg: the round's update clipped (and with noise: client, noised) before anything leaves.
  const dp = t.cfg.privacy.dp.updates;
  if (dp.enabled) privatizeClientUpdate(t.cfg, o.parts.roundStart(), t.params, dp.clip_norm);
  const ctx = o.link.context(round, 0);
  if (!t.cfg.privacy.secure_aggregation.enabled) {
    o.call.write({ parameters: { round, numExamples: o.numExamples, tensors: o.parts.upload(ctx, extra) } });
    return;
  }
  // The config lets only strategies whose aggregate is a weighted mean use secure aggregation.
  if (extra.length) throw new UserError(`secure aggregation carries the parts only, not ${extra[0][0]}`);
  await secureUpload({
    call: o.call,
    inbox: o.inbox,
    round,
    clientId: o.serverId,
    params: t.params,
    ctx,
    timeoutMs: t.cfg.federation.client_timeout_ms,
    secret: o.secret,
    dropped: (msg) => new RetryableError(`dropped by the server: ${msg}`),
    sent: (phase) => o.onSecureAggregation?.(round, phase),
  });
}

/** The client's own parts after a round (frozen weights included; the trunk is the server's), atomically. */
export function saveClientParts(dir: string, t: Trainer, o: { step: number; round: number }): void {
  const { cfg } = t;
  const own = new Set([
    ...partParamNames('head', t.config, cfg.split, t.store),
    ...partParamNames('tail', t.config, cfg.split, t.store),
  ]);
  saveCheckpoint(
    dir,
    new Map([...t.store].filter(([n]) => own.has(n))),
    {
      model: t.config,
      peft: peftOf(cfg),
      step: o.step,
      round: o.round,
      data: t.stream.state(),
      base_model: cfg.model.hf_path ?? undefined,
    },
    t.optimizer.state(),
    undefined,
    cfg.model.hf_path,
  );
}
