import type * as grpc from '@grpc/grpc-js';
import { connect } from '../client/transport.js';
import { describeConnectError } from '../security/tls.js';
import { UserError } from '../util/errors.js';
import { TrunkReplica } from './trunk-replica.js';
import { dec, enc, type SubReply, type SubRequest } from './remote-replica.js';
import { splitTensorSet } from '../protocol/chunking.js';
import type { TrunkWorkerInit } from './trunk-worker.js';

/**
 * `flglm server --role sub --parent HOST:PORT`: hosts one trunk replica (in a worker thread) for a
 * hierarchical parent on another process or machine. It connects out to the parent, receives the
 * trunk and training setup, then answers forward/backward/parameter requests until the parent ends.
 */
export async function runSubServer(o: { parent: string; kit: string | null; serverName?: string; log?: (m: string) => void }): Promise<void> {
  const log = o.log ?? (() => {});
  const conn = connect(o.parent, o.kit, o.serverName);
  const call = (conn.client.SubServer as () => grpc.ClientDuplexStream<SubReply, SubRequest>)();
  let replica = null as TrunkReplica | null;
  let chunkBytes = Number.POSITIVE_INFINITY;
  let queue = Promise.resolve();
  await new Promise<void>((resolve, reject) => {
    call.on('data', (req: SubRequest) => {
      queue = queue.then(async () => {
        try {
          const r = await handle(req);
          // The parent takes no message over its chunk_bytes (plus framing): large replies go in parts.
          const groups = splitTensorSet(r.tensors ?? [], chunkBytes);
          groups.forEach((tensors, i) => call.write({ id: req.id, ok: true, error: '', json: JSON.stringify(r.json ?? {}), tensors, partIndex: i, partCount: groups.length }));
          if (req.op === 'close') call.end();
        } catch (e) {
          call.write({ id: req.id, ok: false, error: (e as Error).message, json: '', tensors: [] });
        }
      });
    });
    call.on('error', (e: grpc.ServiceError) => reject(new UserError(describeConnectError(e, o.parent))));
    call.on('end', () => resolve());
  });
  await replica?.close();
  conn.client.close();

  async function handle(req: SubRequest): Promise<{ json?: object; tensors?: ReturnType<typeof enc>[] }> {
    const args = req.json ? JSON.parse(req.json) : {};
    if (req.op === 'init') {
      const { chunkBytes: chunk, ...setup } = args as { chunkBytes?: number };
      if (chunk) chunkBytes = chunk;
      const init: TrunkWorkerInit = { ...(setup as Omit<TrunkWorkerInit, 'params'>), params: req.tensors.map((t) => [t.name, { shape: t.shape.map(Number), data: dec(t).data as Float32Array }]) };
      await replica?.close();
      replica = new TrunkReplica(0, init);
      log(`trunk replica ready: ${req.tensors.length} tensors`);
      return {};
    }
    if (!replica) throw new Error('sub-server has no trunk yet (init first)');
    switch (req.op) {
      case 'forward': return { tensors: [enc('h_B', await replica.forward(args.key, dec(req.tensors[0]), args.keep))] };
      case 'backward': {
        const r = await replica.backward(args.key, dec(req.tensors[0]));
        return { json: { gradNorm: r.gradNorm }, tensors: [enc('grad_h_A', r.dhA)] };
      }
      case 'apply': await replica.apply(args.key, args.lr, args.scale); return {};
      case 'drop': await replica.drop(args.key); return {};
      case 'getParams': return { tensors: (await replica.getParams()).map(([n, d]) => enc(n, { dtype: 'float32', shape: [d.length], data: d })) };
      case 'setParams': await replica.setParams(req.tensors.map((t) => [t.name, dec(t).data as Float32Array])); return {};
      case 'getState': {
        const s = await replica.getState();
        const slots = Object.entries(s.optimizer.slots).flatMap(([n, arrs]) => arrs.map((a, i) => enc(`slot:${n}#${i}`, { dtype: 'float32', shape: [a.length], data: a })));
        return { json: { name: s.optimizer.name, step: s.optimizer.step }, tensors: [...s.params.map(([n, t]) => enc(n, { dtype: 'float32', shape: t.shape, data: t.data })), ...slots] };
      }
      case 'close': return {};
      default: throw new Error(`unknown request ${req.op}`);
    }
  }
}
