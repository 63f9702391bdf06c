import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const dist = (p) => join(root, 'dist', 'src', p);

export function machine() {
  const malloc = process.env.MALLOC_MMAP_MAX_ === '0' ? 'heap, no trim (MALLOC_MMAP_MAX_=0)' : 'glibc defaults';
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memory_gib: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    malloc,
    date: new Date().toISOString(),
  };
}

export const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The median: the middle value, the mean of the middle two for an even count (the one definition every benchmark uses). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** min, median, max and how many runs. (Results before 2026-12 took the upper median, s[n/2], for even counts.) */
export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: median(s), max: s[s.length - 1], runs: s.length };
}

export function writeResult(name, result) {
  const dir = join(root, 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ benchmark: name, machine: machine(), ...result }, null, 2));
  console.log(`wrote ${file}`);
  spawnSync(process.execPath, [join(root, 'scripts', 'bench', 'render.mjs')], { stdio: 'inherit' });
}

/** Run a federated experiment through the real launcher (separate server and client processes). */
export async function runExperiment(yaml, outDir, env = {}, options = {}) {
  const { parseConfigText } = await import(dist('config/load.js'));
  const { ExperimentLauncher, readMetrics } = await import(dist('launcher/launcher.js'));
  const parsed = parseConfigText(yaml);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    const summary = await new ExperimentLauncher(parsed.config, yaml, { quiet: true, outDir, ...options }).run();
    return { summary, metrics: readMetrics(join(outDir, 'metrics.jsonl')) };
  } finally {
    for (const k of Object.keys(env)) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

/**
 * Seconds between consecutive step records of a federated run's metrics, from round 2 on (round 1
 * compiles every program), counting only gaps within one client's round (no round barrier in them).
 */
export function stepGaps(metrics) {
  const steps = metrics.filter((m) => m.type === 'step' && m.round >= 2);
  const gaps = [];
  for (let i = 1; i < steps.length; i++)
    if (steps[i].client === steps[i - 1].client && steps[i].round === steps[i - 1].round)
      gaps.push((steps[i].time - steps[i - 1].time) / 1000);
  return gaps;
}

/**
 * One `flglm train` process on `yaml` for `steps` steps (environment `env`): the gaps between step
 * records after the first two (which pay for compiling the programs and first-run allocations),
 * and its peak RSS.
 */
export function centralizedSteps(yaml, steps, env = process.env) {
  const dir = mkdtempSync(join(tmpdir(), 'flglm-bench-train-'));
  try {
    writeFileSync(join(dir, 'c.yaml'), yaml);
    const r = spawnSync(
      process.execPath,
      [
        join(root, 'bin', 'flglm'),
        'train',
        join(dir, 'c.yaml'),
        '--steps',
        String(steps),
        '--no-save',
        '--quiet',
        '--metrics',
        join(dir, 'm.jsonl'),
        '--summary-json',
        join(dir, 's.json'),
      ],
      { encoding: 'utf8', env },
    );
    if (r.status !== 0) throw new Error(`flglm train failed: ${r.stderr}`);
    const times = readFileSync(join(dir, 'm.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).time);
    const gaps = times.slice(2).map((t, i) => (t - times[i + 1]) / 1000);
    return { gaps, peak_rss_mib: JSON.parse(readFileSync(join(dir, 's.json'), 'utf8')).peak_rss_mib };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
