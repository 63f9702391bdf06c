import type * as grpc from '@grpc/grpc-js';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, resolveModel } from '../config/experiment.js';
import { PartExecutor } from '../runtime/part-executor.js';
import { clipGlobalNorm, createOptimizer, learningRate, type Optimizer } from '../runtime/optimizer.js';
import { FedAvg, type ClientUpdate, type Strategy } from '../federation/strategy.js';
import { Inbox } from '../protocol/inbox.js';
import { decodeTensor, encodeTensor, ProtocolError, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import { newSessionKey, PayloadChannel, wrapSessionKey } from '../security/payload.js';
import type { PeerIdentity } from '../security/tls.js';
import { saveCheckpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import type { ParamStore } from '../model/params.js';

type Msg = Record<string, unknown> & { kind?: string };
type Call = grpc.ServerDuplexStream<Msg, Msg>;

interface ClientSession {
  id: string;
  call: Call;
  inbox: Inbox<Msg>;
  numExamples: number;
  payloadPublicKey: string | null;
}

export interface ServerEvents {
  log: (msg: string) => void;
  /** Every message the server decoded, for audits and tests (kind, tensor names, shapes). */
  onReceive?: (clientId: string, kind: string, body: Msg) => void;
}

/**
 * The FL-GLM server in sequential mode: it owns the trunk, serves clients one at a time each
 * round, averages their client parts (Strategy) at round end, and checkpoints the trunk.
 */
export class SplitServer {
  private readonly sessions = new Map<string, ClientSession>();
  private readonly trunk: PartExecutor;
  private readonly optimizer: Optimizer;
  private readonly strategy: Strategy = new FedAvg();
  private readonly model: ModelConfig;
  private readonly store: ParamStore;
  private trunkStep = 0;
  private started = false;
  readonly done: Promise<ExperimentSummaryLike>;
  private resolveDone!: (s: ExperimentSummaryLike) => void;
  private rejectDone!: (e: Error) => void;

  constructor(private readonly cfg: ExperimentConfig, private readonly kit: string | null, private readonly events: ServerEvents, private readonly checkpointDir: string | null = null) {
    const { config, store } = resolveModel(cfg);
    this.model = config;
    this.store = store;
    this.trunk = new PartExecutor('trunk', config, cfg.split, peftOf(cfg), store, { device: cfg.runtime.device, threads: cfg.runtime.threads });
    this.optimizer = createOptimizer(cfg.optimizer);
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
  }

  /** gRPC Session handler: registers the client after its Join, then starts rounds when enough joined. */
  onSession = (call: Call, peer: PeerIdentity): void => {
    const inbox = new Inbox<Msg>();
    call.on('data', (m: Msg) => inbox.push(m));
    call.on('error', (e) => inbox.fail(e));
    call.on('end', () => inbox.fail(new Error('client closed the stream')));
    void (async () => {
      try {
        const joinMsg = await inbox.next(['join'], this.cfg.federation.client_timeout_ms);
        let payloadPublicKey: string | null = null;
        if (this.kit && this.cfg.security.payload_encryption) {
          const path = join(this.kit, 'payload-keys', `${peer.clientId}.pub`);
          if (!existsSync(path)) throw new ProtocolError(`unknown client "${peer.clientId}": no payload key ${path}; add it with flglm keygen add-client`);
          payloadPublicKey = readFileSync(path, 'utf8');
        }
        const numExamples = Number((joinMsg.join as { numExamples: string }).numExamples);
        this.sessions.set(peer.clientId, { id: peer.clientId, call, inbox, numExamples, payloadPublicKey });
        this.events.log(`client ${peer.clientId} joined with ${numExamples} examples (${this.sessions.size}/${this.cfg.federation.clients})`);
        call.write({ plan: { planJson: JSON.stringify(this.plan()) } });
        if (!this.started && this.sessions.size >= this.cfg.federation.clients) {
          this.started = true;
          this.run().then(this.resolveDone, this.rejectDone);
        }
      } catch (e) {
        this.events.log(`refused a session from ${peer.clientId}: ${(e as Error).message}`);
        call.write({ error: { code: 'REFUSED', message: (e as Error).message } });
        call.end();
      }
    })();
  };

  private plan(): Partial<ExperimentConfig> {
    const { security: _s, ...rest } = this.cfg;
    return { ...rest, data: { ...this.cfg.data, silos: null, test: null } };
  }

  private async run(): Promise<ExperimentSummaryLike> {
    const f = this.cfg.federation;
    const roundTimes: number[] = [];
    for (let round = 1; round <= f.rounds + 1; round++) {
      const evalOnly = round === f.rounds + 1;
      const t0 = performance.now();
      const updates: ClientUpdate[] = [];
      for (const s of [...this.sessions.values()]) {
        try {
          updates.push(await this.serveRound(s, round, evalOnly ? 0 : f.local_steps));
        } catch (e) {
          this.events.log(`client ${s.id} dropped from round ${round}: ${(e as Error).message}`);
          this.sessions.delete(s.id);
          try { s.call.end(); } catch { /* already closed */ }
        }
      }
      if (updates.length < f.min_clients) throw new Error(`round ${round}: only ${updates.length} clients finished, min_clients is ${f.min_clients}`);
      if (evalOnly) {
        const metrics = updates.map((u) => ({ clientId: u.clientId, ...(this.lastMetrics.get(u.clientId) ?? {}) }));
        for (const s of this.sessions.values()) s.call.write({ finished: { summaryJson: JSON.stringify({ metrics }) } });
        for (const s of this.sessions.values()) s.call.end();
        await this.trunk.release();
        return { rounds: f.rounds, roundTimes, metrics };
      }
      const averaged = this.strategy.aggregate(round, updates);
      for (const s of this.sessions.values()) {
        const ctx = this.context(s, round, 0);
        s.call.write({ averaged: { round, tensors: [...averaged].map(([name, data]) => encodeTensor(name, { dtype: 'float32', shape: [data.length], data }, ctx)) } });
      }
      if (this.checkpointDir) saveCheckpoint(join(this.checkpointDir, 'trunk'), this.store, { model: this.model, peft: peftOf(this.cfg), step: this.trunkStep, round }, this.optimizer.state());
      roundTimes.push((performance.now() - t0) / 1000);
      this.events.log(`round ${round}/${f.rounds} done in ${roundTimes[roundTimes.length - 1].toFixed(1)} s with ${updates.length} clients`);
    }
    throw new Error('unreachable');
  }

  private readonly channels = new Map<string, { sessionId: string; channel: PayloadChannel | null }>();
  private readonly lastMetrics = new Map<string, Record<string, unknown>>();

  private context(s: ClientSession, round: number, step: number): TensorContext {
    const c = this.channels.get(s.id)!;
    return { clientId: s.id, sessionId: c.sessionId, round, step, channel: c.channel };
  }

  /** One client's turn: fresh payload key, its local steps against the trunk, then its parameters. */
  private async serveRound(s: ClientSession, round: number, localSteps: number): Promise<ClientUpdate> {
    const sessionId = randomUUID();
    if (s.payloadPublicKey) {
      const key = newSessionKey();
      this.channels.set(s.id, { sessionId, channel: new PayloadChannel(key, 'down') });
      s.call.write({ sessionKey: { round, sessionId, wrappedKey: wrapSessionKey(key, s.payloadPublicKey) } });
    } else {
      this.channels.set(s.id, { sessionId, channel: null });
      s.call.write({ sessionKey: { round, sessionId, wrappedKey: Buffer.alloc(0) } });
    }
    s.call.write({ roundStart: { round, localSteps } });
    const { batch_size: B, seq_len: S } = this.cfg.data;
    const D = this.model.hidden_size;
    const timeout = this.cfg.federation.client_timeout_ms;
    const totalSteps = this.cfg.federation.rounds * this.cfg.federation.local_steps * this.cfg.federation.clients;
    for (;;) {
      const m = await s.inbox.next(['activations', 'parameters'], timeout);
      this.events.onReceive?.(s.id, m.kind!, m);
      if (m.kind === 'parameters') {
        const p = m.parameters as { round: number; numExamples: string; tensors: WireTensor[]; metricsJson: string };
        if (p.round !== round) throw new ProtocolError(`parameters for round ${p.round} during round ${round}`);
        const ctx = this.context(s, round, 0);
        const params = new Map(p.tensors.map((t) => [t.name, decodeTensor(t, { name: t.name, dtype: 'float32' }, ctx).data as Float32Array]));
        if (p.metricsJson) this.lastMetrics.set(s.id, JSON.parse(p.metricsJson));
        return { clientId: s.id, numExamples: Number(p.numExamples), params };
      }
      const a = m.activations as { round: number; step: number; tensor: WireTensor; eval: boolean };
      if (a.round !== round) throw new ProtocolError(`activations for round ${a.round} during round ${round}`);
      const ctx = this.context(s, round, a.step);
      const hA = decodeTensor(a.tensor, { name: 'h_A', dtype: 'float32', shape: [B, S, D] }, ctx);
      const hB = await this.trunk.forward(hA);
      s.call.write({ trunkOut: { round, step: a.step, tensor: encodeTensor('h_B', hB, ctx), eval: a.eval } });
      if (a.eval) continue;
      const g = await s.inbox.next(['tailGrad'], timeout);
      this.events.onReceive?.(s.id, g.kind!, g);
      const tg = g.tailGrad as { round: number; step: number; tensor: WireTensor };
      if (tg.step !== a.step || tg.round !== round) throw new ProtocolError(`tail gradient for step ${tg.step}, expected ${a.step}`);
      const dhB = decodeTensor(tg.tensor, { name: 'grad_h_B', dtype: 'float32', shape: [B, S, D] }, ctx);
      const r = await this.trunk.backward(hA, dhB);
      clipGlobalNorm(r.grads, this.cfg.optimizer.grad_clip);
      const params = new Map(this.trunk.trainable.map((n) => [n, this.store.get(n)!.data]));
      this.optimizer.apply(params, r.grads, learningRate(this.cfg.optimizer.lr, this.cfg.schedule, this.trunkStep, totalSteps));
      this.trunkStep++;
      s.call.write({ headGrad: { round, step: a.step, tensor: encodeTensor('grad_h_A', r.inputGrad!, ctx) } });
    }
  }
}

export interface ExperimentSummaryLike {
  rounds: number;
  roundTimes: number[];
  metrics: Record<string, unknown>[];
}

