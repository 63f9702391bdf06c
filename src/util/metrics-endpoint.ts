import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { UserError } from './errors.js';

/** An HTTP endpoint serving `registry` at GET /metrics (Prometheus text format); nothing else. */
export async function startMetricsEndpoint(
  registry: Registry,
  host: string,
  port: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (e: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${e.message}\n`),
    );
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.once('error', (e) =>
      reject(new UserError(`--metrics-port: cannot listen on ${host}:${port}: ${e.message}`)),
    );
    server.listen(port, host, () => resolve((server.address() as { port: number }).port));
  });
  server.unref(); // a finished process exits without waiting for scrapers
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
