import { clipAndApply, globalNorm, learningRate } from '../training/optimizer.js';
import type { Capture } from '../privacy/capture.js';
import type { ClientLink } from './client-link.js';
import type { Trainer } from './trainer.js';
import { averagePartGrads } from './part-grad-exchange.js';

/** The phases of a training step, in order, as the client times them (its Prometheus counters, its summary). */
export const STEP_PHASES = [
  'head_forward',
  'wait_trunk_forward',
  'tail_step',
  'wait_trunk_backward',
  'head_backward',
  'optimizer',
] as const;
export type StepPhases = Record<(typeof STEP_PHASES)[number], number>;
/** A `performance.now()` reading as epoch ms to 10 µs, comparable across the processes of one machine. */
const epochMs = (t: number) => Math.round((performance.timeOrigin + t) * 100) / 100;
export const zeroPhases = (): StepPhases => Object.fromEntries(STEP_PHASES.map((p) => [p, 0])) as unknown as StepPhases;

/**
 * The client's training steps: head forward, h_A up, h_B down, tail step, dL/dh_B up, dL/dh_A
 * down, head backward, the strategy's gradient hook, clipping (jointly with the trunk when the
 * server says so) and the optimizer step. Timed per phase.
 */
export class ClientSteps {
  /** Training steps this client took in this process (its schedule position without a hand-off). */
  localStep = 0;
  readonly losses: number[] = [];
  /** Seconds spent per phase of a training step, summed over every step so far (the client's Prometheus counters). */
  readonly phases = zeroPhases();
  /** The same from this process's second step on, for per-step means: the first compiles every program. */
  readonly steadyPhases = zeroPhases();

  constructor(
    private readonly o: {
      /** This client's id as the server knows it, from its connection's (capture files are keyed by it). */
      serverId: (connectionId: string) => string;
      capture?: Capture | null;
      /** privacy.hide_aggregate's federation secret (lockstep mode's masked part gradients). */
      secret?: () => Buffer | null;
      onStep?: (round: number, step: number, loss: number) => void;
      /** Each step's phases as [start, end] in epoch ms (the dashboard's timeline), keyed by the server's id of this client. */
      onTimeline?: (r: {
        client: string;
        round: number;
        step: number;
        spans: Record<string, [number, number]>;
      }) => void;
    },
  ) {}

  async step(t: Trainer, link: ClientLink, round: number, step: number): Promise<void> {
    const batch = t.stream.next();
    // Keyed as the server's capture is.
    this.o.capture?.tokens(this.o.serverId(link.clientId), round, step, batch.tokens, t.tokenizer.pad);
    let mark = performance.now();
    const timed = this.localStep > 0;
    const spans: Record<string, [number, number]> = {};
    const lap = (phase: keyof StepPhases) => {
      const now = performance.now(),
        s = (now - mark) / 1000;
      this.phases[phase] += s;
      if (timed) this.steadyPhases[phase] += s;
      spans[phase] = [epochMs(mark), epochMs(now)];
      mark = now;
    };
    const masks = await t.head.newDropoutMasks(batch.tokens.shape[0], batch.tokens.shape[1]);
    link.sendActivations(round, step, await t.head.forward(batch.tokens, true, masks), false);
    lap('head_forward');
    const hB = await link.trunkOut(round, step);
    lap('wait_trunk_forward');
    const out = await t.tail.step(hB, batch.labels);
    link.sendTailGrad(round, step, { dhB: out.inputGrad!, loss: out.loss, labelCount: batch.labelCount });
    lap('tail_step');
    const { dhA, trunkNorm } = await link.headGrad(round, step);
    lap('wait_trunk_backward');
    const h = await t.head.backward(batch.tokens, dhA, masks);
    lap('head_backward');
    const grads = new Map(out.grads);
    for (const [n, g] of h.grads) {
      const other = grads.get(n);
      if (other)
        for (let i = 0; i < g.length; i++) other[i] += g[i]; // tied embeddings: head and tail both use it
      else grads.set(n, g);
    }
    t.half?.correctGradient?.(grads, t.params);
    if (t.averagesPartGrads)
      await averagePartGrads({
        link,
        round,
        step,
        grads,
        labelCount: batch.labelCount,
        selfId: this.o.serverId(link.clientId),
        clients: t.cfg.federation.clients,
        masked: t.cfg.privacy.secure_aggregation.enabled,
        secret: this.o.secret?.() ?? null,
      });
    // One model, one norm: with joint clipping, clip by sqrt(|g_trunk|^2 + |g_client|^2) and tell
    // the server ours (batch mode: each side clips its own).
    const own = globalNorm(grads.values());
    if (trunkNorm !== null) await link.sendStepDone(round, step, own);
    // With a hand-off the client parts follow one schedule across the federation (the step travels
    // with the optimizer state), as the centralized model does over the same budget.
    const f = t.cfg.federation;
    const total = f.rounds * f.local_steps * (t.handoff ? f.clients : 1);
    const lr = learningRate(t.cfg.optimizer.lr, t.cfg.schedule, t.handoff ? t.optimizer.step : this.localStep, total);
    const norm = trunkNorm === null ? own : Math.hypot(own, trunkNorm);
    clipAndApply(t.optimizer, t.params, grads, norm, t.cfg.optimizer.grad_clip, lr);
    lap('optimizer');
    this.localStep++;
    this.losses.push(out.loss);
    this.o.onTimeline?.({ client: this.o.serverId(link.clientId), round, step, spans });
    this.o.onStep?.(round, step, out.loss);
  }
}
