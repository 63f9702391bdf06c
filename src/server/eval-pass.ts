import type { Participant } from './participant.js';
import type { EvalMetrics, EvalResult } from './records.js';
import { linkSetup, type RoundDeps } from './round.js';
import { sendRoundKey } from './round-messages.js';
import { ServerLink } from './step-link.js';
import type { TensorData } from '../runtime/tensor.js';

/** What an evaluation pass needs: the link setup, and forward passes on the replicas (nothing kept). */
export type EvalDeps = Pick<RoundDeps, 'cfg' | 'model' | 'limits' | 'onReceive' | 'replicaCount'> & {
  forward(replica: number, key: string, hA: TensorData): Promise<TensorData>;
  drop(s: Participant, round: number, err: Error): void;
};

/**
 * An evaluation pass: every participant evaluates the current model on its held-out data through
 * the trunk (forward requests only, until it reports its metrics); the parameters stay with the
 * clients. A failure drops only that client.
 */
export async function evaluationPass(round: number, participants: readonly Participant[], d: EvalDeps) {
  const setup = linkSetup(d, round, true);
  const results = await Promise.all(
    participants.map(async (s, i): Promise<EvalResult | null> => {
      try {
        sendRoundKey(s, round);
        s.send({ roundStart: { round, localSteps: 0, configJson: '{}', evaluate: true } });
        const metrics = (await serve(new ServerLink(s, setup), s.id, i % d.replicaCount, d)) as {
          eval?: EvalMetrics;
        } | null;
        return { clientId: s.id, eval: metrics?.eval };
      } catch (e) {
        d.drop(s, round, e as Error);
        return null;
      }
    }),
  );
  return results.filter((r): r is EvalResult => r !== null);
}

/** Forward requests until the client sends its metrics. */
async function serve(link: ServerLink, id: string, replica: number, d: EvalDeps): Promise<unknown> {
  for (;;) {
    const m = await link.evaluation();
    if ('metrics' in m) return m.metrics;
    link.sendTrunkOut(m.step, await d.forward(replica, `${id}:eval`, m.tensor));
  }
}
