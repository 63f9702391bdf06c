import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { preflight } from '../../src/config/preflight.js';
import { SplitServer } from '../../src/server/split-server.js';
import { UserError } from '../../src/util/errors.js';

// Every key configs/reference.yaml documents is read by each code path it is given to: honoured
// there, or refused with the fix (src/config/run-rules.ts), never silently ignored. A path's code
// is the static import closure of its entry points, less the files that only validate or document
// the config; a key it does not take by design is listed below with the reason.

const PATHS: Record<string, string[]> = {
  train: ['src/cli/train-command.ts'],
  server: ['src/cli/server-run.ts'],
  client: ['src/cli/client-command.ts'],
  run: ['src/cli/run-command.ts'],
};

/** Files that check or describe the config without acting on it (every path imports them). */
const VALIDATION_ONLY = new Set([
  'src/config/schema.ts',
  'src/config/load.ts',
  'src/config/privacy-rules.ts',
  'src/config/dp-rules.ts',
  'src/config/plugin-options.ts',
]);

/** Keys a path does not take, by design. */
const NOTHING_LEAVES =
  'nothing leaves a centralized run: differential privacy and the leakage monitor are for federated runs';
const ADAPTIVE = 'adaptive clipping is refused where a federated run starts (config/run-rules.ts)';
const FOR_RUN = "flglm run's own: its run folder and its centralized baseline";
const NOT_FOR: Record<string, Record<string, string>> = {
  train: {
    baseline: 'flglm train is the centralized baseline',
    'security.tls': 'a centralized run has no network',
    'privacy.activation_noise.sigma': 'nothing leaves a centralized run',
    'privacy.activation_noise.gradients': 'nothing leaves a centralized run',
    'privacy.activation_noise.relative': 'nothing leaves a centralized run',
    'transport.limits.max_value_rms': 'a centralized run has no peers',
    'privacy.dp.updates.enabled': NOTHING_LEAVES,
    'privacy.dp.updates.clip_norm': NOTHING_LEAVES,
    'privacy.dp.updates.noise_multiplier': NOTHING_LEAVES,
    'privacy.dp.updates.noise': NOTHING_LEAVES,
    'privacy.dp.updates.adaptive_clip.enabled': NOTHING_LEAVES,
    'privacy.dp.updates.adaptive_clip.target_quantile': NOTHING_LEAVES,
    'privacy.dp.updates.adaptive_clip.lr': NOTHING_LEAVES,
    'privacy.dp.updates.adaptive_clip.count_noise': NOTHING_LEAVES,
    'privacy.dp.activations.enabled': NOTHING_LEAVES,
    'privacy.dp.activations.clip_norm': NOTHING_LEAVES,
    'privacy.dp.activations.noise_multiplier': NOTHING_LEAVES,
    'privacy.dp.activations.gradient_clip_norm': NOTHING_LEAVES,
    'privacy.dp.activations.dp_sgd': NOTHING_LEAVES,
    'privacy.target_epsilon': NOTHING_LEAVES,
    'privacy.delta': NOTHING_LEAVES,
    'tracking.tensorboard': 'the federation is tracked; flglm train writes --metrics',
  },
  server: {
    output_dir: FOR_RUN,
    baseline: FOR_RUN,
    'eval.max_batches': 'clients evaluate their own held-out data',
    'eval.max_new_tokens': "generation scores come from flglm run's final model (launcher/final-model.ts)",
    'privacy.dp.updates.adaptive_clip.count_noise': ADAPTIVE,
  },
  client: {
    output_dir: FOR_RUN,
    baseline: FOR_RUN,
    'security.tls':
      'a client dials as its kit says (--pki or --insecure); the server, which owns the plan, refuses a mismatch',
    'privacy.dp.updates.adaptive_clip.count_noise': ADAPTIVE,
    'eval.max_new_tokens': "generation scores come from flglm run's final model (launcher/final-model.ts)",
    'tracking.tensorboard': "the server writes every participant's run (it sees each client's steps)",
  },
  run: { 'privacy.dp.updates.adaptive_clip.count_noise': ADAPTIVE },
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return p.endsWith(join('protocol', 'generated')) ? [] : sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}
const text = new Map(sourceFiles('src').map((f) => [f, readFileSync(f, 'utf8')]));
const importsOf = (f: string) =>
  [...text.get(f)!.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/g)]
    .map((m) => normalize(join(dirname(f), m[1])).replace(/\.js$/, '.ts'))
    .filter((d) => text.has(d));

function closure(entries: string[]): string[] {
  const seen = new Set<string>();
  const visit = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    importsOf(f).forEach(visit);
  };
  entries.forEach(visit);
  return [...seen].filter((f) => !VALIDATION_ONLY.has(f));
}

/** Every leaf key of the reference config, as a dotted path. */
function leaves(v: unknown, at: string[] = []): string[] {
  if (v && typeof v === 'object' && !Array.isArray(v))
    return Object.entries(v).flatMap(([k, x]) => leaves(x, [...at, k]));
  return [at.join('.')];
}
const documented = leaves(parse(readFileSync('configs/reference.yaml', 'utf8')));

/** Whether some file reads the key's last name as a property (access or destructuring). */
const reads = (files: string[], key: string) => {
  const leaf = key.split('.').pop()!;
  const pattern = new RegExp(`\\.${leaf}\\b|[{,]\\s*${leaf}\\b\\s*[:,}=]`);
  return files.some((f) => pattern.test(text.get(f)!));
};

test.each(Object.keys(PATHS))(
  '%s: every documented key is read (honoured or refused) or listed as not its own',
  (path) => {
    const files = closure(PATHS[path]);
    const ignored = documented.filter((k) => !(k in NOT_FOR[path]) && !reads(files, k));
    expect(ignored).toEqual([]);
  },
);

test('the exemptions name documented keys only', () => {
  for (const keys of Object.values(NOT_FOR))
    expect(Object.keys(keys).filter((k) => !documented.includes(k))).toEqual([]);
});

test('a federated run refuses grad_accum, which only flglm train honours, naming the fix', () => {
  const r = parseConfigText('optimizer: {grad_accum: 2}\nsecurity: {tls: false, payload_encryption: false}\n');
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  const message =
    'optimizer.grad_accum: 2: a federated run takes one optimizer step per batch on every side (each client step is one trunk step); set grad_accum: 1 and raise data.batch_size instead (flglm train honours grad_accum)';
  expect(() => new SplitServer({ cfg: r.config, kit: null })).toThrow(new UserError(message));
  expect(() => preflight(r.config, { data: false, federated: true })).toThrow(message);
  expect(preflight(r.config, { data: false, federated: false })).not.toContainEqual(
    expect.stringContaining('grad_accum'),
  );
  expect(preflight(r.config, { data: false })).toContainEqual(`for flglm train only: ${message}`);
});
