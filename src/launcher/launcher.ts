import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { configToYaml } from '../config/load.js';
import { keygen } from '../security/pki.js';
import { writePreparedData } from '../data/prepare.js';
import { prepareFromConfig } from '../config/experiment.js';
import { Progress, statusLine } from '../report/progress.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import { clientNames, clientSilos, listDirs, createRunFolder, isAlive, readStatus, writeStatus } from './run-folder.js';
import { follow, readSummary } from './summaries.js';
import type { TrainSummary } from '../training/centralized.js';
import { RunChildren } from './children.js';
import { finishRun, type RunSummary } from './finish.js';

export interface RunOptions {
  quiet?: boolean;
  outDir?: string;
  /** Continue this run folder (an interrupted or failed run) from its last server checkpoint. */
  resumeDir?: string;
  /** Privacy test: capture the last `steps` h_A of each client, and invert them after training. */
  attack?: { steps: number };
}

/**
 * `flglm run`: the whole experiment on loopback. Server and clients are separate processes (each
 * with its own ONNX Runtime), on an ephemeral port, with a throwaway PKI unless one is given.
 */
export class ExperimentLauncher {
  readonly runDir: string;
  private readonly procs: RunChildren;

  private readonly started = new Date().toISOString();

  constructor(
    private readonly cfg: ExperimentConfig,
    private readonly configText: string,
    private readonly o: RunOptions = {},
  ) {
    if (o.resumeDir) {
      const status = readStatus(o.resumeDir);
      if (!status) throw new UserError(`--resume ${o.resumeDir}: not a run folder (no status.json)`);
      if (status.state === 'finished')
        throw new UserError(`--resume ${o.resumeDir}: that run finished; nothing to resume`);
      if (status.state === 'running' && isAlive(status.pid))
        throw new UserError(`--resume ${o.resumeDir}: the run is still going (pid ${status.pid})`);
      this.runDir = resolve(o.resumeDir);
    } else this.runDir = createRunFolder(o.outDir, cfg.output_dir, cfg.name);
    writeStatus(this.runDir, { state: 'running', pid: process.pid, started: this.started });
    this.procs = new RunChildren(this.runDir);
  }

  /** Stop every child process: SIGTERM, then SIGKILL after 3 s. */
  stopAll(): Promise<void> {
    return this.procs.stopAll();
  }

  /** Record how the run ended (status.json); a failure keeps its one-line reason. */
  markEnded(error?: Error): void {
    writeStatus(this.runDir, {
      state: error ? 'failed' : 'finished',
      pid: process.pid,
      started: this.started,
      ended: new Date().toISOString(),
      ...(error ? { reason: error.message } : {}),
    });
  }

