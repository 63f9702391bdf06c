import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, loadProtocol } from '../protocol/load.js';
import { clientCredentials, describeConnectError } from '../security/tls.js';
import { UserError } from '../util/errors.js';

export interface ClientConnection {
  client: grpc.Client & Record<string, (...args: unknown[]) => unknown>;
  clientId: string;
  target: string;
}

/** Connect with mutual TLS from a client kit, or plaintext with `kit: null` (loopback tests only). */
export function connect(target: string, kit: string | null, serverName?: string): ClientConnection {
  const { Client } = loadProtocol();
  let credentials: grpc.ChannelCredentials;
  let clientId = 'insecure';
  if (kit) ({ credentials, clientId } = clientCredentials(kit));
  else credentials = grpc.credentials.createInsecure();
  const options = { ...CHANNEL_OPTIONS, ...(serverName ? { 'grpc.ssl_target_name_override': serverName } : {}) };
  const client = new Client(target, credentials, options) as ClientConnection['client'];
  return { client, clientId, target };
}

/** Ask the server who it thinks we are; fails with one clear line if the handshake is refused. */
export function hello(conn: ClientConnection, timeoutMs = 10000): Promise<{ clientId: string }> {
  return new Promise((resolve, reject) => {
    (conn.client.Hello as (req: unknown, opts: unknown, cb: (err: grpc.ServiceError | null, res: { clientId: string }) => void) => void)(
      { version: '1' },
      { deadline: Date.now() + timeoutMs },
      (err, res) => (err ? reject(new UserError(describeConnectError(err, conn.target))) : resolve(res)),
    );
  });
}
