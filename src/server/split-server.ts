import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, resolveModel } from '../config/experiment.js';
import { learningRate } from '../runtime/optimizer.js';
import { partParamNames } from '../model/partition.js';
import { FedAvg, type ClientUpdate, type Strategy } from '../federation/strategy.js';
import { Inbox } from '../protocol/inbox.js';
import { decodeTensor, encodeTensor, ProtocolError, type WireTensor } from '../protocol/tensors.js';
import { newSessionKey, PayloadChannel, wrapSessionKey } from '../security/payload.js';
import type { PeerIdentity, RevocationChecker } from '../security/tls.js';
import { LogLimiter } from '../util/log-limiter.js';
import { clientLimits, type ClientLimits, type ClientPartSpec } from './client-limits.js';
import { clientPartSpec, decodeClientParameters } from './client-update.js';
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint.js';
import type { ModelConfig } from '../model/config.js';
import type { NamedTensor } from '../model/safetensors.js';
import { UserError } from '../util/errors.js';
import { ClientSession, type Call, type Msg } from './client-session.js';
import { reassembling } from '../protocol/chunking.js';
import { TrunkReplica } from './trunk-replica.js';
import type { Replica } from './replica.js';
import { RemoteReplica, type SubReply, type SubRequest } from './remote-replica.js';
import type * as grpc from '@grpc/grpc-js';
import { runBatchedSteps } from './batch-steps.js';
import { BusyLog } from './busy-log.js';

export type ServerMode = 'sequential' | 'batch' | 'hierarchical';

export interface ServerOptions {
  cfg: ExperimentConfig;
  /** Server startup kit (for payload keys); null = plaintext without payload encryption. */
  kit: string | null;
  /** Checked on every message of a live session: a revoked client is dropped within one step. */
  revocation?: RevocationChecker | null;
  mode?: ServerMode;
  checkpointDir?: string | null;
  resume?: boolean;
  log?: (msg: string) => void;
  /** Hierarchical mode: wait for this many sub-servers (`flglm server --role sub`) to attach. */
  expectSubServers?: number;
  /** Every message decoded from a client (audits, tests). */
  onReceive?: (clientId: string, kind: string, body: Msg) => void;
  /** Metrics records (per step and per round), e.g. appended to metrics.jsonl. */
  onMetric?: (record: Record<string, unknown>) => void;
}

export interface RoundRecord {
  round: number;
  clients: string[];
  dropped: string[];
  wall_s: number;
  train_loss: number;
  tokens: number;
  /** Seconds the trunk replicas computed, summed, and how much of that ran at the same time. */
  replica_busy_s: number;
  replica_overlap_s: number;
}

export interface ServerSummary {
  mode: ServerMode;
  rounds: number;
  history: RoundRecord[];
  eval: { clientId: string; eval?: unknown }[];
}

/**
 * The FL-GLM server: owns the trunk (as one or more replicas in worker threads), runs rounds in
 * sequential, batch or hierarchical mode, averages client parts with a Strategy, keeps the latest
 * global client parts to re-sync (re)joining clients, and checkpoints atomically every round.
 */
export class SplitServer {
  readonly mode: ServerMode;
  private readonly cfg: ExperimentConfig;
  private readonly sessions = new Map<string, ClientSession>();
  private replicas: Replica[] = [];
  private remoteCount = 0;
  private readonly strategy: Strategy = new FedAvg();
  private model!: ModelConfig;
  /** What each client must send at round end, and what it may make the server hold. */
  private partSpec!: ClientPartSpec;
  limits!: ClientLimits;
  private refusals!: LogLimiter;
  private globalClientParams: Map<string, Float32Array> | null = null;
  private completedRound = 0;
  private trunkSteps: number[] = [];
  private history: RoundRecord[] = [];
  private readonly lastMetrics = new Map<string, Record<string, unknown>>();
  private readonly busy = new BusyLog();
  private started = false;
  private startTimer: NodeJS.Timeout | null = null;
  private readonly log: (msg: string) => void;
  readonly done: Promise<ServerSummary>;
  private resolveDone!: (s: ServerSummary) => void;
  private rejectDone!: (e: Error) => void;

  constructor(private readonly o: ServerOptions) {
    this.cfg = o.cfg;
    this.mode = o.mode ?? o.cfg.federation.mode;
    this.log = o.log ?? (() => {});
    this.refusals = new LogLimiter(this.log);
    this.done = new Promise((resolve, reject) => { this.resolveDone = resolve; this.rejectDone = reject; });
    this.done.catch(() => {});
  }

