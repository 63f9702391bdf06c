import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { UserError } from '../../util/errors.js';
import { isLoopbackHost } from '../../util/net.js';
import { ApiError, apiErrorOf, badRequest } from './api-errors.js';
import { CancelledError } from './engine.js';
import { prepareGeneration, serveGeneration, type GenerationContext, type Kind } from './generation.js';
import { OpenAiMetrics } from './openai-metrics.js';

/**
 * The OpenAI-compatible HTTP endpoint (node:http): GET /v1/models, POST /v1/completions, POST
 * /v1/chat/completions, GET /metrics. Every failure is answered with the API's error shape; none
 * ends the process. Loopback by default; any other address needs a bearer token (refused to start
 * without one). A request whose client goes away is cancelled: its trunk session closes, which
 * frees the trunk's cache rows.
 */
export interface OpenAiServerOptions extends GenerationContext {
  host: string;
  port: number;
  /** Bearer token every request must carry (null: none, loopback only). */
  apiKey: string | null;
  /** Generation requests served at once; more are answered 429. */
  maxConcurrent: number;
  /** Largest request body, in bytes (413 past it). */
  maxBodyBytes: number;
  metrics?: OpenAiMetrics;
  log?: (message: string) => void;
}

export interface OpenAiServer {
  port: number;
  metrics: OpenAiMetrics;
  /** Generation requests being served now. */
  readonly active: number;
  close(): Promise<void>;
}

const ROUTES: Record<string, { method: string; kind?: Kind }> = {
  '/v1/models': { method: 'GET' },
  '/v1/completions': { method: 'POST', kind: 'completion' },
  '/v1/chat/completions': { method: 'POST', kind: 'chat' },
  '/metrics': { method: 'GET' },
};

function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    // Mid-stream: an error event (the SDKs raise it), then the end.
    if (!res.writableEnded) res.end(`data: ${JSON.stringify(e.body)}\n\n`);
    return;
  }
  res.writeHead(e.status, { 'content-type': 'application/json' }).end(JSON.stringify(e.body));
}

/** The body as JSON; one over `limit` bytes is read to its end but not kept, then answered 413. */
function readBody(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size <= limit) parts.push(b);
    });
    req.on('error', reject);
    // A client gone before its body ended (after 'end' this is a no-op: the promise is settled).
    req.on('close', () => reject(new CancelledError('the client went away')));
    req.on('end', () => {
      if (size > limit)
        return reject(
          new ApiError(
            413,
            `the request body is over ${limit} bytes`,
            'invalid_request_error',
            null,
            'request_too_large',
          ),
        );
      try {
        resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
      } catch (e) {
        reject(badRequest(`the request body is not JSON (${(e as Error).message})`, null, 'invalid_json'));
      }
    });
  });
}

function authorized(req: IncomingMessage, key: string | null): boolean {
  if (key === null) return true;
  const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
  const a = Buffer.from(given),
    b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startOpenAiServer(o: OpenAiServerOptions): Promise<OpenAiServer> {
  if (!isLoopbackHost(o.host) && !o.apiKey)
    throw new UserError(
      `--host ${o.host} is not a loopback address: the endpoint would answer anyone who reaches it. Fix: give an API key (--api-key-file FILE or FLGLM_API_KEY) or bind to 127.0.0.1`,
    );
  const metrics = o.metrics ?? new OpenAiMetrics();
  let active = 0;
  const models = () => ({
    object: 'list',
    data: [{ id: o.modelId, object: 'model', created: 0, owned_by: 'flglm' }],
  });

  const handle = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<number | 'cancelled'> => {
    const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    if (!route)
      throw new ApiError(
        404,
        `no such endpoint: ${req.method} ${path.slice(0, 100)}`,
        'invalid_request_error',
        null,
        'not_found',
      );
    if (req.method !== route.method)
      throw new ApiError(
        405,
        `${path} takes ${route.method}, not ${req.method}`,
        'invalid_request_error',
        null,
        'method_not_allowed',
      );
    if (!authorized(req, o.apiKey))
      throw new ApiError(
        401,
        'missing or wrong API key: send "Authorization: Bearer KEY"',
        'invalid_request_error',
        null,
        'invalid_api_key',
      );
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(await metrics.registry.metrics());
      return 200;
    }
    if (!route.kind) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(models()));
      return 200;
    }
    // A bad request is a 400 whatever the load; only a good one can be turned away for capacity.
    const prepared = prepareGeneration(route.kind, await readBody(req, o.maxBodyBytes), o);
    if (active >= o.maxConcurrent)
      throw new ApiError(
        429,
        `${active} requests are being served (the limit is ${o.maxConcurrent}): try again shortly`,
        'rate_limit_error',
        null,
        'too_many_requests',
      );
    active++;
    metrics.inFlight.inc();
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on('close', onClose);
    try {
      metrics.generated(await serveGeneration(route.kind, prepared, o, res, abort.signal));
      return 200;
    } catch (e) {
      if (e instanceof CancelledError || abort.signal.aborted) return 'cancelled';
      throw e;
    } finally {
      active--;
      metrics.inFlight.dec();
      res.off('close', onClose);
    }
  };

  const server = createServer((req, res) => {
    res.on('error', () => {}); // a client gone mid-answer: its request is cancelled by 'close'
    const path = (req.url ?? '/').split('?')[0];
    const label = Object.hasOwn(ROUTES, path) ? path : 'other'; // bounded label values
    handle(req, res, path).then(
      (status) => metrics.answered(label, status),
      (e: unknown) => {
        if (e instanceof CancelledError) return metrics.answered(label, 'cancelled');
        const err = apiErrorOf(e);
        if (err.status >= 500) o.log?.(`${req.method} ${path}: ${err.status} ${err.message}`);
        metrics.answered(label, err.status);
        try {
          sendError(res, err);
        } catch {
          /* the client is gone */
        }
      },
    );
  });
  server.on('clientError', (_e, socket) => socket.destroy());
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e) => reject(new UserError(`cannot listen on ${o.host}:${o.port}: ${e.message}`)));
    server.listen(o.port, o.host, () => resolve((server.address() as { port: number }).port));
  });
  return {
    port,
    metrics,
    get active() {
      return active;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
