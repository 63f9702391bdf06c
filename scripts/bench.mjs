#!/usr/bin/env node
// `npm run bench -- NAME`: runs scripts/bench/NAME.mjs, which writes bench-results/NAME.json.
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'bench');
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.mjs') && f !== 'common.mjs')
  .map((f) => f.replace(/\.mjs$/, ''));
const name = process.argv[2];
if (!name || !names.includes(name)) {
  console.error(`usage: npm run bench -- NAME [args]   (NAME: ${names.join(', ')})`);
  process.exit(2);
}
if (!existsSync(join(dir, '..', '..', 'dist', 'src'))) {
  console.error('flglm is not built: run `npm run build` first');
  process.exit(2);
}
// Every benchmark process, flglm's and its peers' (PyTorch too: its allocator is glibc's), runs with
// the malloc settings flglm's launcher uses (src/util/malloc-env.ts); FLGLM_SYSTEM_MALLOC=1 runs
// with glibc's defaults. `malloc` compares the two.
const { withMallocEnv } = await import(join(dir, '..', '..', 'dist', 'src', 'util', 'malloc-env.js'));
const r = spawnSync(process.execPath, [join(dir, `${name}.mjs`), ...process.argv.slice(3)], {
  stdio: 'inherit',
  env: withMallocEnv(process.env),
});
process.exit(r.status ?? 1);
