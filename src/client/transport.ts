import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, loadProtocol } from '../protocol/load.js';
import { PROTOCOL_VERSION, type SplitTrainingClient } from '../protocol/messages.js';
import { clientCredentials, describeConnectError } from '../security/tls.js';
import { UserError } from '../util/errors.js';

export interface ClientConnection {
  client: SplitTrainingClient;
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
  const client = new Client(target, credentials, options);
  return { client, clientId, target };
}

/** Ask the server who it thinks we are; fails with one clear line if the handshake is refused. */
export function hello(conn: ClientConnection, timeoutMs = 10000): Promise<{ clientId: string }> {
  return new Promise((resolve, reject) => {
    conn.client.Hello({ version: PROTOCOL_VERSION }, { deadline: Date.now() + timeoutMs }, (err, res) =>
      err || !res ? reject(new UserError(describeConnectError(err!, conn.target))) : resolve(res),
    );
  });
}