  async run(): Promise<RunSummary> {
    const cfg = this.cfg;
    const f = cfg.federation;
    const resuming = Boolean(this.o.resumeDir);
    if (!resuming) writeFileAtomic(join(this.runDir, 'config.yaml'), configToYaml(cfg));
    const spinner = await statusLine('preparing PKI and data silos', this.o.quiet);

    let silos: string[] | null = cfg.data.silos;
    let testDir = cfg.data.test;
    // Clients are named after their silo folders when the config names them (client-<i> otherwise).
    const clientIds = silos ? clientNames(silos) : Array.from({ length: f.clients }, (_, i) => `client-${i}`);
    if (!silos) {
      silos = resuming
        ? clientSilos(join(this.runDir, 'data'), f.clients)
        : writePreparedData(join(this.runDir, 'data'), prepareFromConfig(cfg), true);
      testDir = join(this.runDir, 'data', 'test');
    }
    if (!testDir) throw new UserError('data.test: give a held-out folder for evaluation when data.silos is set');
    let pki = cfg.security.pki;
    if (cfg.security.tls && !pki) {
      pki = join(this.runDir, 'pki');
      if (!resuming)
        keygen({
          out: pki,
          clients: clientIds,
          serverName: 'localhost',
          serverIps: ['127.0.0.1'],
          days: 2,
          keyBits: 2048,
        });
    }
    spinner.text = 'starting server';

    const metricsPath = join(this.runDir, 'metrics.jsonl');
    if (!resuming) writeFileSync(metricsPath, '');
    rmSync(join(this.runDir, 'server-ready.json'), { force: true });
    const security = cfg.security.tls ? ['--pki', join(pki!, 'server')] : ['--insecure'];
    const readyFile = join(this.runDir, 'server-ready.json');
    const capture = this.o.attack
      ? ['--capture', join(this.runDir, 'capture'), '--capture-steps', String(this.o.attack.steps)]
      : [];
    const server = this.procs.spawnFlglm(
      [
        'server',
        '--config',
        join(this.runDir, 'config.yaml'),
        ...security,
        '--port',
        '0',
        '--checkpoints',
        join(this.runDir, 'checkpoints', 'server'),
        '--metrics',
        metricsPath,
        '--summary-json',
        summaryPath(this.runDir, 'server'),
        '--ready-file',
        readyFile,
        ...(resuming ? ['--resume'] : []),
        ...capture,
      ],
      'server',
    );
    const serverDone = this.procs.exitOf(server, 'the server', 'server');
    const { port } = await this.procs.waitReady(readyFile, serverDone);
    spinner.text = `starting ${silos.length} clients`;
    const clients = silos.map((dir, i) => {
      const sec = cfg.security.tls
        ? ['--pki', join(pki!, 'clients', clientIds[i])]
        : ['--insecure', '--name', clientIds[i]];
      const child = this.procs.spawnFlglm(
        [
          'client',
          '--data',
          dir,
          '--test',
          testDir!,
          '--server',
          `127.0.0.1:${port}`,
          ...sec,
          '--checkpoints',
          join(this.runDir, 'checkpoints', 'clients'),
          '--summary-json',
          summaryPath(this.runDir, clientIds[i]),
          '--timeline',
          metricsPath,
          ...capture,
        ],
        clientIds[i],
      );
      return this.procs.exitOf(child, clientIds[i], clientIds[i]);
    });
    spinner.succeed(`server on 127.0.0.1:${port} (${f.mode}), ${silos.length} clients, run folder ${this.runDir}`);

    const start = performance.now();
    const progress = new Progress('federated', f.rounds * f.local_steps * silos.length, process.stderr, this.o.quiet);
    // The server appends to metrics.jsonl; each refresh reads only what it added since the last.
    const seen = { steps: 0, rounds: 0, tokens: 0, recent: [] as number[] };
    await follow(
      metricsPath,
      (records) => {
        for (const r of records) {
          if (r.type === 'step') {
            seen.steps++;
            seen.tokens += Number(r.tokens) || 0;
            seen.recent = [...seen.recent, r.loss as number].slice(-silos!.length * 3);
          }
          if (r.type === 'round') seen.rounds++;
        }
        const loss = seen.recent.length ? seen.recent.reduce((a, b) => a + b, 0) / seen.recent.length : NaN;
        progress.update(seen.steps, {
          round: `${Math.min(seen.rounds + 1, f.rounds)}/${f.rounds}`,
          loss,
          'tok/s': Math.round(seen.tokens / Math.max(1e-3, (performance.now() - start) / 1000)),
        });
      },
      Promise.all([serverDone, ...clients]),
    ).finally(() => progress.done());
    const wall = (performance.now() - start) / 1000;

    let baseline: TrainSummary | undefined;
    if (cfg.baseline === 'centralized') {
      // The same budget in steps of the same batch shape; its progress comes from its metrics file.
      const metrics = join(this.runDir, 'baseline-metrics.jsonl');
      writeFileSync(metrics, '');
      const child = this.procs.spawnFlglm(
        [
          'train',
          join(this.runDir, 'config.yaml'),
          '--quiet',
          '--summary-json',
          summaryPath(this.runDir, 'baseline'),
          '--losses-json',
          join(this.runDir, 'baseline-losses.json'),
          '--metrics',
          metrics,
          '--no-save',
        ],
        'baseline',
      );
      const bar = new Progress('centralized', f.rounds * f.local_steps * silos.length, process.stderr, this.o.quiet);
      const t0 = performance.now();
      let last = { step: 0, loss: NaN, tokens: 0 };
      await follow(
        metrics,
        (records) => {
          for (const r of records) last = r as typeof last;
          bar.update(last.step, {
            loss: last.loss,
            'tok/s': Math.round(last.tokens / Math.max(1e-3, (performance.now() - t0) / 1000)),
          });
        },
        this.procs.exitOf(child, 'the centralized baseline', 'baseline'),
      ).finally(() => bar.done());
      baseline = readSummary<TrainSummary>(summaryPath(this.runDir, 'baseline'), 'the centralized baseline');
    }
    const summary = await finishRun({
      runDir: this.runDir,
      cfg,
      configText: this.configText,
      wall,
      clientIds,
      testDir: testDir!,
      baseline,
      attack: Boolean(this.o.attack),
    });
    // A finished run keeps its models, not what only a resume needs: a throwaway PKI's private keys
    // and the optimizer moments in the round checkpoints (two thirds of their size).
    if (cfg.security.tls && !cfg.security.pki) rmSync(pki!, { recursive: true, force: true });
    for (const dir of [
      join(this.runDir, 'checkpoints', 'server', 'latest'),
      ...listDirs(join(this.runDir, 'checkpoints', 'clients')),
    ])
      rmSync(join(dir, 'optimizer.safetensors'), { force: true });
    return summary;
  }
}

function summaryPath(runDir: string, who: string): string {
  return join(runDir, 'summaries', `${who}.json`);
}

export { readMetrics, type RunSummary } from './finish.js';
