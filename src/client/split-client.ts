import type * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { peftOf, resolveModel } from '../config/experiment.js';
import { BatchStream, evalBatches } from '../data/batches.js';
import { isPromptExample, type Example } from '../data/examples.js';
import { PartExecutor } from '../runtime/part-executor.js';
import { clipGlobalNorm, createOptimizer, learningRate } from '../runtime/optimizer.js';
import { evaluateBatches, type EvalMetrics } from '../runtime/evaluate.js';
import { Inbox } from '../protocol/inbox.js';
import { decodeTensor, encodeTensor, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import { PayloadChannel, unwrapSessionKey } from '../security/payload.js';
import { readPrivateKey } from '../security/files.js';
import { saveCheckpoint } from '../model/checkpoint.js';
import { connect } from './transport.js';
import { describeConnectError } from '../security/tls.js';
import { UserError } from '../util/errors.js';

type Msg = Record<string, unknown> & { kind?: string };

export interface ClientOptions {
  target: string;
  /** Client startup kit; null = plaintext, no payload encryption (loopback tests only). */
  kit: string | null;
  serverName?: string;
  train: Example[];
  test: Example[];
  checkpointDir?: string | null;
  log?: (msg: string) => void;
  onStep?: (round: number, step: number, loss: number) => void;
  /** Stop after this many local steps in total (fault-injection tests); the process then exits. */
  abortAfterSteps?: number;
}

export interface ClientResult {
  clientId: string;
  losses: number[];
  eval: EvalMetrics | null;
  summary: unknown;
}

/**
 * A client: runs head and tail on its own silo. Token ids and labels never leave it; only h_A
 * (up), dL/dh_B (up), and its trainable head+tail parameters at round end (up, for FedAvg) do.
 */
export async function runClient(o: ClientOptions): Promise<ClientResult> {
  const log = o.log ?? (() => {});
  const conn = connect(o.target, o.kit, o.serverName);
  const call = (conn.client.Session as () => grpc.ClientDuplexStream<Msg, Msg>)();
  const inbox = new Inbox<Msg>();
  call.on('data', (m: Msg) => inbox.push(m));
  call.on('error', (e: grpc.ServiceError) => inbox.fail(new UserError(describeConnectError(e, o.target))));
  call.on('end', () => inbox.fail(new Error('server closed the stream')));
  const heartbeat = setInterval(() => call.write({ heartbeat: { timeMs: Date.now() } }), 2000);
  try {
    call.write({ join: { numExamples: o.train.length, lastRound: 0, capabilities: 'flglm/1' } });
    const first = await inbox.next(['plan', 'error'], 60000);
    if (first.kind === 'error') throw new UserError(`server refused the session: ${(first.error as { message: string }).message}`);
    const cfg = JSON.parse((first.plan as { planJson: string }).planJson) as ExperimentConfig;
    const { config, store, tokenizer } = resolveModel(cfg);
    const peft = peftOf(cfg);
    const runtime = { device: cfg.runtime.device, threads: cfg.runtime.threads };
    const head = new PartExecutor('head', config, cfg.split, peft, store, runtime);
    const tail = new PartExecutor('tail', config, cfg.split, peft, store, runtime);
    const trainable = [...new Set([...head.trainable, ...tail.trainable])];
    const params = new Map(trainable.map((n) => [n, store.get(n)!.data]));
    const optimizer = createOptimizer(cfg.optimizer);
    const stream = new BatchStream(o.train, tokenizer, cfg.data.batch_size, cfg.data.seq_len, cfg.seed);
    const { batch_size: B, seq_len: S } = cfg.data;
    const D = config.hidden_size;
    const totalSteps = cfg.federation.rounds * cfg.federation.local_steps;
    const payloadKey = o.kit && cfg.security?.payload_encryption !== false ? readPrivateKey(join(o.kit, 'payload.key')) : null;
    const losses: number[] = [];
    let evalMetrics: EvalMetrics | null = null;
    let channel: PayloadChannel | null = null;
    let sessionId = '';
    let localStep = 0;
    const ctx = (round: number, step: number): TensorContext => ({ clientId: conn.clientId, sessionId, round, step, channel });
    const timeout = cfg.federation.client_timeout_ms;

    for (;;) {
      const m = await inbox.next(['sessionKey', 'roundStart', 'averaged', 'finished', 'error'], 10 * timeout);
      if (m.kind === 'error') throw new UserError(`server error: ${(m.error as { message: string }).message}`);
      if (m.kind === 'finished') {
        log('training finished');
        return { clientId: conn.clientId, losses, eval: evalMetrics, summary: JSON.parse((m.finished as { summaryJson: string }).summaryJson) };
      }
      if (m.kind === 'sessionKey') {
        const k = m.sessionKey as { round: number; sessionId: string; wrappedKey: Uint8Array };
        sessionId = k.sessionId;
        channel = k.wrappedKey.length && payloadKey ? new PayloadChannel(unwrapSessionKey(k.wrappedKey, payloadKey), 'up') : null;
        continue;
      }
      if (m.kind === 'averaged') {
        const a = m.averaged as { round: number; tensors: WireTensor[] };
        for (const t of a.tensors) {
          const target = params.get(t.name);
          if (!target) throw new UserError(`server sent averaged parameter ${t.name}, which this client does not train`);
          target.set(decodeTensor(t, { name: t.name, dtype: 'float32', shape: [target.length] }, ctx(a.round, 0)).data as Float32Array);
        }
        if (o.checkpointDir) saveCheckpoint(join(o.checkpointDir, conn.clientId), store, { model: config, peft, step: localStep, round: a.round }, optimizer.state());
        continue;
      }
      const { round, localSteps } = m.roundStart as { round: number; localSteps: number };
      let metricsJson = '';
      if (localSteps === 0) {
        const exampleLevel = o.test.some(isPromptExample);
        let evalStep = 0;
        evalMetrics = await evaluateBatches(evalBatches(o.test, tokenizer, B, S, cfg.eval.max_batches), async (b) => {
          const step = ++evalStep;
          const hA = await head.forward(b.tokens);
          call.write({ activations: { round, step, tensor: encodeTensor('h_A', hA, ctx(round, step)), eval: true } });
          const out = await inbox.next(['trunkOut'], timeout);
          const hB = decodeTensor((out.trunkOut as { tensor: WireTensor }).tensor, { name: 'h_B', dtype: 'float32', shape: [B, S, D] }, ctx(round, step));
          return tail.evaluate(hB, b.labels);
        }, exampleLevel);
        metricsJson = JSON.stringify({ eval: evalMetrics, losses });
        log(`eval: loss ${evalMetrics.loss.toFixed(4)}, accuracy ${evalMetrics.accuracy.toFixed(4)}`);
      }
      for (let step = 1; step <= localSteps; step++) {
        const batch = stream.next();
        const hA = await head.forward(batch.tokens);
        call.write({ activations: { round, step, tensor: encodeTensor('h_A', hA, ctx(round, step)), eval: false } });
        const out = await inbox.next(['trunkOut'], timeout);
        const hB = decodeTensor((out.trunkOut as { tensor: WireTensor }).tensor, { name: 'h_B', dtype: 'float32', shape: [B, S, D] }, ctx(round, step));
        const t = await tail.step(hB, batch.labels);
        call.write({ tailGrad: { round, step, tensor: encodeTensor('grad_h_B', t.inputGrad!, ctx(round, step)), loss: t.loss } });
        const hg = await inbox.next(['headGrad'], timeout);
        const dhA = decodeTensor((hg.headGrad as { tensor: WireTensor }).tensor, { name: 'grad_h_A', dtype: 'float32', shape: [B, S, D] }, ctx(round, step));
        const h = await head.backward(batch.tokens, dhA);
        const grads = new Map(t.grads);
        for (const [n, g] of h.grads) {
          const other = grads.get(n);
          if (other) for (let i = 0; i < g.length; i++) other[i] += g[i]; // tied embeddings
          else grads.set(n, g);
        }
        clipGlobalNorm(grads, cfg.optimizer.grad_clip);
        optimizer.apply(params, grads, learningRate(cfg.optimizer.lr, cfg.schedule, localStep, totalSteps));
        localStep++;
        losses.push(t.loss);
        o.onStep?.(round, step, t.loss);
        if (o.abortAfterSteps && localStep >= o.abortAfterSteps) process.exit(3);
      }
      const up = ctx(round, 0);
      call.write({ parameters: { round, numExamples: o.train.length, tensors: trainable.map((n) => encodeTensor(n, { dtype: 'float32', shape: [params.get(n)!.length], data: params.get(n)! }, up)), metricsJson } });
    }
  } finally {
    clearInterval(heartbeat);
    call.end();
    conn.client.close();
  }
}
