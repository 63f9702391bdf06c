// Epoch time of sequential vs batch vs hierarchical with 1/2/4/8 clients on the same data per
// round (64 examples = 8 client steps of 8 x 128), with and without a simulated WAN link
// (20 ms RTT, 100 Mbit/s per client). Round 2 is timed (round 1 compiles the graphs).
// Usage: npm run bench -- modes [runs=1] [clients=1,2,4,8]
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { root, runExperiment, stats, writeResult } from './common.mjs';

const runs = Number(process.argv[2] ?? 1);
const counts = (process.argv[3] ?? '1,2,4,8').split(',').map(Number);
const only = process.argv[4]; // optional: one link (loopback | wan-20ms-100mbit); other results are kept
const modes = ['sequential', 'batch', 'hierarchical'];
const links = { loopback: {}, 'wan-20ms-100mbit': { FLGLM_NET_DELAY_MS: '20', FLGLM_NET_MBPS: '100' } };
const previous =
  only && existsSync(join(root, 'bench-results', 'modes.json'))
    ? JSON.parse(readFileSync(join(root, 'bench-results', 'modes.json'), 'utf8'))
    : null;
const command = `npm run bench -- modes ${runs} ${counts.join(',')}${only ? ` ${only}` : ''}`;
const result = {
  command,
  model: 'small',
  examples_per_round: 64,
  batch: 8,
  seq: 128,
  epoch_s: previous?.epoch_s ?? {},
  // Which run measured each link's cells: a run for one link keeps the other link's cells and their provenance.
  links: previous?.links ?? {},
};
for (const [linkName, env] of Object.entries(links).filter(([name]) => !only || name === only)) {
  result.links[linkName] = { command, date: new Date().toISOString(), runs };
  for (const mode of modes) {
    for (const n of counts) {
      const xs = [];
      for (let r = 0; r < runs; r++) {
        const yaml = `name: modes\nseed: 1\nmodel: {preset: small}\ndata: {batch_size: 8, seq_len: 128, partition: iid, max_examples: 64}\nfederation: {mode: ${mode}, clients: ${n}, rounds: 2, local_steps: ${8 / n}, sub_servers: 2, batch_clients: 8, min_clients: ${n}}\neval: {max_batches: 1}\nsecurity: {tls: true, payload_encryption: true}\n`;
        const { metrics } = await runExperiment(yaml, mkdtempSync(join(tmpdir(), 'flglm-bench-')), env);
        xs.push(metrics.find((m) => m.type === 'round' && m.round === 2).wall_s);
      }
      ((result.epoch_s[linkName] ??= {})[mode] ??= {})[n] = stats(xs);
      console.error(`${linkName} ${mode} ${n} clients: ${stats(xs).median.toFixed(2)} s`);
    }
  }
}
console.log(JSON.stringify(result, null, 2));
writeResult('modes', result);
