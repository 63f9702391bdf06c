import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { fileURLToPath } from 'node:url';
import { UserError } from '../../util/errors.js';
import type { RunRecord } from '../run-view.js';
import { PAGE_CSS } from '../sections.js';
import type { RunSource } from './run-source.js';

// The live dashboard: a page and its scripts (web/dashboard/ and the compiled chart modules the
// report uses too), and one server-sent-event stream of the run's records. Loopback by default;
// any other address only over TLS and with a token in the URL printed at start.

/** The shipped files: the page, and the report's own modules the page imports. */
const here = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const FILES: Record<string, [string, string]> = {
  '/': [here('../../../../web/dashboard/index.html'), 'text/html; charset=utf-8'],
  '/app.js': [here('../../../../web/dashboard/app.js'), 'text/javascript; charset=utf-8'],
  '/lib/charts.js': [here('../charts.js'), 'text/javascript; charset=utf-8'],
  '/lib/run-view.js': [here('../run-view.js'), 'text/javascript; charset=utf-8'],
  '/lib/sections.js': [here('../sections.js'), 'text/javascript; charset=utf-8'],
};
const HEADERS = {
  'content-security-policy': "default-src 'self'",
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export interface DashboardOptions {
  source: RunSource;
  host: string;
  port: number;
  /** PEM certificate and key (the server's kit): required for any address beyond loopback. */
  tls?: { cert: Buffer; key: Buffer };
  /** How often the source is read (ms); a round's record reaches the page within this plus a frame. */
  pollMs?: number;
  /** Which option set the port, for the one-line error when it is taken. */
  what?: string;
}

export interface Dashboard {
  url: string;
  port: number;
  /** Read the source now (a finished run's last records), then stop serving. */
  close(): Promise<void>;
}

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const what = o.what ?? '--port';
  if (!isLoopback(o.host) && !o.tls)
    throw new UserError(
      `${what}: the dashboard binds beyond loopback (${o.host}) only over TLS with a token. Fix: give the server's kit (--pki), or bind 127.0.0.1 and forward the port (ssh -L)`,
    );
  const token = o.tls ? randomBytes(18).toString('base64url') : null;
  const records: RunRecord[] = [];
  const streams = new Set<ServerResponse>();
  let meta = '';
  const send = (res: ServerResponse, event: string, data: string) => res.write(`event: ${event}\ndata: ${data}\n\n`);
  const metaJson = () => JSON.stringify({ meta: o.source.meta(), ...o.source.extras() });
  const tick = () => {
    const fresh = o.source.poll();
    if (fresh.length) {
      records.push(...fresh);
      const data = JSON.stringify(fresh);
      for (const s of streams) send(s, 'records', data);
    }
    const m = metaJson();
    if (m !== meta) {
      meta = m;
      for (const s of streams) send(s, 'meta', m);
    }
  };
  tick();

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    if (!token) return true;
    const cookie = /(?:^|;\s*)flglm_dashboard=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    const given = url.searchParams.get('token') ?? cookie ?? '';
    const a = Buffer.from(given),
      b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    // A page on another site must not read a loopback dashboard through a name that resolves here.
    const hostName = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (!token && !isLoopback(hostName)) return res.writeHead(403, HEADERS).end('forbidden: not a loopback host\n');
    if (req.method !== 'GET') return res.writeHead(405, HEADERS).end('only GET\n');
    if (!authorized(req, url))
      return res.writeHead(401, HEADERS).end('unauthorized: open the URL with ?token= that flglm printed at start\n');
    const cookie = token
      ? { 'set-cookie': `flglm_dashboard=${token}; HttpOnly; Secure; SameSite=Strict; Path=/` }
      : undefined;
    if (url.pathname === '/events') {
      res.writeHead(200, { ...HEADERS, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      send(res, 'reset', '{}'); // a reconnecting page starts over: every record so far follows
      send(res, 'meta', meta);
      if (records.length) send(res, 'records', JSON.stringify(records));
      streams.add(res);
      req.on('close', () => streams.delete(res));
      return;
    }
    if (url.pathname === '/style.css')
      return res.writeHead(200, { ...HEADERS, 'content-type': 'text/css; charset=utf-8' }).end(PAGE_CSS);
    const file = FILES[url.pathname];
    if (!file) return res.writeHead(404, HEADERS).end('not found\n');
    res.writeHead(200, { ...HEADERS, ...cookie, 'content-type': file[1] }).end(readFileSync(file[0]));
  };
  const server: Server = o.tls ? createHttps({ cert: o.tls.cert, key: o.tls.key }, handle) : createHttp(handle);
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', (e) => reject(new UserError(`${what}: cannot listen on ${o.host}:${o.port}: ${e.message}`)));
    server.listen(o.port, o.host, () => resolve((server.address() as { port: number }).port));
  });
  const timer = setInterval(tick, o.pollMs ?? 250);
  const keepAlive = setInterval(() => streams.forEach((s) => s.write(': keep-alive\n\n')), 15_000);
  timer.unref();
  keepAlive.unref();
  server.unref(); // a finished process exits without waiting for open pages
  const shown = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `${o.tls ? 'https' : 'http'}://${shown}:${port}/${token ? `?token=${token}` : ''}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        tick();
        clearInterval(timer);
        clearInterval(keepAlive);
        for (const s of streams) s.end();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
