import { join } from 'node:path';
import { EventFileWriter } from './tfevents.js';
import type { RunRecord } from './run-view.js';

/**
 * `tracking.tensorboard: DIR`: the federation's metrics records as TensorBoard scalars, one run
 * per participant (DIR/server, DIR/<client>), the resolved config as text. A writer that fails
 * says so once and stops; the run goes on.
 */
export class TensorBoardSink {
  private readonly runs = new Map<string, EventFileWriter>();
  private readonly clientSteps = new Map<string, number>();
  private failed = false;

  constructor(
    private readonly dir: string,
    private readonly warn: (message: string) => void,
  ) {}

  /** The resolved config, as the server run's text. */
  config(yaml: string): void {
    this.guard(() => this.run('server').text('config', '```yaml\n' + yaml + '\n```'));
  }

  record(r: RunRecord): void {
    this.guard(() => {
      const n = (k: string) => Number(r[k]);
      const t = Number(r.time) / 1000 || Date.now() / 1000;
      if (r.type === 'step') {
        const client = String(r.client);
        const step = (this.clientSteps.get(client) ?? 0) + 1;
        this.clientSteps.set(client, step);
        this.run(client).scalar('train/loss', n('loss'), step, t);
      } else if (r.type === 'round') {
        const s = this.run('server'),
          round = n('round');
        s.scalar('round/train_loss', n('train_loss'), round, t);
        s.scalar('round/wall_s', n('wall_s'), round, t);
        s.scalar('round/tokens', n('tokens'), round, t);
        s.scalar('round/bytes_up_mib', n('bytes_up') / 2 ** 20, round, t);
        s.scalar('round/bytes_down_mib', n('bytes_down') / 2 ** 20, round, t);
        s.scalar('round/replica_busy_s', n('replica_busy_s'), round, t);
        const secure = (r.round_end as { secure_aggregation?: Record<string, number> } | undefined)?.secure_aggregation;
        for (const [phase, seconds] of Object.entries(secure ?? {}))
          s.scalar(`secure_aggregation/${phase}_s`, seconds, round, t);
      } else if (r.type === 'eval') {
        const s = this.run('server');
        s.scalar('eval/loss', n('loss'), n('tokens_seen'), t);
        s.scalar('eval/accuracy', n('accuracy'), n('tokens_seen'), t);
      } else if (r.type === 'timeline') {
        const spans = (r.spans ?? {}) as Record<string, [number, number]>;
        for (const [phase, [a, b]] of Object.entries(spans))
          this.run(String(r.client)).scalar(`step_ms/${phase}`, b - a, n('step'), t);
      }
    });
  }

  close(): void {
    this.guard(() => this.runs.forEach((w) => w.close()));
  }

  private run(name: string): EventFileWriter {
    let w = this.runs.get(name);
    if (!w) this.runs.set(name, (w = new EventFileWriter(join(this.dir, name.replace(/[^\w.-]/g, '_')))));
    return w;
  }

  private guard(write: () => void): void {
    if (this.failed) return;
    try {
      write();
    } catch (e) {
      this.failed = true;
      this.warn(
        `tracking.tensorboard: cannot write to ${this.dir} (${(e as Error).message}); TensorBoard files stop here, the run goes on`,
      );
    }
  }
}
