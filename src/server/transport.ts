import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, loadProtocol } from '../protocol/load.js';
import { peerIdentity, RevocationChecker, serverCredentials, type PeerIdentity } from '../security/tls.js';
import { UserError } from '../util/errors.js';
import type { SubReply, SubRequest } from './remote-replica.js';

export type SessionHandler = (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>, peer: PeerIdentity) => void;
export type SubServerHandler = (call: grpc.ServerDuplexStream<SubReply, SubRequest>, peer: PeerIdentity) => void;

/** Certificates of sub-servers carry this CN prefix (`flglm keygen --sub-servers`). */
export const SUB_SERVER_CN_PREFIX = 'sub-server.';

export interface TransportOptions {
  host?: string;
  port?: number;
  /** Server startup kit (ca.crt, server.crt, server.key, revoked.json); null = plaintext. */
  kit: string | null;
  onSession?: SessionHandler;
  onSubServer?: SubServerHandler;
  log?: (msg: string) => void;
}

export interface RunningServer {
  server: grpc.Server;
  port: number;
  close(): Promise<void>;
}

const VERSION = '1';

/**
 * The gRPC endpoint: verifies who is calling (certificate CN, revocation list) before any handler
 * sees a message. Plaintext mode names the peer "insecure-<address>" and is for loopback tests.
 */
export async function startTransport(o: TransportOptions): Promise<RunningServer> {
  const { service } = loadProtocol();
  const server = new grpc.Server(CHANNEL_OPTIONS);
  const revocation = o.kit ? new RevocationChecker(o.kit) : null;
  const log = o.log ?? (() => {});

  const identify = (call: Parameters<typeof peerIdentity>[0]): PeerIdentity | { error: grpc.StatusObject } => {
    if (!o.kit) return { clientId: `insecure-${call.getPeer()}`, serial: '', fingerprint256: '' };
    const peer = peerIdentity(call);
    if (!peer) return { error: { code: grpc.status.UNAUTHENTICATED, details: 'no verified client certificate', metadata: new grpc.Metadata() } };
    if (revocation!.isRevoked(peer)) {
      log(`refused revoked client "${peer.clientId}" (serial ${peer.serial})`);
      return { error: { code: grpc.status.PERMISSION_DENIED, details: `client "${peer.clientId}" has been revoked (certificate serial ${peer.serial}); ask the operator for a new kit`, metadata: new grpc.Metadata() } };
    }
    return peer;
  };

  server.addService(service, {
    Hello: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const who = identify(call);
      if ('error' in who) return callback(who.error);
      callback(null, { clientId: who.clientId, serverVersion: VERSION });
    },
    Session: (call: grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>) => {
      const who = identify(call);
      if ('error' in who) {
        call.emit('error', who.error);
        return;
      }
      if (!o.onSession) {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'this server accepts no training sessions' });
        return;
      }
      o.onSession(call, who);
    },
    SubServer: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      const who = identify(call as grpc.ServerDuplexStream<Record<string, unknown>, Record<string, unknown>>);
      if ('error' in who) return void call.emit('error', who.error);
      if (o.kit && !who.clientId.startsWith(SUB_SERVER_CN_PREFIX)) {
        return void call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: `certificate "${who.clientId}" is not a sub-server certificate (make one with flglm keygen --sub-servers)` });
      }
      if (!o.onSubServer) return void call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'this server does not take sub-servers (start it with --mode hierarchical --expect-subs N)' });
      o.onSubServer(call as unknown as grpc.ServerDuplexStream<SubReply, SubRequest>, who);
    },
  });

  const credentials = o.kit ? serverCredentials(o.kit) : grpc.ServerCredentials.createInsecure();
  const address = `${o.host ?? '127.0.0.1'}:${o.port ?? 0}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, p) => (err ? reject(new UserError(`cannot listen on ${address}: ${err.message}`)) : resolve(p))),
  );
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, 2000);
      server.tryShutdown(() => { clearTimeout(timer); resolve(); });
    }),
  };
}
