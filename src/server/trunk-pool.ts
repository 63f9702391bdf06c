import type { ExperimentConfig } from '../config/schema.js';
import type { Log } from '../util/logger.js';
import type { OptimizerState } from '../training/optimizer.js';
import { weightedAverage } from '../federation/strategies/strategy.js';
import type { ParentSubCall } from '../protocol/messages.js';
import type { PeerIdentity } from '../security/tls.js';
import { RemoteReplica } from './remote-replica.js';
import type { Replica } from './replica.js';
import { TrunkReplica } from './trunk-replica.js';
import type { TrunkWorkerInit } from './trunk-worker.js';
import { copyParam, paramArrays, type StoredParam } from '../model/params.js';
import type { TensorData } from '../runtime/tensor.js';
import { BusyLog } from './busy-log.js';
import type { TrunkOps } from './modes/mode.js';

/** The array is the whole of its buffer, so handing the buffer to a worker hands over nothing else. */
function ownsBuffer(a: ArrayBufferView): boolean {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && !(a.buffer instanceof SharedArrayBuffer);
}

/**
 * The server's trunk replicas (local worker threads, then any sub-servers that attach), each
 * with its own optimizer and learning-rate schedule (in the replica); averaged at round end when
 * there are several. Their work is timed into one busy log.
 */
export class TrunkPool {
  readonly replicas: Replica[] = [];
  /** Trunk optimizer steps each replica has taken (its schedule position, as the replica reports it; checkpointed). */
  trunkSteps: number[] = [];
  readonly busy = new BusyLog();
  /** Told each trunk request's interval (epoch ms), when set: the dashboard's timeline of the trunk's busy time. */
  onBusy?: (r: { replica: number; op: string; key: string; start: number; end: number }) => void;
  /** Steps each replica took this round: the weights of the replica average. */
  private stepsThisRound: number[] = [];
  remoteCount = 0;

  constructor(
    private readonly cfg: ExperimentConfig,
    private readonly init: Omit<TrunkWorkerInit, 'optimizerState' | 'scheduleStep'>,
  ) {}

  /**
   * Start `count` replicas in worker threads. Each needs its own copy of the trunk (onnxruntime-node
   * refuses tensors over shared memory, so replicas cannot feed from one copy); the last replica is
   * handed the server's own arrays instead of a copy, so one replica costs one trunk, not two.
   */
  startLocal(count: number, optimizerState?: OptimizerState): void {
    for (let i = 0; i < count; i++) {
      const last = i === count - 1;
      const params = this.init.params.map(([n, t]): [string, StoredParam] => [
        n,
        last && paramArrays(t).every(ownsBuffer) ? t : copyParam(t),
      ]);
      const transfer = last
        ? [...new Set(params.flatMap(([, t]) => paramArrays(t).map((a) => a.buffer as ArrayBuffer)))]
        : [];
      const scheduleStep = this.trunkSteps[i] ?? 0;
      this.replicas.push(new TrunkReplica(i, { ...this.init, params, optimizerState, scheduleStep }, transfer));
    }
    this.init.params = [];
    if (this.trunkSteps.length !== count) this.trunkSteps = new Array(count).fill(0);
  }

  /** A sub-server attached: give it the trunk as it is now and the training setup, then use it as one more replica. */
  async attachRemote(call: ParentSubCall, peer: PeerIdentity): Promise<Replica> {
    const remote = new RemoteReplica(`sub-server ${peer.clientId}`, call);
    const state = await this.replicas[0].getState();
    await remote.init({ ...this.init, params: state.params }, this.cfg.federation.chunk_bytes);
    this.replicas.push(remote);
    this.trunkSteps.push(0);
    this.remoteCount++;
    return remote;
  }

  /** A sub-server's stream: attach it as a replica; false if it could not. */
  async attachSubServer(call: ParentSubCall, peer: PeerIdentity, log: Log): Promise<boolean> {
    try {
      const remote = await this.attachRemote(call, peer);
      log(`${remote.label} attached: ${this.replicas.length} trunk replicas`);
      return true;
    } catch (e) {
      log(`sub-server ${peer.clientId} could not attach: ${(e as Error).message}`);
      return false;
    }
  }

  /** A training round begins: each replica learns its schedule's length (`totalSteps` trunk steps over the federation). */
  async startRound(totalSteps: number): Promise<void> {
    this.stepsThisRound = [];
    await Promise.all(this.replicas.map((r) => r.startRound(totalSteps)));
  }

  /** Replica `i` for a training round's mode: timed, its steps counted for the checkpoint and the average. */
  trunk(i: number): TrunkOps {
    const r = this.replicas[i];
    return {
      forward: (key, hA) => this.timed(i, 'forward', key, r.forward(key, hA, true)),
      backward: (key, dhB) => this.timed(i, 'backward', key, r.backward(key, dhB)),
      apply: async (key, norm) => {
        const { step } = await this.timed(i, 'apply', key, r.apply(key, norm));
        this.trunkSteps[i] = step;
        this.stepsThisRound[i] = (this.stepsThisRound[i] ?? 0) + 1;
      },
      drop: (key) => r.drop(key),
    };
  }

  /** An evaluation forward on replica `i` (nothing kept for a backward). */
  forward(i: number, key: string, hA: TensorData): Promise<TensorData> {
    return this.timed(i, 'eval', key, this.replicas[i].forward(key, hA, false));
  }

  private timed<T>(replica: number, op: string, key: string, work: Promise<T>): Promise<T> {
    const timed = this.busy.time(replica, work);
    const onBusy = this.onBusy;
    if (!onBusy) return timed;
    const now = () => Math.round((performance.timeOrigin + performance.now()) * 100) / 100; // epoch ms to 10 µs
    const start = now();
    return timed.finally(() => onBusy({ replica, op, key, start, end: now() }));
  }

  /**
   * Replicas averaged through the strategies' weighted mean, weighted by the steps each took this
   * round. The mean is written into shared memory, so every worker gets it without a copy on this
   * thread and copies it for itself in parallel (cloning a `small` trunk to two workers here took
   * 150-360 ms of the round's end; round-cost benchmark).
   */
  async average(): Promise<void> {
    if (this.replicas.length < 2) return;
    const all = await Promise.all(this.replicas.map((r) => r.getParams()));
    const avg = weightedAverage(
      all.map((params, i) => ({ weight: this.stepsThisRound[i] ?? 0, params: new Map(params) })),
      (n) => new Float32Array(new SharedArrayBuffer(4 * n)),
    );
    await Promise.all(this.replicas.map((r) => r.setParams([...avg])));
  }

  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.close()));
  }
}
