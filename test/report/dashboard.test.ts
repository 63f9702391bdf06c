import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet, request } from 'node:http';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { folderSource } from '../../src/report/dashboard/run-source.js';
import { startDashboard } from '../../src/report/dashboard/server.js';
import { runFolder, simulatedRecords } from '../helpers/run-records.js';

function fetchText(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const get = url.startsWith('https') ? httpsGet : httpGet;
  return new Promise((resolve, reject) => {
    get(url, { headers, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    }).on('error', reject);
  });
}

/** An SSE stream's events as they come: `next(name)` waits (bounded) for the next event of that name. */
function events(url: string) {
  const got: { event: string; data: string }[] = [];
  let wake = () => {};
  const req = httpGet(url, (res) => {
    let buf = '';
    res.on('data', (c) => {
      buf += c;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event) got.push({ event, data: data ?? '' });
        wake();
      }
    });
  });
  return {
    close: () => req.destroy(),
    async next(name: string, timeoutMs = 3000): Promise<string> {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const i = got.findIndex((e) => e.event === name);
        if (i >= 0) return got.splice(0, i + 1)[i].data;
        if (Date.now() > until) throw new Error(`no "${name}" event in ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
  };
}

test('the page loads under 1 s and a new round reaches the stream within 1 s, with 64 clients', async () => {
  const dir = runFolder(simulatedRecords({ clients: 64, rounds: 2, steps: 2 }), 64);
  const d = await startDashboard({ source: folderSource(dir), host: '127.0.0.1', port: 0 });
  try {
    const t0 = performance.now();
    const page = await fetchText(d.url);
    for (const f of ['app.js', 'lib/charts.js', 'lib/run-view.js', 'lib/sections.js', 'style.css'])
      expect((await fetchText(d.url + f)).status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toBe("default-src 'self'");
    expect(page.body).toContain('<script type="module" src="app.js">');
    const sse = events(d.url + 'events');
    try {
      expect(JSON.parse(await sse.next('meta')).meta).toMatchObject({
        name: 'dash',
        rounds: 6,
        clients: 64,
        state: 'live',
      });
      const first = JSON.parse(await sse.next('records'));
      expect(first.filter((r: { type: string }) => r.type === 'round')).toHaveLength(2);
      const t1 = performance.now();
      appendFileSync(join(dir, 'metrics.jsonl'), JSON.stringify({ type: 'round', round: 3, time: Date.now() }) + '\n');
      expect(JSON.parse(await sse.next('records', 1000))).toEqual([expect.objectContaining({ round: 3 })]);
      expect(performance.now() - t1).toBeLessThan(1000);
      writeFileSync(join(dir, 'status.json'), JSON.stringify({ state: 'finished' }));
      expect(JSON.parse(await sse.next('meta', 1000)).meta.state).toBe('finished');
    } finally {
      sse.close();
    }
  } finally {
    await d.close();
  }
});

test('loopback by default: another bind needs TLS, another Host header is refused, only GET', async () => {
  const dir = runFolder([]);
  await expect(
    startDashboard({ source: folderSource(dir), host: '0.0.0.0', port: 0, what: '--ui-port' }),
  ).rejects.toThrow(/--ui-port: the dashboard binds beyond loopback \(0\.0\.0\.0\) only over TLS with a token. Fix: /);
  const d = await startDashboard({ source: folderSource(dir), host: '127.0.0.1', port: 0 });
  try {
    expect((await fetchText(d.url, { host: 'evil.example:80' })).status).toBe(403);
    expect((await fetchText(d.url + 'nope')).status).toBe(404);
    const post = await new Promise<number>((resolve) =>
      request(d.url, { method: 'POST' }, (res) => resolve(res.statusCode ?? 0)).end(),
    );
    expect(post).toBe(405);
  } finally {
    await d.close();
  }
  expect(() => folderSource(join(dir, 'missing'))).toThrow(/is not a run folder .* Fix: give a folder flglm run made/);
});

test('over TLS the page needs the token printed at start (query or cookie)', async () => {
  // A self-signed EC certificate: made in milliseconds (a flglm kit's RSA keys take seconds); TLS is TLS here.
  const dir = mkdtempSync(join(tmpdir(), 'flglm-dash-tls-'));
  const [cert, key] = [join(dir, 'c.pem'), join(dir, 'k.pem')];
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-subj',
      '/CN=localhost',
      '-days',
      '1',
      '-keyout',
      key,
      '-out',
      cert,
    ]),
    { stdio: 'ignore' },
  );
  const tls = { cert: readFileSync(cert), key: readFileSync(key) };
  const d = await startDashboard({ source: folderSource(runFolder([])), host: '127.0.0.1', port: 0, tls });
  try {
    const token = new URL(d.url).searchParams.get('token')!;
    expect(d.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/\?token=[\w-]{24}$/);
    const base = d.url.split('?')[0];
    expect((await fetchText(base)).status).toBe(401);
    expect((await fetchText(`${base}?token=${token.slice(1)}x`)).status).toBe(401);
    const ok = await fetchText(d.url);
    expect(ok.status).toBe(200);
    expect(String(ok.headers['set-cookie'])).toContain('HttpOnly; Secure; SameSite=Strict');
    expect((await fetchText(base + 'app.js', { cookie: `flglm_dashboard=${token}` })).status).toBe(200);
  } finally {
    await d.close();
  }
});
