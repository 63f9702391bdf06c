import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ora from 'ora';
import type { ExperimentConfig } from '../config/schema.js';
import { configToYaml } from '../config/load.js';
import { keygen } from '../security/pki.js';
import { writePreparedData } from '../data/prepare.js';
import { prepareFromConfig } from '../config/experiment.js';
import { Progress } from '../report/progress.js';
import { renderReport } from '../report/html.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { prepareOutputDir } from '../util/output-dir.js';
import { UserError } from '../util/errors.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'flglm');

export interface RunOptions {
  quiet?: boolean;
  outDir?: string;
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
  baseline?: Record<string, unknown>;
  run_dir: string;
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

/**
 * `flglm run`: the whole experiment on loopback. Server and clients are separate processes (each
 * with its own ONNX Runtime), on an ephemeral port, with a throwaway PKI unless one is given.
 */
export class ExperimentLauncher {
  private readonly children = new Set<ChildProcess>();
  readonly runDir: string;

  constructor(private readonly cfg: ExperimentConfig, private readonly configText: string, private readonly o: RunOptions = {}) {
    this.runDir = resolve(o.outDir ?? join(cfg.output_dir, `${cfg.name}-${timestamp()}`));
  }

  private spawnFlglm(args: string[], logName: string): ChildProcess {
    mkdirSync(join(this.runDir, 'logs'), { recursive: true });
    const log = createWriteStream(join(this.runDir, 'logs', `${logName}.log`));
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    this.children.add(child);
    child.on('exit', () => { this.children.delete(child); });
    return child;
  }

  /** Stop every child process: SIGTERM, then SIGKILL after 3 s. */
  async stopAll(): Promise<void> {
    const alive = [...this.children];
    for (const c of alive) c.kill('SIGTERM');
    await Promise.all(alive.map((c) => new Promise<void>((res) => {
      const t = setTimeout(() => { c.kill('SIGKILL'); res(); }, 3000);
      c.once('exit', () => { clearTimeout(t); res(); });
    })));
  }

  private exitOf(child: ChildProcess, what: string): Promise<void> {
    return new Promise((res, rej) => child.once('exit', (code, signal) => (code === 0 ? res() : rej(new UserError(`${what} exited with ${signal ?? `code ${code}`}; see ${join(this.runDir, 'logs')}`)))));
  }

  async run(): Promise<RunSummary> {
    const cfg = this.cfg;
    const f = cfg.federation;
    prepareOutputDir(this.runDir, 'run folder');
    writeFileAtomic(join(this.runDir, 'config.yaml'), configToYaml(cfg));
    const spinner = ora({ text: 'preparing PKI and data silos', isEnabled: process.stderr.isTTY, isSilent: this.o.quiet, stream: process.stderr }).start();

    let pki = cfg.security.pki;
    if (cfg.security.tls && !pki) {
      pki = join(this.runDir, 'pki');
      keygen({ out: pki, clients: Array.from({ length: f.clients }, (_, i) => `client-${i}`), serverName: 'localhost', serverIps: ['127.0.0.1'], days: 2, keyBits: 2048 });
    }
    let silos = cfg.data.silos;
    let testDir = cfg.data.test;
    if (!silos) {
      silos = writePreparedData(join(this.runDir, 'data'), prepareFromConfig(cfg), true);
      testDir = join(this.runDir, 'data', 'test');
    }
    if (!testDir) throw new UserError('data.test: give a held-out folder for evaluation when data.silos is set');
    const clientIds = silos.map((_, i) => `client-${i}`);
    spinner.text = 'starting server';

    const metricsPath = join(this.runDir, 'metrics.jsonl');
    writeFileSync(metricsPath, '');
    const security = cfg.security.tls ? ['--pki', join(pki!, 'server')] : ['--insecure'];
    const server = this.spawnFlglm(['server', '--config', join(this.runDir, 'config.yaml'), ...security, '--port', '0', '--checkpoints', join(this.runDir, 'checkpoints', 'server'), '--metrics', metricsPath, '--summary-json', join(this.runDir, 'server-summary.json')], 'server');
    const serverDone = this.exitOf(server, 'the server');
    const port = await new Promise<number>((res, rej) => {
      let buf = '';
      const t = setTimeout(() => rej(new UserError(`the server did not start in 60 s; see ${join(this.runDir, 'logs', 'server.log')}`)), 60000);
      server.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /listening on [^:]+:(\d+)/.exec(buf);
        if (m) { clearTimeout(t); res(Number(m[1])); }
      });
      serverDone.catch((e) => { clearTimeout(t); rej(e); });
    });
    spinner.text = `starting ${silos.length} clients`;
    const clients = silos.map((dir, i) => {
      const sec = cfg.security.tls ? ['--pki', join(pki!, 'clients', clientIds[i])] : ['--insecure', '--name', clientIds[i]];
      const child = this.spawnFlglm(['client', '--data', dir, '--test', testDir!, '--server', `127.0.0.1:${port}`, ...sec, '--checkpoints', join(this.runDir, 'checkpoints', 'clients')], clientIds[i]);
      return this.exitOf(child, clientIds[i]);
    });
    spinner.succeed(`server on 127.0.0.1:${port} (${f.mode}), ${silos.length} clients, run folder ${this.runDir}`);

