import * as grpc from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { UserError } from '../util/errors.js';

/** The federation's service name as the health service reports it (`flglm.v1.Federation`). */
export const FEDERATION_SERVICE = 'flglm.v1.Federation';

/**
 * The standard gRPC health service (`grpc.health.v1.Health`, what Kubernetes gRPC probes and
 * grpc_health_probe ask): NOT_SERVING until the trunk workers are up and the server listens,
 * SERVING while it trains, NOT_SERVING once the federation has finished. '' is the whole server.
 */
export class ServerHealth {
  private readonly impl = new HealthImplementation({ '': 'NOT_SERVING', [FEDERATION_SERVICE]: 'NOT_SERVING' });

  set(status: ServingStatus): void {
    this.impl.setStatus('', status);
    this.impl.setStatus(FEDERATION_SERVICE, status);
  }

  addTo(server: grpc.Server): void {
    this.impl.addToServer(server);
  }
}

/**
 * A plaintext endpoint serving only the health service (`flglm server --health-port`): probes
 * cannot present a client certificate to the mTLS port, and all this one says is the status.
 */
export async function startHealthEndpoint(
  health: ServerHealth,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  health.addTo(server);
  const address = `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new UserError(`--health-port: cannot listen on ${address}: ${err.message}`)) : resolve(p),
    ),
  );
  return { port: bound, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}
