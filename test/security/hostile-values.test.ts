import { resolveData, resolveModel } from '../../src/config/experiment.js';
import { clientPartSpec } from '../../src/server/client-update.js';
import { config } from '../helpers/federation.js';
import { hostileFederation, RawClient, wireTensor } from '../helpers/hostile.js';

// Issue 28, item 3: finite is not enough. Three attackers send 1e30 (finite in float32): one in
// h_A, one in dL/dh_B, one in its round-end parameters, in every server mode. Each is dropped before
// its values touch the trunk or the average, so the honest client's losses equal those of the same
// run without the attackers' values: the first two leave at the round start, the third plays its
// steps and uploads nothing.
const HUGE = 1e30;
const SHAPE = [2, 16, 32]; // batch_size x seq_len x hidden_size of the tiny preset
const MODES: Record<string, string> = {
  sequential: 'mode: sequential',
  batch: 'mode: batch, batch_clients: 4, batch_deadline_ms: 3000',
  hierarchical: 'mode: hierarchical, sub_servers: 2',
  interleaved: 'mode: interleaved',
};
const yaml = (mode: string) => `
seed: 1
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 20}
schedule: {warmup_steps: 0, decay: constant}
eval: {max_batches: 1}
security: {tls: false, payload_encryption: false}
federation: {${MODES[mode]}, clients: 4, min_clients: 1, rounds: 2, local_steps: 2, client_timeout_ms: 20000}
`;
const base = config(yaml('sequential'));
const data = resolveData(base);
const spec = clientPartSpec(base, resolveModel(base).config);
const REFUSED = /root mean square 1\.00e\+30 is over the limit 10000 \(transport\.limits\.max_value_rms\)/;
const h = (name: string, fill: number) => wireTensor(name, SHAPE, fill);

/** The honest client's losses beside the three attackers, attacking or not. */
async function honestLosses(mode: string, attacking: boolean): Promise<number[]> {
  const f = await hostileFederation(config(yaml(mode)), { data });
  const [inA, inGrad, inParams] = ['aaa', 'aab', 'aac'].map((name) => new RawClient(f.target, name));
  try {
    for (const a of [inA, inGrad, inParams]) await a.join();
    const good = f.honest('honest', 0);
    const attack = async (a: RawClient, play: (round: number) => Promise<void>) => {
      const round = await a.roundStart();
      if (!attacking) {
        if (a === inParams) await a.playSteps(round, 2, SHAPE);
        return a.close();
      }
      await play(round);
      expect(await a.dropReason()).toMatch(REFUSED);
      a.close();
    };
    await Promise.all([
      attack(inA, async (round) => inA.send({ activations: { round, step: 1, tensor: h('h_A', HUGE), eval: false } })),
      attack(inGrad, async (round) => {
        inGrad.send({ activations: { round, step: 1, tensor: h('h_A', 0.01), eval: false } });
        await inGrad.inbox.next(['trunkOut'], 20000);
        inGrad.send({ tailGrad: { round, step: 1, tensor: h('grad_h_B', HUGE), loss: 1, labelCount: 1 } });
      }),
      attack(inParams, async (round) => {
        await inParams.playSteps(round, 2, SHAPE);
        const tensors = [...spec].map(([name, n]) => wireTensor(name, [n], HUGE));
        inParams.send({ parameters: { round, numExamples: 10, tensors, partIndex: 0, partCount: 1 } });
      }),
    ]);
    const losses = (await good).losses;
    const summary = await f.server.done;
    expect(summary.history[0].dropped).toEqual(['insecure-aaa', 'insecure-aab', 'insecure-aac']);
    expect(summary.history[1].clients).toEqual(['insecure-honest']);
    return losses;
  } finally {
    for (const a of [inA, inGrad, inParams]) a.close();
    await f.stop();
  }
}

test.each(Object.keys(MODES))(
  '%s mode: 1e30 in h_A, dL/dh_B or parameters drops the sender; the honest losses are those without its values',
  async (mode) => {
    const without = await honestLosses(mode, false);
    const withAttack = await honestLosses(mode, true);
    expect(without).toHaveLength(4);
    expect(without.every(Number.isFinite)).toBe(true);
    expect(withAttack).toEqual(without);
  },
);