    const start = performance.now();
    const progress = new Progress('federated', f.rounds * f.local_steps * silos.length, process.stderr, this.o.quiet);
    const refresh = () => {
      const recs = readMetrics(metricsPath);
      const steps = recs.filter((r) => r.type === 'step');
      const rounds = recs.filter((r) => r.type === 'round');
      const recent = steps.slice(-silos!.length * 3).map((r) => r.loss as number);
      const tokens = rounds.reduce((a, r) => a + (r.tokens as number), 0);
      progress.update(steps.length, { round: `${Math.min(rounds.length + 1, f.rounds)}/${f.rounds}`, loss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN, 'tok/s': Math.round(tokens / Math.max(1e-3, (performance.now() - start) / 1000)) });
    };
    const poll = setInterval(refresh, 500);
    try {
      await Promise.all([serverDone, ...clients]);
    } finally {
      clearInterval(poll);
      refresh();
      progress.done();
    }
    const wall = (performance.now() - start) / 1000;

    let baseline: Record<string, unknown> | undefined;
    if (cfg.baseline === 'centralized') {
      const bspin = ora({ text: 'training the centralized baseline with the same budget', isEnabled: process.stderr.isTTY, isSilent: this.o.quiet, stream: process.stderr }).start();
      const child = this.spawnFlglm(['train', join(this.runDir, 'config.yaml'), '--quiet', '--summary-json', join(this.runDir, 'baseline-summary.json'), '--losses-json', join(this.runDir, 'baseline-losses.json')], 'baseline');
      await this.exitOf(child, 'the centralized baseline');
      baseline = JSON.parse(readFileSync(join(this.runDir, 'baseline-summary.json'), 'utf8'));
      bspin.succeed('centralized baseline done');
    }
    return this.finish(wall, baseline);
  }

  /**
   * The whole trained model in one checkpoint (<run>/model): the averaged client parts (every client
   * holds the same ones after the last FedAvg) with the server's trunk. Only an operator running both
   * sides on one machine can do this; in a real deployment neither side has the other's part.
   */
  private mergeFinalModel(): void {
    const clientsDir = join(this.runDir, 'checkpoints', 'clients');
    const serverDir = join(this.runDir, 'checkpoints', 'server', 'latest');
    if (!existsSync(clientsDir) || !existsSync(join(serverDir, 'checkpoint.json'))) return;
    const first = readdirSync(clientsDir).sort()[0];
    if (!first) return;
    const client = loadCheckpoint(join(clientsDir, first));
    const server = loadCheckpoint(serverDir);
    for (const [name, t] of server.store) client.store.set(name, t);
    saveCheckpoint(join(this.runDir, 'model'), client.store, { model: client.meta.model, peft: client.meta.peft, step: client.meta.step, round: server.meta.round });
  }

  private finish(wall: number, baseline?: Record<string, unknown>): RunSummary {
    const f = this.cfg.federation;
    const recs = readMetrics(join(this.runDir, 'metrics.jsonl'));
    const steps = recs.filter((r) => r.type === 'step');
    const rounds = recs.filter((r) => r.type === 'round') as unknown as { round: number; wall_s: number; train_loss: number; clients: string[]; dropped: string[]; tokens: number }[];
    const server = JSON.parse(readFileSync(join(this.runDir, 'server-summary.json'), 'utf8')) as { eval: { clientId: string; eval?: { loss: number; perplexity: number; accuracy: number } }[] };
    const evals = server.eval.map((e) => e.eval).filter((e): e is { loss: number; perplexity: number; accuracy: number } => Boolean(e));
    const avg = (k: 'loss' | 'perplexity' | 'accuracy') => evals.reduce((a, e) => a + e[k], 0) / evals.length;
    const tokens = rounds.reduce((a, r) => a + r.tokens, 0);
    const lastLosses = steps.slice(-Math.max(1, new Set(steps.map((s) => s.client)).size * 3)).map((s) => s.loss as number);
    const summary: RunSummary = {
      mode: f.mode, clients: new Set(steps.map((s) => s.client)).size, rounds: rounds.length, steps: steps.length, tokens, wall_s: wall,
      tokens_per_s: tokens / wall, train_loss_final: lastLosses.reduce((a, b) => a + b, 0) / lastLosses.length,
      eval: evals.length ? { loss: avg('loss'), perplexity: avg('perplexity'), accuracy: avg('accuracy') } : null,
      ...(baseline ? { baseline } : {}), run_dir: this.runDir,
    };
    this.mergeFinalModel();
    writeFileAtomic(join(this.runDir, 'summary.json'), JSON.stringify(summary, null, 2));
    const baselineLossesPath = join(this.runDir, 'baseline-losses.json');
    writeFileAtomic(join(this.runDir, 'report.html'), renderReport({
      name: this.cfg.name, mode: f.mode, summary: summary as unknown as Record<string, unknown>,
      steps: steps.map((s, index) => ({ client: s.client as string, loss: s.loss as number, index })), rounds,
      baselineLosses: existsSync(baselineLossesPath) ? JSON.parse(readFileSync(baselineLossesPath, 'utf8')) : undefined,
      evalCurves: [
        { label: `federated (${f.mode}, ${f.strategy.name})`, points: recs.filter((r) => r.type === 'eval').map((r) => ({ tokens: r.tokens_seen as number, accuracy: r.accuracy as number, loss: r.loss as number })) },
        ...(baseline?.curve ? [{ label: 'centralized', points: baseline.curve as { tokens: number; accuracy: number; loss: number }[] }] : []),
      ],
      config: this.configText,
    }));
    return summary;
  }
}

export function readMetrics(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).flatMap((l) => {
    try { return [JSON.parse(l) as Record<string, unknown>]; } catch { return []; } // a line being written
  });
}
