// 16/32/64 simulated clients against one server process (batch mode, tiny model): round time and
// the server's peak resident memory. Clients run in this process (one ORT pool), the server in
// its own, so its RSS is its own. Usage: npm run bench -- scale [counts=16,32,64]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dist, root, writeResult } from './common.mjs';

const counts = (process.argv[2] ?? '16,32,64').split(',').map(Number);
const { prepareExamples } = await import(dist('data/prepare.js'));
const { runClient } = await import(dist('client/split-client.js'));
const { readMetrics } = await import(dist('launcher/launcher.js'));

function rssMiB(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
  } catch {
    return 0;
  }
}

const result = {
  command: `npm run bench -- scale ${counts.join(',')}`,
  model: 'tiny',
  batch: 4,
  seq: 64,
  mode: 'batch',
  points: [],
};
for (const n of counts) {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-scale-'));
  const cfg = join(dir, 'exp.yaml');
  writeFileSync(
    cfg,
    `seed: 1\nmodel: {preset: tiny}\ndata: {batch_size: 4, seq_len: 64, partition: iid, max_examples: 20}\nfederation: {mode: batch, clients: ${n}, rounds: 3, local_steps: 2, batch_clients: 16, min_clients: ${n}, client_timeout_ms: 120000, batch_deadline_ms: 20000}\neval: {max_batches: 1}\n`,
  );
  const metrics = join(dir, 'metrics.jsonl');
  const server = spawn(
    process.execPath,
    [join(root, 'bin', 'flglm'), 'server', '--config', cfg, '--insecure', '--port', '0', '--metrics', metrics],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const port = await new Promise((res) => {
    let b = '';
    server.stdout.on('data', (d) => {
      b += d;
      const m = /listening on [^:]+:(\d+)/.exec(b);
      if (m) res(m[1]);
    });
  });
  let peak = 0;
  const poll = setInterval(() => {
    peak = Math.max(peak, rssMiB(server.pid));
  }, 100);
  const data = prepareExamples({
    dataset: 'spam-assassin',
    task: 'classify',
    clients: n,
    partition: 'iid',
    testFraction: 0.1,
    seed: 1,
    maxExamples: 20,
  });
  const idle = rssMiB(server.pid);
  await Promise.all(
    data.silos.map((silo, i) =>
      runClient({
        target: `127.0.0.1:${port}`,
        kit: null,
        train: silo,
        test: data.test.slice(0, 4),
        insecureName: `sim-${i}`,
        reconnectAttempts: 0,
      }),
    ),
  );
  await new Promise((res) => server.once('exit', res));
  clearInterval(poll);
  const rounds = readMetrics(metrics).filter((m) => m.type === 'round');
  result.points.push({
    clients: n,
    round_s: rounds.slice(1).map((r) => r.wall_s),
    server_rss_idle_mib: idle,
    server_rss_peak_mib: peak,
  });
  console.error(
    `${n} clients: rounds ${rounds.map((r) => r.wall_s.toFixed(2)).join(', ')} s, server RSS peak ${peak.toFixed(0)} MiB`,
  );
}
console.log(JSON.stringify(result, null, 2));
writeResult('scale', result);
