import { z } from 'zod';
import type { TensorData } from '../../runtime/tensor.js';
import { gatherWithDeadline } from './deadline.js';
import { collectUpdates, defineMode, type RoundClient } from './mode.js';

/** Concatenate [b_i, S, D] tensors along the batch axis. */
export function concatBatch(ts: TensorData[]): TensorData {
  const [, S, D] = ts[0].shape;
  const rows = ts.reduce((a, t) => a + t.shape[0], 0);
  const out = new Float32Array(rows * S * D);
  let off = 0;
  for (const t of ts) {
    out.set(t.data as Float32Array, off);
    off += t.data.length;
  }
  return { dtype: 'float32', shape: [rows, S, D], data: out };
}

export function splitBatch(t: TensorData, sizes: number[], scales?: number[]): TensorData[] {
  const [, S, D] = t.shape;
  let off = 0;
  return sizes.map((b, i) => {
    const part = (t.data as Float32Array).slice(off, off + b * S * D);
    off += b * S * D;
    if (scales && scales[i] !== 1) for (let k = 0; k < part.length; k++) part[k] *= scales[i];
    return { dtype: 'float32', shape: [b, S, D], data: part };
  });
}

/**
 * Client batching (FedSEA-LLaMA): for every step the server gathers the activations of up to
 * `batch_clients` clients (waiting at most `batch_deadline_ms` after the first arrives), runs one
 * trunk forward and one backward on the concatenation, and splits the results per client.
 *
 * Each client's tail returns the gradient of its own mean loss. The trunk should follow the mean
 * loss over all labelled tokens of the group, so client i's dL/dh_B is scaled by n_i / N before
 * the backward (n_i = its labelled tokens), and its dL/dh_A is scaled back by N / n_i, which is
 * exact because the backward is linear in dL/dh_B.
 */
export const batch = defineMode({
  options: {
    batch_clients: z.number().int().positive().default(4),
    batch_deadline_ms: z.number().int().positive().default(5000),
  },
  traits: { handoff: false, subServers: false },
  replicaCount: () => 1,
  trunkStepsPerRound: (f, participants) => f.local_steps * Math.max(1, Math.ceil(participants / f.batch_clients)),
  async train(ctx, f) {
    const { round } = ctx;
    const trunk = ctx.trunk(0);
    for (const s of ctx.participants) ctx.openRound(s);
    let active = [...ctx.participants];
    for (let step = 1; step <= f.local_steps && active.length > 0; step++) {
      const ups = await gatherWithDeadline(
        active.map((s) => ctx.link(s).activations(step)),
        f.client_timeout_ms,
        f.batch_deadline_ms,
      );
      const arrived: { s: RoundClient; hA: TensorData }[] = [];
      ups.forEach((r, i) => (r.ok ? arrived.push({ s: active[i], hA: r.value }) : ctx.drop(active[i], r.error)));
      const finished: RoundClient[] = [];
      for (let g = 0; g < arrived.length; g += f.batch_clients) {
        const group = arrived.slice(g, g + f.batch_clients);
        const key = `batch:${round}:${step}:${g}`;
        const sizes = group.map((x) => x.hA.shape[0]);
        const hB = await trunk.forward(key, concatBatch(group.map((x) => x.hA)));
        splitBatch(hB, sizes).forEach((part, i) => ctx.link(group[i].s).sendTrunkOut(step, part));
        const downs = await gatherWithDeadline(
          group.map((x) => ctx.link(x.s).tailGrad(step)),
          f.client_timeout_ms,
          f.batch_deadline_ms,
        );
        const counts = downs.map((d) => (d.ok ? Math.max(0, d.value.labelCount) : 0));
        const total = counts.reduce((a, b) => a + b, 0);
        if (total === 0) {
          await trunk.drop(key);
          downs.forEach((d, i) => {
            if (!d.ok) ctx.drop(group[i].s, d.error);
          });
          continue;
        }
        const scales = counts.map((n) => n / total);
        const grads = downs.map((d, i) =>
          d.ok
            ? d.value.tensor
            : { dtype: 'float32' as const, shape: group[i].hA.shape, data: new Float32Array(group[i].hA.data.length) },
        );
        const scaled = grads.map((t, i) => ({
          ...t,
          data: Float32Array.from(t.data as Float32Array, (x) => x * scales[i]),
        }));
        // A group step mixes several clients' parts, so there is no one model to clip jointly: the
        // trunk clips its own gradient, and each client its own (head_grad says so).
        let dhA: TensorData;
        try {
          const back = await trunk.backward(key, concatBatch(scaled));
          await trunk.apply(key, back.gradNorm);
          dhA = back.dhA;
        } catch (e) {
          // A trunk step that was refused (non-finite) or undone is the group's: none of it was applied.
          await trunk.drop(key).catch(() => {});
          group.forEach((x) => ctx.drop(x.s, e as Error));
          continue;
        }
        splitBatch(
          dhA,
          sizes,
          scales.map((c) => (c > 0 ? 1 / c : 0)),
        ).forEach((part, i) => {
          const d = downs[i];
          if (!d.ok) return ctx.drop(group[i].s, d.error);
          ctx.link(group[i].s).sendHeadGrad(step, part, null);
          ctx.recordStep(group[i].s, step, d.value.loss, part.shape[0] * part.shape[1]);
          finished.push(group[i].s);
        });
      }
      active = finished;
    }
    return collectUpdates(ctx, active);
  },
});
