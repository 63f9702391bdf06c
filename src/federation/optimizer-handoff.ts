import { slotTensorName, type Optimizer, type OptimizerConfig } from '../training/optimizer.js';

import type { ClientPartSpec, ClientUpdate } from './strategies/strategy.js';

/**
 * With `relay`, the client parts travel from client to client, and so does their optimizer state:
 * one model with one optimizer moving through the federation, as in centralized training, instead
 * of N optimizers each holding moments of its own silo only. The state travels as extra tensors of
 * the parameter set: `optimizer.<param>#<slot>` (AdamW: 2 slots, SGD: 1; the checkpoint's slot
 * names, `slotTensorName`) and `optimizer.step`.
 */
export const OPTIMIZER_PREFIX = 'optimizer.';
const STEP = `${OPTIMIZER_PREFIX}step`;

const slotCount = (o: OptimizerConfig) => (o.name === 'sgd' ? 1 : 2);
const slotName = (k: number, param: string) => `${OPTIMIZER_PREFIX}${slotTensorName(param, k)}`;

/** The parameter set a relay client sends: its parts plus their optimizer state. */
export function withOptimizerState(spec: ClientPartSpec, o: OptimizerConfig): ClientPartSpec {
  const out = new Map(spec);
  for (const [name, n] of spec) for (let k = 0; k < slotCount(o); k++) out.set(slotName(k, name), n);
  out.set(STEP, 1);
  return out;
}

/** The optimizer's state for `params`, as named tensors (zeros for slots not created yet). */
export function packOptimizerState(opt: Optimizer, params: Map<string, Float32Array>): [string, Float32Array][] {
  const { slots, step } = opt.state();
  const out: [string, Float32Array][] = [];
  for (const [name, p] of params)
    for (let k = 0; k < slotCount(opt.config); k++)
      out.push([slotName(k, name), slots[name]?.[k] ?? new Float32Array(p.length)]);
  out.push([STEP, Float32Array.of(step)]);
  return out;
}

/** Load relayed optimizer state (the `optimizer.*` entries of a received set) into `opt`. */
export function unpackOptimizerState(
  opt: Optimizer,
  received: Map<string, Float32Array>,
  params: Map<string, Float32Array>,
): void {
  const step = received.get(STEP);
  if (!step) return;
  const slots: Record<string, Float32Array[]> = {};
  for (const name of params.keys()) {
    const s = Array.from({ length: slotCount(opt.config) }, (_, k) => received.get(slotName(k, name)));
    if (s.every((x): x is Float32Array => x !== undefined)) slots[name] = s;
  }
  opt.load({ name: opt.config.name, step: step[0], slots });
}

/** Updates split into their parameters and their optimizer-state entries (client_optimizer: average). */
export function splitOptimizerState(updates: ClientUpdate[]): [ClientUpdate[], ClientUpdate[]] {
  const part = (u: ClientUpdate, state: boolean): ClientUpdate => ({
    ...u,
    params: new Map([...u.params].filter(([n]) => n.startsWith(OPTIMIZER_PREFIX) === state)),
  });
  return [updates.map((u) => part(u, false)), updates.map((u) => part(u, true))];
}
