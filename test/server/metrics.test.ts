import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlglmProcess } from '../helpers/processes.js';
import { prepareExamples, writePreparedData } from '../../src/data/prepare.js';

/** The value of a metric line `name{labels} value` (summed over label sets), or NaN. */
function value(text: string, name: string): number {
  const lines = text.split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return lines.length ? lines.reduce((a, l) => a + Number(l.split(' ').pop()), 0) : NaN;
}

async function scrapeUntil(url: string, ok: (text: string) => boolean, timeoutMs = 60000): Promise<string> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const text = await fetch(url)
      .then((r) => r.text())
      .catch(() => '');
    if (ok(text)) return text;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} never satisfied the condition`);
}

test('Prometheus /metrics on the server and a client, scraped during a run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-metrics-'));
  const [silo] = writePreparedData(
    join(dir, 'data'),
    prepareExamples({
      dataset: 'spam-assassin',
      task: 'classify',
      clients: 1,
      partition: 'iid',
      testFraction: 0.1,
      seed: 1,
      maxExamples: 40,
    }),
  );
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    'model: {preset: tiny}\ndata: {batch_size: 2, seq_len: 24}\nfederation: {mode: sequential, clients: 1, rounds: 6, local_steps: 15}\neval: {max_batches: 1, every_rounds: 6}\nsecurity: {tls: false, payload_encryption: false}\n',
  );
  const server = new FlglmProcess([
    'server',
    '--config',
    cfg,
    '--insecure',
    '--port',
    '0',
    '--metrics-port',
    '0',
    '--ready-file',
    join(dir, 'ready.json'),
  ]);
  let client: FlglmProcess | null = null;
  try {
    await server.waitFor(/listening on/);
    const ready = JSON.parse(readFileSync(join(dir, 'ready.json'), 'utf8'));
    const before = await scrapeUntil(`http://127.0.0.1:${ready.metrics_port}/metrics`, (t) =>
      t.includes('flglm_clients_connected'),
    );
    expect(value(before, 'flglm_clients_connected')).toBe(0);
    client = new FlglmProcess([
      'client',
      '--insecure',
      '--name',
      'alice',
      '--server',
      `127.0.0.1:${ready.port}`,
      '--data',
      silo,
      '--test',
      join(dir, 'data', 'test'),
      '--metrics-port',
      '0',
      '--reconnect',
      '0',
    ]);
    // The client first (its endpoint closes when it finishes), then the server after a round.
    const [, port] = await client.waitFor(/metrics at http:\/\/127\.0\.0\.1:(\d+)\/metrics/);
    const own = await scrapeUntil(`http://127.0.0.1:${port}/metrics`, (t) => value(t, 'flglm_client_steps_total') > 0);
    expect(value(own, 'flglm_client_phase_seconds_total')).toBeGreaterThan(0);
    expect(Number.isFinite(value(own, 'flglm_client_train_loss'))).toBe(true);
    expect(await fetch(`http://127.0.0.1:${port}/other`).then((r) => r.status)).toBe(404);
    const during = await scrapeUntil(
      `http://127.0.0.1:${ready.metrics_port}/metrics`,
      (t) => value(t, 'flglm_rounds_total') >= 1,
    );
    expect(value(during, 'flglm_clients_connected')).toBe(1);
    expect(value(during, 'flglm_steps_total')).toBeGreaterThanOrEqual(15);
    expect(value(during, 'flglm_bytes_received_total')).toBeGreaterThan(0);
    expect(value(during, 'flglm_server_process_resident_memory_bytes')).toBeGreaterThan(1e6);
    expect(during).toMatch(/flglm_round_seconds_bucket\{le="/);
    expect(await client.exited).toBe(0);
  } finally {
    client?.kill();
    server.kill();
  }
}, 120000);
