// What the dashboard costs: one metrics record appended (the server and clients write 4 per step:
// step, timeline, trunk forward, trunk backward) and one page render (view + sections) of a
// 64-client run of 10k records. Usage: npm run build && node scripts/dashboard-cost.mjs
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const { runView } = await import('../dist/src/report/run-view.js');
const { sections } = await import('../dist/src/report/sections.js');
const { simulatedRecords, META } = await import('../dist/test/helpers/run-records.js');
const f = join(mkdtempSync(join(tmpdir(), 'm-')), 'metrics.jsonl');
const rec = {
  type: 'trunk',
  replica: 0,
  op: 'forward',
  client: 'client-12',
  round: 7,
  step: 3,
  start: 1796595855486.38,
  end: 1796595856184.89,
};
let t = performance.now();
for (let i = 0; i < 5000; i++) appendFileSync(f, JSON.stringify(rec) + '\n');
const appendUs = ((performance.now() - t) / 5000) * 1000;
const records = simulatedRecords({ clients: 64, rounds: 10, steps: 4 });
t = performance.now();
for (let i = 0; i < 5; i++) sections(runView({ ...META, clients: 64, rounds: 10, state: 'live' }, records));
const renderMs = (performance.now() - t) / 5;
const out = {
  append_record_us: +appendUs.toFixed(1),
  records_per_step: 4,
  render_64_clients_ms: +renderMs.toFixed(1),
  records: records.length,
};
console.log(JSON.stringify(out));
