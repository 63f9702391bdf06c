import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { CHANNEL_OPTIONS, loadProtocol } from '../protocol/load.js';
import { raiseReceiveWindows } from './receive-window.js';
import { peerIdentity, RevocationChecker, serverCredentials, type PeerIdentity } from '../security/tls.js';
import { UserError } from '../util/errors.js';
import { LogLimiter } from '../util/log-limiter.js';
import { isLoopbackHost } from '../util/net.js';
import {
  PROTOCOL_VERSION,
  type ParentSubCall,
  type ServerGenerateCall,
  type ServerSessionCall,
} from '../protocol/messages.js';
import type { HelloReply } from '../protocol/generated/flglm/v1/HelloReply.js';
import type { ServerHealth } from './health.js';

export type SessionHandler = (call: ServerSessionCall, peer: PeerIdentity) => void;
export type SubServerHandler = (call: ParentSubCall, peer: PeerIdentity) => void;
export type GenerateHandler = (call: ServerGenerateCall, peer: PeerIdentity) => void;

/** Certificates of sub-servers carry this CN prefix (`flglm keygen --sub-servers`). */
export const SUB_SERVER_CN_PREFIX = 'sub-server.';

export interface TransportOptions {
  host?: string;
  port?: number;
  /** Server startup kit (ca.crt, server.crt, server.key); null = plaintext, loopback only. */
  kit: string | null;
  /** The revocation list, checked at every connect (fails closed); defaults to `<kit>/revoked.json`. */
  revocation?: RevocationChecker | null;
  /** gRPC's per-message receive cap (default 256 MiB; a federation server sets one chunk + framing). */
  maxMessageBytes?: number;
  onSession?: SessionHandler;
  onSubServer?: SubServerHandler;
  /** Split inference streams (flglm server --serve). */
  onGenerate?: GenerateHandler;
  /** The gRPC health service, served on this port too (over mTLS when there is a kit). */
  health?: ServerHealth;
  log?: (msg: string) => void;
}

export interface RunningServer {
  server: grpc.Server;
  port: number;
  close(): Promise<void>;
}

/**
 * The gRPC endpoint: verifies who is calling (certificate CN, revocation list) before any handler
 * sees a message. Plaintext mode names the peer "insecure-<address>" and is for loopback tests.
 */
export async function startTransport(o: TransportOptions): Promise<RunningServer> {
  const { service } = loadProtocol();
  const host = o.host ?? '127.0.0.1';
  if (!o.kit && !isLoopbackHost(host))
    throw new UserError(
      `refusing to listen on ${host} without TLS: plaintext is for loopback tests only. Fix: give --pki (a kit from flglm keygen) or bind 127.0.0.1`,
    );
  // A participant needs one Session stream (plus Hello); 16 per connection bounds what one can open.
  const server = new grpc.Server({
    ...CHANNEL_OPTIONS,
    'grpc.max_concurrent_streams': 16,
    ...(o.maxMessageBytes ? { 'grpc.max_receive_message_length': o.maxMessageBytes } : {}),
  });
  raiseReceiveWindows(server, CHANNEL_OPTIONS['grpc-node.flow_control_window'] as number);
  const revocation = o.revocation ?? (o.kit ? new RevocationChecker(join(o.kit, 'revoked.json')) : null);
  const refusals = new LogLimiter(o.log ?? (() => {}));
  const refuse = (peer: string, code: grpc.status, details: string): { error: grpc.StatusObject } => {
    refusals.log(`${peer}:${details}`, `refused ${peer}: ${details}`);
    return { error: { code, details, metadata: new grpc.Metadata() } };
  };

  const identify = (call: Parameters<typeof peerIdentity>[0]): PeerIdentity | { error: grpc.StatusObject } => {
    if (!o.kit) return { clientId: `insecure-${call.getPeer()}`, serial: '', fingerprint256: '' };
    const peer = peerIdentity(call);
    if (!peer) return refuse(call.getPeer(), grpc.status.UNAUTHENTICATED, 'no verified client certificate');
    try {
      if (revocation?.isRevoked(peer))
        return refuse(
          `"${peer.clientId}"`,
          grpc.status.PERMISSION_DENIED,
          `client "${peer.clientId}" has been revoked (certificate serial ${peer.serial}); ask the operator for a new kit`,
        );
    } catch (e) {
      return refuse(
        `"${peer.clientId}"`,
        grpc.status.UNAVAILABLE,
        `the server cannot check revocations: ${(e as Error).message}`,
      );
    }
    return peer;
  };

  server.addService(service, {
    Hello: (call: grpc.ServerUnaryCall<unknown, HelloReply>, callback: grpc.sendUnaryData<HelloReply>) => {
      const who = identify(call);
      if ('error' in who) return callback(who.error);
      callback(null, { clientId: who.clientId, serverVersion: PROTOCOL_VERSION });
    },
    Session: (call: ServerSessionCall) => {
      const who = identify(call);
      if ('error' in who) {
        call.emit('error', who.error);
        return;
      }
      if (who.role === 'sub-server') {
        call.emit(
          'error',
          refuse(
            `"${who.clientId}"`,
            grpc.status.PERMISSION_DENIED,
            `certificate "${who.clientId}" is a sub-server certificate, not a client's`,
          ).error,
        );
        return;
      }
      if (!o.onSession) {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'this server accepts no training sessions' });
        return;
      }
      o.onSession(call, who);
    },
    SubServer: (call: ParentSubCall) => {
      const who = identify(call);
      if ('error' in who) return void call.emit('error', who.error);
      // The role is in the CA-signed certificate profile (OU), which `keygen add-client` never writes:
      // a client kit, whatever its id, cannot attach as a trunk replica.
      if (o.kit && (who.role !== 'sub-server' || !who.clientId.startsWith(SUB_SERVER_CN_PREFIX))) {
        return void call.emit(
          'error',
          refuse(
            `"${who.clientId}"`,
            grpc.status.PERMISSION_DENIED,
            `certificate "${who.clientId}" is not a sub-server certificate (make one with flglm keygen --sub-servers)`,
          ).error,
        );
      }
      if (!o.onSubServer)
        return void call.emit('error', {
          code: grpc.status.UNIMPLEMENTED,
          details: 'this server does not take sub-servers (start it with --mode hierarchical --expect-subs N)',
        });
      o.onSubServer(call, who);
    },
    Generate: (call: ServerGenerateCall) => {
      const who = identify(call);
      if ('error' in who) return void call.emit('error', who.error);
      if (who.role === 'sub-server')
        return void call.emit(
          'error',
          refuse(
            `"${who.clientId}"`,
            grpc.status.PERMISSION_DENIED,
            `certificate "${who.clientId}" is a sub-server certificate, not a client's`,
          ).error,
        );
      if (!o.onGenerate)
        return void call.emit('error', {
          code: grpc.status.UNIMPLEMENTED,
          details: 'this server does not serve generation (start it with flglm server --serve)',
        });
      o.onGenerate(call, who);
    },
  });

  o.health?.addTo(server);
  const credentials = o.kit ? serverCredentials(o.kit) : grpc.ServerCredentials.createInsecure();
  const address = `${host}:${o.port ?? 0}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, credentials, (err, p) =>
      err
        ? reject(
            new UserError(
              /EADDRINUSE/.test(err.message)
                ? `cannot listen on ${address}: the port is in use. Fix: stop the other process or choose another --port (0 = any free port)`
                : `cannot listen on ${address}: ${err.message}`,
            ),
          )
        : resolve(p),
    ),
  );
  return {
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