  /** Build the trunk replicas, from the last checkpoint when resuming. */
  async init(): Promise<void> {
    const { config, store } = resolveModel(this.cfg);
    this.model = config;
    this.partSpec = clientPartSpec(this.cfg, config, store);
    this.limits = clientLimits(this.cfg, config, this.partSpec);
    const peft = peftOf(this.cfg);
    let optimizerState;
    const ckpt = this.o.checkpointDir ? join(this.o.checkpointDir, 'latest') : null;
    if (this.o.resume) {
      if (!ckpt || !existsSync(join(ckpt, 'checkpoint.json'))) throw new UserError(`--resume: no complete server checkpoint in ${ckpt ?? '(no --checkpoints folder given)'}`);
      const loaded = loadCheckpoint(ckpt);
      for (const [n, t] of loaded.store) store.set(n, t);
      optimizerState = loaded.optimizer;
      const extra = (loaded.meta.extra ?? {}) as { round: number; trunkSteps: number[]; history: RoundRecord[] };
      this.completedRound = extra.round;
      this.trunkSteps = extra.trunkSteps;
      this.history = extra.history;
      if (loaded.extra) this.globalClientParams = new Map([...loaded.extra].map(([n, t]) => [n, t.data]));
      this.log(`resumed from ${ckpt}: round ${this.completedRound} of ${this.cfg.federation.rounds} complete`);
    }
    const count = this.mode === 'hierarchical' ? this.cfg.federation.sub_servers : 1;
    const threads = this.cfg.runtime.threads ?? Math.max(1, Math.floor(cpus().length / count));
    const trunkNames = new Set(partParamNames('trunk', config, this.cfg.split, store));
    const params = [...store].filter(([n]) => trunkNames.has(n)) as [string, NamedTensor][];
    for (let i = 0; i < count; i++) {
      this.replicas.push(new TrunkReplica(i, {
        model: config, split: this.cfg.split, peft, optimizer: this.cfg.optimizer, runtime: { device: this.cfg.runtime.device, threads, spinning: false },
        params: params.map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(t.data) }]), optimizerState,
      }));
    }
    if (this.trunkSteps.length !== count) this.trunkSteps = new Array(count).fill(0);
  }

  /** gRPC Session handler: authenticate payload keys, register, send the plan, re-sync parts. */
  onSession = (call: Call, peer: PeerIdentity): void => {
    const inbox = new Inbox<Msg>(this.limits.queue);
    const receive = reassembling((m) => inbox.push(m), (e) => inbox.fail(e), this.limits.chunks);
    call.on('data', (m: Msg) => {
      if (inbox.failed) return;
      const revoked = this.revokedReason(peer);
      if (revoked) return this.cutOff(peer.clientId, inbox, revoked);
      receive(m);
    });
    call.on('error', (e) => inbox.fail(e));
    call.on('end', () => inbox.fail(new Error('client closed the stream')));
    call.on('cancelled', () => inbox.fail(new Error('client cancelled the stream')));
    void (async () => {
      try {
        const joinMsg = await inbox.next(['join'], this.cfg.federation.client_timeout_ms);
        let payloadPublicKey: string | null = null;
        if (this.o.kit && this.cfg.security.payload_encryption) {
          const path = join(this.o.kit, 'payload-keys', `${peer.clientId}.pub`);
          if (!existsSync(path)) throw new ProtocolError(`unknown client "${peer.clientId}": the server has no payload key for it (${path}); add it with \`flglm keygen add-client ${peer.clientId}\``);
          payloadPublicKey = readFileSync(path, 'utf8');
        }
        const j = joinMsg.join as { numExamples: string; lastRound: number; insecureName: string };
        // Without TLS there is no certificate; plaintext clients name themselves (loopback tests only).
        if (!this.o.kit && j.insecureName && !/^[A-Za-z0-9._-]{1,64}$/.test(j.insecureName)) throw new ProtocolError('join: insecure_name must be 1-64 letters, digits, ".", "_" or "-"');
        if (!this.o.kit) peer = { ...peer, clientId: j.insecureName ? `insecure-${j.insecureName}` : peer.clientId };
        const numExamples = Number(j.numExamples);
        if (!Number.isFinite(numExamples) || numExamples <= 0) throw new ProtocolError(`join: num_examples must be positive, got ${j.numExamples}`);
        const previous = this.sessions.get(peer.clientId);
        if (previous) previous.close('replaced by a new session of the same client');
        const s = new ClientSession(peer, call, inbox, numExamples, payloadPublicKey, this.cfg.federation.chunk_bytes);
        this.sessions.set(peer.clientId, s);
        s.startHeartbeats(this.cfg.federation.heartbeat_ms);
        this.log(`client ${peer.clientId} joined with ${numExamples} examples (last round ${j.lastRound}; ${this.sessions.size}/${this.cfg.federation.clients} connected)`);
        s.send({ plan: { planJson: JSON.stringify(this.plan()) } });
        if (this.globalClientParams) this.sendAveraged(s, this.completedRound, this.globalClientParams);
        this.maybeStart();
      } catch (e) {
        // Keyed by certificate id, or by address without the port for plaintext peers.
        this.refusals.log(peer.clientId.replace(/:\d+$/, ''), `refused a session from ${peer.clientId}: ${(e as Error).message}`);
        try { call.write({ error: { code: 'REFUSED', message: (e as Error).message } }); call.end(); } catch { /* gone */ }
      }
    })();
  };

  /** Why this peer may no longer talk to the server (revoked, or the list is unreadable: fail closed), or null. */
  private revokedReason(peer: PeerIdentity): string | null {
    if (!this.o.revocation) return null;
    try {
      return this.o.revocation.isRevoked(peer) ? `client "${peer.clientId}" has been revoked (certificate serial ${peer.serial})` : null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** End a live session at once: its pending and next reads fail, and it gets no further keys. */
  private cutOff(clientId: string, inbox: Inbox<Msg>, reason: string): void {
    inbox.fail(new ProtocolError(reason));
    const s = this.sessions.get(clientId);
    if (s && s.inbox === inbox) {
      this.sessions.delete(clientId);
      s.close(reason);
    }
    this.refusals.log(`cut:${clientId}`, `cut off ${clientId}: ${reason}`);
  }

  /**
   * A sub-server attached (hierarchical scale-out): give it the trunk and training setup, then use
   * it as one more replica. Clients are spread over all replicas from the next round on.
   */
  onSubServer = (call: grpc.ServerDuplexStream<SubReply, SubRequest>, peer: PeerIdentity): void => {
    void (async () => {
      if (this.mode !== 'hierarchical') {
        call.emit('error', { code: 9, details: `sub-servers need --mode hierarchical (this server runs ${this.mode})` });
        return;
      }
      const remote = new RemoteReplica(`sub-server ${peer.clientId}`, call);
      try {
        const state = await this.replicas[0].getState();
        await remote.init({ model: this.model, split: this.cfg.split, peft: peftOf(this.cfg), optimizer: this.cfg.optimizer, runtime: { device: this.cfg.runtime.device, threads: this.cfg.runtime.threads, spinning: false } }, state.params, this.cfg.federation.chunk_bytes);
        this.replicas.push(remote);
        this.trunkSteps.push(0);
        this.remoteCount++;
        this.log(`${remote.label} attached: ${this.replicas.length} trunk replicas`);
        this.maybeStart();
      } catch (e) {
        this.log(`${remote.label} could not attach: ${(e as Error).message}`);
      }
    })();
  };

  private maybeStart(): void {
    if (this.started) return;
    const f = this.cfg.federation;
    if (this.remoteCount < (this.o.expectSubServers ?? 0)) return;
    if (this.sessions.size >= f.clients) return this.start();
    if (!this.startTimer) {
      // Start with fewer clients (>= min_clients) if the rest do not come in time.
      this.startTimer = setTimeout(() => { if (!this.started && this.sessions.size >= f.min_clients && this.remoteCount >= (this.o.expectSubServers ?? 0)) this.start(); }, f.client_timeout_ms);
    }
  }

  private start(): void {
    this.started = true;
    if (this.startTimer) clearTimeout(this.startTimer);
    this.run().then(this.resolveDone, this.rejectDone);
  }

  private plan(): Partial<ExperimentConfig> {
    return { ...this.cfg, data: { ...this.cfg.data, silos: null, test: null }, security: { ...this.cfg.security, pki: null }, federation: { ...this.cfg.federation, mode: this.mode } };
  }

  private async run(): Promise<ServerSummary> {
    const f = this.cfg.federation;
    try {
      for (let round = this.completedRound + 1; round <= f.rounds; round++) await this.trainRound(round);
      const evals = await this.evalRound(f.rounds + 1);
      for (const s of this.sessions.values()) {
        s.send({ finished: { summaryJson: JSON.stringify({ history: this.history, eval: evals }) } });
        s.close();
      }
      return { mode: this.mode, rounds: f.rounds, history: this.history, eval: evals };
    } finally {
      await Promise.all(this.replicas.map((r) => r.close()));
    }
  }

  /** Stop the trunk workers (also when training never started or failed). */
  async close(): Promise<void> {
    if (this.startTimer) clearTimeout(this.startTimer);
    await Promise.all(this.replicas.map((r) => r.close()));
  }

  /** Drop a client from the round (it may rejoin later), telling it why. */
  dropClient(s: ClientSession, round: number, err: Error): void {
    this.log(`client ${s.id} dropped from round ${round}: ${err.message}`);
    this.o.onMetric?.({ type: 'drop', round, client: s.id, reason: err.message, time: Date.now() });
    if (this.sessions.get(s.id) === s) this.sessions.delete(s.id);
    s.close(err.message);
  }

  /** Fresh per-round payload key (keys rotate every round) and the round's start message. */
  private openRound(s: ClientSession, round: number, localSteps: number): void {
    s.sessionId = randomUUID();
    s.examplesThisRound = 0;
    if (s.payloadPublicKey) {
      const key = newSessionKey();
      s.channel = new PayloadChannel(key, 'down');
      s.send({ sessionKey: { round, sessionId: s.sessionId, wrappedKey: wrapSessionKey(key, s.payloadPublicKey) } });
    } else {
      s.channel = null;
      s.send({ sessionKey: { round, sessionId: s.sessionId, wrappedKey: Buffer.alloc(0) } });
    }
    s.send({ roundStart: { round, localSteps } });
  }

  /** Trunk optimizer steps a replica takes over the whole run (for the learning-rate schedule). */
  private scheduleTotal(participants: number): number {
    const f = this.cfg.federation;
    const perReplica = this.mode === 'hierarchical' ? Math.ceil(participants / this.replicas.length) : this.mode === 'batch' ? Math.ceil(participants / f.batch_clients) : participants;
    return f.rounds * f.local_steps * Math.max(1, perReplica);
  }

  lr(replica: number, participants: number): number {
    return learningRate(this.cfg.optimizer.lr, this.cfg.schedule, this.trunkSteps[replica]++, this.scheduleTotal(participants));
  }

  private async trainRound(round: number): Promise<void> {
    const f = this.cfg.federation;
    const t0 = performance.now();
    const participants = this.liveSessions(round);
    if (participants.length < f.min_clients) throw new Error(`round ${round}: ${participants.length} clients connected, min_clients is ${f.min_clients}`);
    for (const s of participants) this.openRound(s, round, f.local_steps);
    const losses: number[] = [];
    let tokens = 0;
    const onStep = (s: ClientSession, step: number, loss: number, n: number) => {
      losses.push(loss);
      tokens += n;
      this.o.onMetric?.({ type: 'step', round, step, client: s.id, loss, time: Date.now() });
    };
    let survivors: ClientSession[];
    if (this.mode === 'batch') {
      survivors = await runBatchedSteps(this, participants, round, f.local_steps, onStep);
    } else if (this.mode === 'hierarchical') {
      const results = await Promise.all(participants.map((s, i) => this.serveSteps(s, this.replicas[i % this.replicas.length], i % this.replicas.length, round, f.local_steps, participants.length, onStep).then(() => s, (e: Error) => { this.dropClient(s, round, e); return null; })));
      survivors = results.filter((s): s is ClientSession => s !== null);
    } else {
      survivors = [];
      for (const s of participants) {
        try { await this.serveSteps(s, this.replicas[0], 0, round, f.local_steps, participants.length, onStep); survivors.push(s); } catch (e) { this.dropClient(s, round, e as Error); }
      }
    }
    const updates: ClientUpdate[] = [];
    await Promise.all(survivors.map(async (s) => {
      try { updates.push(await this.receiveParameters(s, round)); } catch (e) { this.dropClient(s, round, e as Error); }
    }));
    if (updates.length < f.min_clients) throw new Error(`round ${round}: only ${updates.length} clients finished it, min_clients is ${f.min_clients}`);
    updates.sort((a, b) => a.clientId.localeCompare(b.clientId));
    this.globalClientParams = this.strategy.aggregate(round, updates);
    for (const u of updates) { const s = this.sessions.get(u.clientId); if (s) this.sendAveraged(s, round, this.globalClientParams); }
    if (this.replicas.length > 1) await this.averageReplicas();
    const [busy, overlap] = this.busy.take();
    const record: RoundRecord = {
      replica_busy_s: busy, replica_overlap_s: overlap,
      round, clients: updates.map((u) => u.clientId), dropped: participants.filter((p) => !updates.some((u) => u.clientId === p.id)).map((p) => p.id),
      wall_s: (performance.now() - t0) / 1000, train_loss: losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : NaN, tokens,
    };
    this.history.push(record);
    this.completedRound = round;
    await this.checkpoint(round);
    this.o.onMetric?.({ type: 'round', ...record, time: Date.now() });
    const parallel = this.replicas.length > 1 ? `, replicas busy ${busy.toFixed(1)} s (${overlap.toFixed(1)} s in parallel)` : '';
    this.log(`round ${round}/${f.rounds}: ${updates.length} clients, loss ${record.train_loss.toFixed(4)}, ${record.wall_s.toFixed(1)} s${parallel}${record.dropped.length ? `, dropped ${record.dropped.join(', ')}` : ''}`);
  }

  /** The connected clients, less any revoked since the last round: no new session key for them. */
  private liveSessions(round: number): ClientSession[] {
    for (const s of [...this.sessions.values()]) {
      const revoked = this.revokedReason(s.peer);
      if (revoked) this.dropClient(s, round, new ProtocolError(revoked));
    }
    return [...this.sessions.values()];
  }

  private async evalRound(round: number): Promise<{ clientId: string; eval?: unknown }[]> {
    const participants = this.liveSessions(round);
    for (const s of participants) this.openRound(s, round, 0);
    const results = await Promise.all(participants.map(async (s) => {
      try {
        await this.serveSteps(s, this.replicas[0], 0, round, 0, participants.length, () => {});
        await this.receiveParameters(s, round);
        return { clientId: s.id, eval: this.lastMetrics.get(s.id)?.eval };
      } catch (e) {
        this.dropClient(s, round, e as Error);
        return null;
      }
    }));
    return results.filter((r) => r !== null);
  }

  private sendAveraged(s: ClientSession, round: number, params: Map<string, Float32Array>): void {
    const ctx = s.context(round, 0);
    s.send({ averaged: { round, tensors: [...params].map(([name, data]) => encodeTensor(name, { dtype: 'float32', shape: [data.length], data }, ctx)) } });
  }

  private async averageReplicas(): Promise<void> {
    const all = await Promise.all(this.replicas.map((r) => r.getParams()));
    const avg: [string, Float32Array][] = all[0].map(([name, first], k) => {
      const out = new Float32Array(first.length);
      for (const params of all) { const p = params[k][1]; for (let i = 0; i < p.length; i++) out[i] += p[i] / all.length; }
      return [name, out];
    });
    await Promise.all(this.replicas.map((r) => r.setParams(avg)));
  }

  private async checkpoint(round: number): Promise<void> {
    if (!this.o.checkpointDir) return;
    const state = await this.replicas[0].getState();
    const extra = new Map<string, NamedTensor>([...(this.globalClientParams ?? [])].map(([n, d]) => [n, { shape: [d.length], data: d }]));
    saveCheckpoint(join(this.o.checkpointDir, 'latest'), new Map(state.params), {
      model: this.model, peft: peftOf(this.cfg), step: this.trunkSteps[0], round,
      extra: { round, trunkSteps: this.trunkSteps, history: this.history, mode: this.mode },
    }, state.optimizer, extra);
  }

  /** Expect a tensor message of one kind for (round, step), decoded and shape-checked. */
  async expectStep(s: ClientSession, kind: 'activations' | 'tailGrad', round: number, step: number | null, name: string, timeoutMs = this.cfg.federation.client_timeout_ms) {
    const m = await s.inbox.next([kind], timeoutMs);
    this.o.onReceive?.(s.id, kind, m);
    const st = m[kind] as { round: number; step: number; tensor: WireTensor; loss: number; eval: boolean; labelCount: number };
    if (st.round !== round) throw new ProtocolError(`${kind} for round ${st.round} during round ${round}`);
    if (step !== null && st.step !== step) throw new ProtocolError(`${kind} for step ${st.step}, expected step ${step}`);
    const { batch_size: B, seq_len: S } = this.cfg.data;
    // Non-finite activations or gradients would poison the shared trunk for every client.
    const tensor = decodeTensor(st.tensor, { name, dtype: 'float32', shape: [B, S, this.model.hidden_size], finite: true }, s.context(round, st.step), this.limits.stepTensorBytes);
    if (kind === 'tailGrad') {
      if (!Number.isFinite(st.loss)) throw new ProtocolError(`tail_grad: non-finite loss ${st.loss}`);
      if (!(st.labelCount >= 0 && st.labelCount <= B * S)) throw new ProtocolError(`tail_grad: label_count ${st.labelCount} is outside 0..${B * S}`);
    } else if (!st.eval) s.examplesThisRound += tensor.shape[0];
    return { step: st.step, tensor, loss: st.loss, eval: st.eval, labelCount: st.labelCount };
  }

  /** One client's local steps (or, with 0 steps, its evaluation requests) against one replica. */
  private async serveSteps(s: ClientSession, replica: Replica, index: number, round: number, localSteps: number, participants: number, onStep: (s: ClientSession, step: number, loss: number, n: number) => void): Promise<void> {
    if (localSteps === 0) {
      // Evaluation: the client sends eval activations until it sends its parameters (with metrics).
      for (;;) {
        const kind = await s.inbox.peekKind(this.cfg.federation.client_timeout_ms);
        if (kind === 'parameters') return;
        const a = await this.expectStep(s, 'activations', round, null, 'h_A');
        if (!a.eval) throw new ProtocolError('training activations during the evaluation round');
        const hB = await replica.forward(`${s.id}:eval`, a.tensor, false);
        s.send({ trunkOut: { round, step: a.step, tensor: encodeTensor('h_B', hB, s.context(round, a.step)), eval: true } });
      }
    }
    for (let step = 1; step <= localSteps; step++) {
      const key = `${s.id}:${round}:${step}`;
      const a = await this.expectStep(s, 'activations', round, step, 'h_A');
      const hB = await this.busy.time(index, replica.forward(key, a.tensor, true));
      s.send({ trunkOut: { round, step, tensor: encodeTensor('h_B', hB, s.context(round, step)), eval: false } });
      let g;
      try {
        g = await this.expectStep(s, 'tailGrad', round, step, 'grad_h_B');
      } catch (e) {
        await replica.drop(key);
        throw e;
      }
      const { dhA } = await this.busy.time(index, replica.backward(key, g.tensor, this.lr(index, participants)));
      s.send({ headGrad: { round, step, tensor: encodeTensor('grad_h_A', dhA, s.context(round, step)) } });
      onStep(s, step, g.loss, a.tensor.shape[0] * a.tensor.shape[1]);
    }
  }

  private async receiveParameters(s: ClientSession, round: number): Promise<ClientUpdate> {
    const m = await s.inbox.next(['parameters'], this.cfg.federation.client_timeout_ms);
    this.o.onReceive?.(s.id, 'parameters', m);
    const p = m.parameters as { round: number; numExamples: string; tensors: WireTensor[]; metricsJson: string };
    if (p.round !== round) throw new ProtocolError(`parameters for round ${p.round} during round ${round}`);
    const params = decodeClientParameters(p.tensors, this.partSpec, s.context(round, 0));
    const claimed = Number(p.numExamples);
    if (!Number.isFinite(claimed) || claimed < 0) throw new ProtocolError(`parameters: invalid num_examples ${p.numExamples}`);
    if (p.metricsJson) {
      try { this.lastMetrics.set(s.id, JSON.parse(p.metricsJson)); } catch { throw new ProtocolError('parameters: metrics_json is not JSON'); }
    }
    // A client's weight is what the server saw it train on this round (rows of h_A), never more
    // than it claims: a claimed count cannot buy a larger share of the average.
    return { clientId: s.id, numExamples: Math.min(claimed, s.examplesThisRound), params };
  }

  get config(): ExperimentConfig {
    return this.cfg;
  }
  /** Time a replica call into this round's busy log. */
  timed<T>(replica: number, work: Promise<T>): Promise<T> {
    return this.busy.time(replica, work);
  }
  replica(i: number): Replica {
    return this.replicas[i];
  }
}
