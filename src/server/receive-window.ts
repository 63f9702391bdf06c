import type * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';

/**
 * The server's HTTP/2 receive windows, raised to `bytes` (per stream and per connection).
 *
 * grpc-js applies `grpc-node.flow_control_window` to client connections only; its server keeps
 * Node's 64 KiB windows (grpc/grpc-node pull request 3058, open), so every 64 KiB a client sends
 * waits for the server's WINDOW_UPDATE. Measured on loopback with mutual TLS (`small`, 8 x 128,
 * 1 MiB per tensor, median over rounds 2-3): a client's h_A or dL/dh_B took 18 ms to reach the
 * server, the server's h_B or dL/dh_A 6-7 ms to reach the client. Over a WAN each window costs
 * a round trip.
 *
 * grpc-js has no public hook for this, so it wraps the server's (private) `createHttp2Server`,
 * called once per bound address: the SETTINGS frame advertises the stream window, and each new
 * session enlarges its connection window. Returns false, changing nothing, where a grpc-js
 * version lacks that method (test/server/receive-window.test.ts reads the windows a client sees).
 */
export function raiseReceiveWindows(server: grpc.Server, bytes: number): boolean {
  const internals = server as unknown as {
    createHttp2Server?: (credentials: grpc.ServerCredentials) => http2.Http2Server;
  };
  const create = internals.createHttp2Server;
  if (typeof create !== 'function') return false;
  internals.createHttp2Server = function (this: unknown, credentials: grpc.ServerCredentials) {
    const h2 = create.call(this, credentials);
    h2.updateSettings({ initialWindowSize: bytes });
    h2.on('session', (session: http2.ServerHttp2Session) => {
      try {
        session.setLocalWindowSize(bytes);
      } catch {
        // A session already closing: nothing to raise.
      }
    });
    return h2;
  };
  return true;
}
