import { connect } from '../client/transport.js';
import { describeConnectError } from '../security/tls.js';
import { UserError } from '../util/errors.js';
import { TrunkReplica } from './trunk-replica.js';
import { splitTensorSet } from '../protocol/chunking.js';
import type { ServiceError } from '@grpc/grpc-js';
import type { SubRequest, SubServerCall } from '../protocol/messages.js';
import type { ReplicaOp } from './replica.js';
import type { SubServerOp } from './remote-replica.js';
import { packValue, unpackValue } from './replica-wire.js';
import type { TrunkWorkerInit } from './trunk-worker.js';

/**
 * `flglm server --role sub --parent HOST:PORT`: hosts one trunk replica (in a worker thread) for a
 * hierarchical parent on another process or machine. It connects out to the parent, receives the
 * trunk and training setup, then answers the replica table's requests until the parent ends.
 */
export async function runSubServer(o: {
  parent: string;
  kit: string | null;
  serverName?: string;
  log?: (m: string) => void;
}): Promise<void> {
  const log = o.log ?? (() => {});
  const conn = connect(o.parent, o.kit, o.serverName);
  const call: SubServerCall = conn.client.SubServer();
  let replica = null as TrunkReplica | null;
  let chunkBytes = Number.POSITIVE_INFINITY;
  let queue = Promise.resolve();
  await new Promise<void>((resolve, reject) => {
    call.on('data', (req: SubRequest) => {
      queue = queue.then(async () => {
        try {
          const { json, tensors } = packValue(await handle(req.op as SubServerOp, unpackValue(req.json, req.tensors)));
          // The parent takes no message over its chunk_bytes (plus framing): large replies go in parts.
          const groups = splitTensorSet(tensors, chunkBytes);
          groups.forEach((part, i) =>
            call.write({
              id: req.id,
              ok: true,
              error: '',
              json,
              tensors: part,
              partIndex: i,
              partCount: groups.length,
            }),
          );
          if (req.op === 'close') call.end();
        } catch (e) {
          call.write({ id: req.id, ok: false, error: (e as Error).message, json: '', tensors: [] });
        }
      });
    });
    call.on('error', (e: ServiceError) => reject(new UserError(describeConnectError(e, o.parent))));
    call.on('end', () => resolve());
  });
  await replica?.close();
  conn.client.close();

  async function handle(op: SubServerOp, args: unknown): Promise<unknown> {
    if (op === 'init') {
      const setup = args as { init: TrunkWorkerInit; chunkBytes: number };
      if (setup.chunkBytes) chunkBytes = setup.chunkBytes;
      await replica?.close();
      replica = new TrunkReplica(0, setup.init);
      log(`trunk replica ready: ${setup.init.params.length} tensors`);
      return null;
    }
    if (op === 'close') return null;
    if (!replica) throw new Error('sub-server has no trunk yet (init first)');
    return replica.request(op as ReplicaOp, args as never);
  }
}
