import { spawn, type ChildProcess } from 'node:child_process';
import { withMallocEnv } from '../util/malloc-env.js';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExperimentConfig } from '../config/schema.js';
import { configToYaml } from '../config/load.js';
import { keygen } from '../security/pki.js';
import { writePreparedData } from '../data/prepare.js';
import { prepareFromConfig } from '../config/experiment.js';
import { Progress, statusLine } from '../report/progress.js';
import { renderReport } from '../report/html.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { UserError } from '../util/errors.js';
import {
  clientNames,
  clientSilos,
  listDirs,
  createRunFolder,
  isAlive,
  readStatus,
  rootCause,
  writeStatus,
} from './run-folder.js';
import {
  follow,
  JsonLinesTail,
  readSummary,
  type ClientSummary,
  type ServerReady,
  type ServerSummary,
} from './summaries.js';
import type { TrainSummary } from '../training/centralized.js';
import type { GenerationMetrics } from '../training/generation-eval.js';
import { attackFinalRun, exportFinalModel, mergeFinalModel, scoreGenerations } from './final-model.js';
import type { AttackResult } from '../privacy/attack.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'flglm');

export interface RunOptions {
  quiet?: boolean;
  outDir?: string;
  /** Continue this run folder (an interrupted or failed run) from its last server checkpoint. */
  resumeDir?: string;
  /** Privacy test: capture the last `steps` h_A of each client, and invert them after training. */
  attack?: { steps: number };
}

export interface RunSummary {
  mode: string;
  clients: number;
  rounds: number;
  steps: number;
  tokens: number;
  wall_s: number;
  tokens_per_s: number;
  train_loss_final: number;
  eval: { loss: number; perplexity: number; accuracy: number } | null;
  /** Task generate: the final model's greedy generations on the held-out prompts, scored. */
  generation?: GenerationMetrics;
  baseline?: TrainSummary;
  run_dir: string;
  /** Peak resident memory of each process (MiB): the server (trunk workers included) and each client. */
  peak_rss_mib?: Record<string, number>;
  /** `privacy.activation_noise` when it is on (sigma > 0): what the clients added to h_A. */
  activation_noise?: { sigma: number; gradients: boolean };
  /** The final model for the Hugging Face ecosystem: `model-hf/` (LoRA merged) and `adapter/` (LoRA). */
  exports?: { hf?: string; adapter?: string };
  /** `flglm run --attack`: what the inversion attack read back from the captured h_A. */
  attack?: AttackResult;
  /** With differential privacy: the ε the run spent (privacy/dp-budget.ts), and why it stopped early if it did. */
  privacy?: ServerSummary['privacy'];
  stopped?: string;
}

/**
 * `flglm run`: the whole experiment on loopback. Server and clients are separate processes (each
 * with its own ONNX Runtime), on an ephemeral port, with a throwaway PKI unless one is given.
 */
export class ExperimentLauncher {
  private readonly children = new Set<ChildProcess>();
  readonly runDir: string;

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

