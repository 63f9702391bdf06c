import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** Prometheus metrics of a client (`flglm client --metrics-port`): its steps, loss and where a step's time goes. */
export class ClientMetrics {
  readonly registry = new Registry();
  private readonly steps = new Counter({
    name: 'flglm_client_steps_total',
    help: 'Training steps this client took',
    registers: [this.registry],
  });
  private readonly loss = new Gauge({
    name: 'flglm_client_train_loss',
    help: 'Loss of the last training step',
    registers: [this.registry],
  });

  /** `phases`: seconds per phase of a step, summed so far (read at scrape time). */
  constructor(phases: Record<string, number>) {
    collectDefaultMetrics({ register: this.registry, prefix: 'flglm_client_' });
    new Gauge({
      name: 'flglm_client_phase_seconds_total',
      help: 'Seconds spent per phase of the training steps so far',
      labelNames: ['phase'],
      registers: [this.registry],
      collect() {
        for (const [phase, s] of Object.entries(phases)) this.set({ phase }, s);
      },
    });
  }

  step(loss: number): void {
    this.steps.inc();
    this.loss.set(loss);
  }
}
