import type { TensorData } from '../../runtime/tensor.js';
import { addWords } from '../../security/secagg/crypto.js';
import { batch, concatBatch, splitBatch } from './batch.js';
import { gatherWithDeadline } from './deadline.js';
import { collectUpdates, defineMode, type RoundClient, type TailGrad } from './mode.js';

type Gathered<T> = Awaited<ReturnType<typeof gatherWithDeadline<T>>>;

/** The ones that arrived, in order; the others are dropped from the round. */
function arrivedOf<C extends RoundClient, T>(
  drop: (s: RoundClient, e: Error) => void,
  clients: C[],
  rs: Gathered<T>,
): { s: C; value: T }[] {
  const out: { s: C; value: T }[] = [];
  rs.forEach((r, i) => (r.ok ? out.push({ s: clients[i], value: r.value }) : drop(clients[i], r.error)));
  return out;
}

/** The server's sum of the step's part gradients: float32 (summed in float64), or ring words mod 2^32. */
function sumOf(parts: TensorData[]): TensorData {
  const n = parts[0].data.length;
  if (parts[0].dtype === 'int32') {
    const acc = new Uint32Array(n);
    for (const p of parts) addWords(acc, new Uint32Array(p.data.buffer, p.data.byteOffset, n));
    return { dtype: 'int32', shape: [n], data: new Int32Array(acc.buffer) };
  }
  const acc = new Float64Array(n);
  for (const p of parts) for (let i = 0; i < n; i++) acc[i] += p.data[i] as number;
  return { dtype: 'float32', shape: [n], data: Float32Array.from(acc) };
}

/**
 * Lockstep: one model trained on the union batch. Every step, every client's h_A goes through one
 * trunk forward and backward (batch mode's concatenation, dL/dh_B weighted by labelled tokens), then
 * the clients exchange their client-part gradients through the server and each steps with the
 * mean, so all clients keep identical head and tail: the federation is centralized training with
 * the clients' batches concatenated (a test checks the losses step for step), with one joint
 * clipping norm across trunk and parts. With privacy.secure_aggregation the part gradients travel
 * masked under the federation secret (federation/part-grads.ts): the server adds words it cannot
 * read and never sees a client's gradient or the mean, only the mean's norm (joint clipping).
 * FedAvg of parts at round end then averages identical parts.
 */
export const lockstep = defineMode({
  options: {
    // batch mode's key, one schema.
    batch_deadline_ms: batch.options.batch_deadline_ms,
  },
  traits: { handoff: false, subServers: false, averagesPartGrads: true },
  replicaCount: () => 1,
  trunkStepsPerRound: (f) => f.local_steps,
  async train(ctx, f) {
    const trunk = ctx.trunk(0);
    const masked = ctx.secure !== undefined;
    const wait = <T>(ps: Promise<T>[]) => gatherWithDeadline(ps, f.client_timeout_ms, f.batch_deadline_ms);
    const drop = (s: RoundClient, e: Error) => ctx.drop(s, e);
    for (const s of ctx.participants) ctx.openRound(s);
    let active = [...ctx.participants];
    for (let step = 1; step <= f.local_steps && active.length > 0; step++) {
      const key = `lockstep:${ctx.round}:${step}`;
      const group = arrivedOf(drop, active, await wait(active.map((s) => ctx.link(s).activations(step))));
      if (group.length === 0) break;
      const sizes = group.map((x) => x.value.shape[0]);
      const hB = await trunk.forward(key, concatBatch(group.map((x) => x.value)));
      splitBatch(hB, sizes).forEach((part, i) => ctx.link(group[i].s).sendTrunkOut(step, part));
      const downs = await wait(group.map((x) => ctx.link(x.s).tailGrad(step)));
      const total = downs.reduce((a, d) => a + (d.ok ? d.value.labelCount : 0), 0);
      if (total === 0 || downs.some((d) => !d.ok)) {
        // A client missing from the trunk's gradient would leave the others' parts a different model.
        await trunk.drop(key);
        downs.forEach((d, i) => (d.ok ? undefined : ctx.drop(group[i].s, d.error)));
        if (total === 0) break;
        active = group.map((x) => x.s).filter((_, i) => downs[i].ok);
        continue;
      }
      const grads = downs.map((d) => (d as { ok: true; value: TailGrad }).value);
      const scales = grads.map((g) => g.labelCount / total);
      const scaled = grads.map((g, i) => ({
        ...g.tensor,
        data: Float32Array.from(g.tensor.data as Float32Array, (x) => x * scales[i]),
      }));
      const { dhA, gradNorm } = await trunk.backward(key, concatBatch(scaled));
      const back = splitBatch(
        dhA,
        sizes,
        scales.map((c) => (c > 0 ? 1 / c : 0)),
      );
      group.forEach((x, i) => ctx.link(x.s).sendHeadGrad(step, back[i], gradNorm));
      const parts = arrivedOf(
        drop,
        group.map((x) => x.s),
        await wait(group.map((x) => ctx.link(x.s).partGrad(step, masked))),
      );
      if (parts.length === 0) {
        await trunk.drop(key);
        break;
      }
      // Ids in name order: the contributors' pads, and the order the plain sum adds in.
      parts.sort((a, b) => (a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0));
      const sum = sumOf(parts.map((p) => p.value));
      const ids = parts.map((p) => p.s.id);
      for (const p of parts) ctx.link(p.s).sendPartGradSum(step, sum, total, ids);
      const norms = arrivedOf(
        drop,
        parts.map((p) => p.s),
        await wait(parts.map((p) => ctx.link(p.s).stepDone(step))),
      );
      if (norms.length === 0) {
        await trunk.drop(key);
        break;
      }
      // Every client computed the same mean, so the same norm: the trunk clips by the one global norm.
      await trunk.apply(key, Math.hypot(gradNorm, norms[0].value));
      const done = new Set(norms.map((n) => n.s.id));
      group.forEach((x, i) => {
        if (done.has(x.s.id)) ctx.recordStep(x.s, step, grads[i].loss, x.value.shape[0] * x.value.shape[1]);
      });
      active = norms.map((n) => n.s);
    }
    return collectUpdates(ctx, active);
  },
});