  private spawnFlglm(args: string[], logName: string): ChildProcess {
    mkdirSync(join(this.runDir, 'logs'), { recursive: true });
    const log = createWriteStream(join(this.runDir, 'logs', `${logName}.log`));
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: withMallocEnv() });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.children.add(child);
    child.on('exit', () => {
      this.children.delete(child);
    });
    return child;
  }

  /** Stop every child process: SIGTERM, then SIGKILL after 3 s. */
  async stopAll(): Promise<void> {
    const alive = [...this.children];
    for (const c of alive) c.kill('SIGTERM');
    await Promise.all(
      alive.map(
        (c) =>
          new Promise<void>((res) => {
            const t = setTimeout(() => {
              c.kill('SIGKILL');
              res();
            }, 3000);
            c.once('exit', () => {
              clearTimeout(t);
              res();
            });
          }),
      ),
    );
  }

  /** A child's exit; a failure names the child's own error line and its log. */
  private exitOf(child: ChildProcess, what: string, logName: string): Promise<void> {
    const log = join(this.runDir, 'logs', `${logName}.log`);
    return new Promise((res, rej) =>
      child.once('exit', (code, signal) => {
        if (code === 0) return res();
        // The log stream may still be flushing the child's last line.
        setTimeout(() => {
          const cause = rootCause(log);
          rej(new UserError(`${what} failed: ${cause ?? `exited with ${signal ?? `code ${code}`}`} (log: ${log})`));
        }, 100);
      }),
    );
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
    const server = this.spawnFlglm(
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
        this.summaryPath('server'),
        '--ready-file',
        readyFile,
        ...(resuming ? ['--resume'] : []),
        ...capture,
      ],
      'server',
    );
    const serverDone = this.exitOf(server, 'the server', 'server');
    const { port } = await this.waitReady(readyFile, serverDone);
    spinner.text = `starting ${silos.length} clients`;
    const clients = silos.map((dir, i) => {
      const sec = cfg.security.tls
        ? ['--pki', join(pki!, 'clients', clientIds[i])]
        : ['--insecure', '--name', clientIds[i]];
      const child = this.spawnFlglm(
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
          this.summaryPath(clientIds[i]),
          ...capture,
        ],
        clientIds[i],
      );
      return this.exitOf(child, clientIds[i], clientIds[i]);
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
      const child = this.spawnFlglm(
        [
          'train',
          join(this.runDir, 'config.yaml'),
          '--quiet',
          '--summary-json',
          this.summaryPath('baseline'),
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
        this.exitOf(child, 'the centralized baseline', 'baseline'),
      ).finally(() => bar.done());
      baseline = readSummary<TrainSummary>(this.summaryPath('baseline'), 'the centralized baseline');
    }
    const summary = await this.finish(wall, clientIds, testDir!, baseline);
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

  private summaryPath(who: string): string {
    return join(this.runDir, 'summaries', `${who}.json`);
  }

  /** The server's ready file (it listens), or its exit, or 60 s. */
  private async waitReady(readyFile: string, serverDone: Promise<void>): Promise<ServerReady> {
    let exited: Error | null = null;
    serverDone.catch((e: Error) => {
      exited = e;
    });
    for (const deadline = Date.now() + 60000; Date.now() < deadline;) {
      if (existsSync(readyFile)) return readSummary<ServerReady>(readyFile, 'the server');
      if (exited) throw exited;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new UserError(`the server did not start in 60 s; see ${join(this.runDir, 'logs', 'server.log')}`);
  }

  /** The run's summary from the summaries the server and clients wrote (metrics.jsonl feeds the report only). */
  private async finish(
    wall: number,
    clientIds: string[],
    testDir: string,
    baseline?: TrainSummary,
  ): Promise<RunSummary> {
    const f = this.cfg.federation;
    const server = readSummary<ServerSummary>(this.summaryPath('server'), 'the server');
    const clients = clientIds
      .map((id) => readSummary<ClientSummary>(this.summaryPath(id), id))
      .filter((c) => c.steps > 0);
    // Each client's last few losses, averaged over the clients that trained.
    const last = clients.map((c) => c.losses.slice(-3).reduce((a, b) => a + b, 0) / Math.min(3, c.losses.length));
    const e = server.eval_summary;
    const summary: RunSummary = {
      mode: server.mode,
      clients: clients.length,
      rounds: server.history.length,
      steps: server.steps,
      tokens: server.tokens,
      wall_s: wall,
      tokens_per_s: server.tokens / wall,
      train_loss_final: last.reduce((a, b) => a + b, 0) / last.length,
      eval: e.examples ? { loss: e.loss, perplexity: Math.exp(e.loss), accuracy: e.accuracy } : null,
      ...(baseline ? { baseline } : {}),
      run_dir: this.runDir,
      ...(this.cfg.privacy.activation_noise.sigma > 0 ? { activation_noise: this.cfg.privacy.activation_noise } : {}),
      ...(server.privacy ? { privacy: server.privacy } : {}),
      ...(server.stopped ? { stopped: server.stopped } : {}),
      peak_rss_mib: {
        server: server.peak_rss_mib ?? NaN,
        ...Object.fromEntries(clients.map((c) => [c.client_id, c.peak_rss_mib])),
      },
    };
    const recs = readMetrics(join(this.runDir, 'metrics.jsonl'));
    const steps = recs.filter((r) => r.type === 'step');
    mergeFinalModel(this.runDir);
    const generation = await scoreGenerations(this.runDir, this.cfg, testDir);
    if (generation) summary.generation = generation;
    const exports = exportFinalModel(this.runDir);
    if (exports) summary.exports = exports;
    if (this.o.attack) summary.attack = await attackFinalRun(this.runDir, this.cfg);
    writeFileAtomic(join(this.runDir, 'summary.json'), JSON.stringify(summary, null, 2));
    const baselineLossesPath = join(this.runDir, 'baseline-losses.json');
    writeFileAtomic(
      join(this.runDir, 'report.html'),
      renderReport({
        name: this.cfg.name,
        mode: f.mode,
        summary: summary as unknown as Record<string, unknown>,
        steps: steps.map((s, index) => ({ client: s.client as string, loss: s.loss as number, index })),
        rounds: server.history,
        baselineLosses: existsSync(baselineLossesPath)
          ? JSON.parse(readFileSync(baselineLossesPath, 'utf8'))
          : undefined,
        evalCurves: [
          {
            label: `federated (${f.mode}, ${f.strategy.name})`,
            points: recs
              .filter((r) => r.type === 'eval')
              .map((r) => ({
                tokens: r.tokens_seen as number,
                accuracy: r.accuracy as number,
                loss: r.loss as number,
              })),
          },
          ...(baseline?.curve
            ? [{ label: 'centralized', points: baseline.curve as { tokens: number; accuracy: number; loss: number }[] }]
            : []),
        ],
        config: this.configText,
        clientPhases: clients.map((c) => ({ client: c.client_id, steps: Math.max(0, c.steps - 1), phases: c.phases })), // phases skip the first step
      }),
    );
    return summary;
  }
}

/** Every complete record of a metrics.jsonl file. */
export function readMetrics(path: string): Record<string, unknown>[] {
  return new JsonLinesTail(path).poll();
}
