/**
 * The one plug-in point for federation policy (like Flower's Strategy): how client updates of a
 * round become the next global client-part parameters. Transport, retries and scheduling stay out.
 */
export interface ClientUpdate {
  clientId: string;
  numExamples: number;
  params: Map<string, Float32Array>;
}

export interface Strategy {
  readonly name: string;
  aggregate(round: number, updates: ClientUpdate[]): Map<string, Float32Array>;
}

/** FedAvg: parameters averaged with weights proportional to each client's sample count. */
export class FedAvg implements Strategy {
  readonly name = 'fedavg';
  aggregate(_round: number, updates: ClientUpdate[]): Map<string, Float32Array> {
    if (updates.length === 0) throw new Error('FedAvg: no client updates to aggregate');
    const total = updates.reduce((a, u) => a + u.numExamples, 0);
    const out = new Map<string, Float32Array>();
    for (const [name, first] of updates[0].params) {
      const acc = new Float64Array(first.length);
      for (const u of updates) {
        const p = u.params.get(name);
        if (!p || p.length !== first.length) throw new Error(`FedAvg: client ${u.clientId} sent no or a differently shaped ${name}`);
        const w = total > 0 ? u.numExamples / total : 1 / updates.length;
        for (let i = 0; i < p.length; i++) acc[i] += w * p[i];
      }
      out.set(name, Float32Array.from(acc));
    }
    return out;
  }
}
