import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics of a federation server (`flglm server --metrics-port`), fed by the records it
 * writes to metrics.jsonl (steps, rounds, evaluations, drops, cut-offs) and by gauges read at
 * scrape time. Process metrics (resident memory, CPU, event-loop lag) come from prom-client.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly rounds = new Counter({
    name: 'flglm_rounds_total',
    help: 'Training rounds completed',
    registers: [this.registry],
  });
  private readonly steps = new Counter({
    name: 'flglm_steps_total',
    help: 'Client training steps served',
    labelNames: ['client'],
    registers: [this.registry],
  });
  private readonly tokens = new Counter({
    name: 'flglm_tokens_total',
    help: 'Tokens trained on',
    registers: [this.registry],
  });
  private readonly stepSeconds = new Histogram({
    name: 'flglm_step_seconds',
    help: "Seconds between a client's consecutive steps",
    labelNames: ['client'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly roundSeconds = new Histogram({
    name: 'flglm_round_seconds',
    help: 'Wall seconds per training round',
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry],
  });
  private readonly tokensPerSecond = new Gauge({
    name: 'flglm_tokens_per_second',
    help: 'Tokens per second over the last round',
    registers: [this.registry],
  });
  private readonly loss = new Gauge({
    name: 'flglm_train_loss',
    help: 'Mean training loss of the last round',
    registers: [this.registry],
  });
  private readonly evalLoss = new Gauge({
    name: 'flglm_eval_loss',
    help: 'Held-out loss of the last evaluation',
    registers: [this.registry],
  });
  private readonly evalAccuracy = new Gauge({
    name: 'flglm_eval_accuracy',
    help: 'Held-out accuracy of the last evaluation',
    registers: [this.registry],
  });
  private readonly bytesReceived = new Counter({
    name: 'flglm_bytes_received_total',
    help: 'Tensor bytes received from a client (payload, before TLS)',
    labelNames: ['client'],
    registers: [this.registry],
  });
  private readonly bytesSent = new Counter({
    name: 'flglm_bytes_sent_total',
    help: 'Tensor bytes sent to a client (payload, before TLS)',
    labelNames: ['client'],
    registers: [this.registry],
  });
  private readonly dropped = new Counter({
    name: 'flglm_clients_dropped_total',
    help: 'Clients dropped from a round (stream broke, timeout, protocol violation)',
    registers: [this.registry],
  });
  private readonly cutOff = new Counter({
    name: 'flglm_clients_cut_off_total',
    help: 'Connections refused or cut at admission or for exceeding limits',
    registers: [this.registry],
  });
  private readonly replicaBusy = new Counter({
    name: 'flglm_replica_busy_seconds_total',
    help: 'Seconds trunk replicas computed',
    registers: [this.registry],
  });
  private readonly lastStep = new Map<string, number>();

  /** `connection`: the server's clients connected now and the bytes they have queued (read at scrape time). */
  constructor(connection: () => { clients: number; queuedBytes: number }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'flglm_server_' });
    new Gauge({
      name: 'flglm_clients_connected',
      help: 'Clients connected now',
      registers: [this.registry],
      collect() {
        this.set(connection().clients);
      },
    });
    new Gauge({
      name: 'flglm_queue_bytes',
      help: 'Bytes received from clients and not yet processed',
      registers: [this.registry],
      collect() {
        this.set(connection().queuedBytes);
      },
    });
  }

  /** One record of the server's metrics stream. */
  record(r: Record<string, unknown>): void {
    const client = String(r.client ?? '');
    if (r.type === 'step') {
      this.steps.inc({ client });
      const now = Number(r.time),
        last = this.lastStep.get(client);
      if (last !== undefined) this.stepSeconds.observe({ client }, (now - last) / 1000);
      this.lastStep.set(client, now);
    } else if (r.type === 'round') {
      this.rounds.inc();
      const wall = Number(r.wall_s),
        tokens = Number(r.tokens);
      this.tokens.inc(tokens);
      this.roundSeconds.observe(wall);
      if (wall > 0) this.tokensPerSecond.set(tokens / wall);
      if (Number.isFinite(Number(r.train_loss))) this.loss.set(Number(r.train_loss));
      this.replicaBusy.inc(Number(r.replica_busy_s) || 0);
      for (const [id, [up, down]] of Object.entries((r.bytes_by_client ?? {}) as Record<string, [number, number]>)) {
        this.bytesReceived.inc({ client: id }, up);
        this.bytesSent.inc({ client: id }, down);
      }
    } else if (r.type === 'eval') {
      if (Number.isFinite(Number(r.loss))) this.evalLoss.set(Number(r.loss));
      if (Number.isFinite(Number(r.accuracy))) this.evalAccuracy.set(Number(r.accuracy));
    } else if (r.type === 'drop') {
      this.dropped.inc();
    } else if (r.type === 'cut_off') {
      this.cutOff.inc();
    }
  }
}
