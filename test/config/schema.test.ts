import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseConfigText, formatProblem } from '../../src/config/load.js';
import { experimentSchema } from '../../src/config/schema.js';
import { SERVER_MODES } from '../../src/server/modes/lookup.js';

const quickstart = readFileSync('configs/quickstart.yaml', 'utf8');

function problems(text: string): string[] {
  const r = parseConfigText(text);
  if (r.ok) throw new Error('expected the config to be rejected');
  return r.problems.map(formatProblem);
}

describe('experiment config', () => {
  test('quickstart is valid and resolves every default', () => {
    const r = parseConfigText(quickstart);
    if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'));
    expect(r.config.federation.mode).toBe('sequential');
    expect(r.config.federation.strategy.name).toBe('relay');
    expect(r.config.federation.clients).toBe(3);
    expect(r.config.finetune.lora.rank).toBe(8);
    expect(r.config.runtime.device).toBe('cpu');
  });

  test('an empty file resolves to all defaults', () => {
    const r = parseConfigText('');
    expect(r.ok).toBe(true);
  });

  test('reference.yaml lists exactly the defaults of the schema', () => {
    const reference = parse(readFileSync('configs/reference.yaml', 'utf8'));
    expect(reference).toEqual(experimentSchema.parse({}));
  });

  test('misspelled enum names the key, the choices, the value and the line', () => {
    const text = quickstart.replace('mode: sequential', 'mode: sequental');
    const line = text.split('\n').findIndex((l) => l.includes('sequental')) + 1;
    expect(problems(text)).toEqual([
      `federation.mode: expected ${SERVER_MODES.join('|')}, got "sequental" (line ${line})`,
    ]);
  });

  test('wrong type', () => {
    const [p] = problems('federation:\n  rounds: many\n');
    expect(p).toBe('federation.rounds: expected number, got "many" (line 2)');
  });

  test('out of range numbers', () => {
    expect(problems('federation:\n  rounds: 0\n')[0]).toMatch(/^federation\.rounds: expected > 0, got 0 \(line 2\)$/);
    expect(problems('data:\n  test_fraction: 1.5\n')[0]).toMatch(
      /^data\.test_fraction: expected < 1, got 1\.5 \(line 2\)$/,
    );
    expect(problems('optimizer:\n  lr: -1\n')[0]).toMatch(/^optimizer\.lr: expected > 0/);
  });

  test('unknown key at any depth names the key and its line', () => {
    expect(problems('seed: 1\nfederaton:\n  mode: batch\n')).toEqual([
      'federaton: unknown key "federaton"; did you mean "federation"? check its spelling against configs/reference.yaml (line 2)',
    ]);
    expect(problems('model:\n  preset: tiny\n  layers: 3\n')).toEqual([
      'model.layers: unknown key "layers"; check its spelling against configs/reference.yaml (line 3)',
    ]);
  });

  test('partition rule format', () => {
    expect(parseConfigText('data:\n  partition: dirichlet:0.3\n').ok).toBe(true);
    expect(problems('data:\n  partition: dirichlet\n')[0]).toMatch(
      /^data\.partition: expected natural\|iid\|dirichlet:ALPHA, got "dirichlet" \(line 2\)$/,
    );
  });

  test('cross-field rules', () => {
    expect(problems('federation:\n  clients: 2\n  min_clients: 3\n')[0]).toMatch(
      /^federation\.min_clients: must be at most federation\.clients \(2\), got 3 \(line 3\)$/,
    );
    expect(problems('data:\n  silos: [a, b]\nfederation:\n  clients: 3\n')[0]).toMatch(
      /^data\.silos: lists 2 silos but federation\.clients is 3/,
    );
  });

  test('secure aggregation and a hidden aggregate refuse what they cannot compute, naming the fix', () => {
    const secure = 'privacy:\n  secure_aggregation:\n    enabled: true\n';
    expect(problems(`federation:\n  mode: sequential\n  strategy:\n    name: relay\n${secure}`).join('\n')).toMatch(
      /secure aggregation computes a weighted mean, which relay is not .* use one of .*\bfedavg\b/,
    );
    expect(problems(`federation:\n  update_encoding: float16-delta\n${secure}`).join('\n')).toMatch(
      /has its own fixed-point encoding; use update_encoding: float32/,
    );
    expect(problems(`federation:\n  strategy:\n    client_optimizer: average\n${secure}`).join('\n')).toMatch(
      /optimizer moments in the clear/,
    );
    expect(problems('privacy:\n  hide_aggregate: true\n').join('\n')).toMatch(
      /set privacy.secure_aggregation.enabled: true too/,
    );
    expect(
      problems(`federation:\n  strategy:\n    name: fedadam\n${secure}  hide_aggregate: true\n`).join('\n'),
    ).toMatch(/cannot take fedadam's server-side step/);
    expect(problems(`security:\n  tls: false\n${secure}  hide_aggregate: true\n`).join('\n')).toMatch(
      /needs the federation secret in the client kits/,
    );
    expect(parseConfigText(`${secure}  hide_aggregate: true\n`).ok).toBe(true);
  });

  test('YAML syntax error reports its line', () => {
    const [p] = problems('seed: 1\nmodel:\n  preset: [tiny\nsplit: {}\n');
    expect(p).toMatch(/^\(yaml\): YAML syntax error: .+ \(line \d+\)$/);
  });

  test('several problems are all reported', () => {
    expect(problems('seed: -1\nfederation:\n  mode: x\n  rounds: 0\n')).toHaveLength(3);
  });
});

test('paths written in a config file resolve against its folder; defaults stay relative to the current directory', async () => {
  const { mkdtempSync, writeFileSync, mkdirSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadConfigFile } = await import('../../src/config/load.js');
  const dir = mkdtempSync(join(tmpdir(), 'flglm-cfg-'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(
    join(dir, 'sub', 'exp.yaml'),
    'data: {silos: [a, ../b, /abs/c], test: t}\nmodel: {hf_path: ../models/m}\n',
  );
  const cfg = loadConfigFile(join(dir, 'sub', 'exp.yaml'));
  expect(cfg.data.silos).toEqual([join(dir, 'sub', 'a'), join(dir, 'b'), '/abs/c']);
  expect(cfg.data.test).toBe(join(dir, 'sub', 't'));
  expect(cfg.model.hf_path).toBe(join(dir, 'models', 'm'));
  expect(cfg.output_dir).toBe('runs');
  writeFileSync(join(dir, 'sub', 'out.yaml'), 'output_dir: results\n');
  expect(loadConfigFile(join(dir, 'sub', 'out.yaml')).output_dir).toBe(join(dir, 'sub', 'results'));
});

describe('config ergonomics', () => {
  test('--set overrides keys with YAML-typed values; a bad override is one clear problem', () => {
    const r = parseConfigText(quickstart, [
      'federation.rounds=8',
      'data.silos=[a, b, c]',
      'data.test=t',
      'eval.every_rounds=2',
      'name=tuned',
    ]);
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.config.federation.rounds).toBe(8);
    expect(r.config.data.silos).toEqual(['a', 'b', 'c']);
    expect(r.config.name).toBe('tuned');
    const bad = parseConfigText(quickstart, ['federation.rounds']);
    expect(bad.ok ? [] : bad.problems.map(formatProblem)).toEqual([
      '--set: expected KEY=VALUE with a dotted key (e.g. federation.rounds=8), got "federation.rounds"',
    ]);
    const typo = parseConfigText(quickstart, ['federation.round=3']);
    expect(typo.ok ? [] : typo.problems.map((p) => p.message)).toEqual([
      'unknown key "round"; did you mean "rounds"? check its spelling against configs/reference.yaml',
    ]);
    const wrong = parseConfigText(quickstart, ['federation.rounds=many']);
    expect(wrong.ok ? [] : wrong.problems.map((p) => p.message)).toEqual(['expected number, got "many"']);
  });

  test('configs/flglm.schema.json is the schema of the current config (flglm config schema)', async () => {
    const { configJsonSchema } = await import('../../src/cli/config-command.js');
    expect(readFileSync('configs/flglm.schema.json', 'utf8')).toBe(configJsonSchema());
  });

  test('flglm init writes a starter config that validates, and never overwrites', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { runCli } = await import('../helpers/cli.js');
    const file = join(mkdtempSync(join(tmpdir(), 'flglm-init-')), 'exp.yaml');
    expect(runCli(['init', file]).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toMatch(/^# yaml-language-server: \$schema=.*configs\/flglm.schema.json\n/);
    expect(runCli(['config', 'validate', file]).code).toBe(0);
    expect(runCli(['init', file]).stderr).toMatch(/already exists; refusing to overwrite/);
  });
});

describe('preflight: what can be checked before any work', () => {
  test('positions, split, memory and data folders, each one clear error', async () => {
    const { preflight } = await import('../../src/config/preflight.js');
    const cfgOf = (yaml: string) => {
      const r = parseConfigText(yaml);
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      return r.config;
    };
    expect(() => preflight(cfgOf('data: {seq_len: 4096}\n'))).toThrow(
      "data.seq_len 4096 exceeds the model's max_position_embeddings 512. Fix: lower data.seq_len or raise model.max_seq_len",
    );
    expect(() => preflight(cfgOf('model: {max_seq_len: 100000}\ndata: {seq_len: 100000}\n'))).toThrow(
      /one training step needs about \d+\.\d GiB .* Fix: lower data.seq_len or data.batch_size/,
    );
    expect(() => preflight(cfgOf('split: {head_blocks: 4, tail_blocks: 4}\n'))).toThrow(
      /head_blocks \+ tail_blocks < 8/,
    );
    expect(() =>
      preflight(
        cfgOf('federation: {clients: 2}\ndata: {silos: [/nonexistent/a, /nonexistent/b], test: /nonexistent/t}\n'),
      ),
    ).toThrow('data folder not found: /nonexistent/a');
    expect(preflight(cfgOf(quickstart))[0]).toMatch(
      /^model: llama, 8 layers \(head 1, tail 1\); one step needs about 0\.\d GiB/,
    );
  });
});

test('preflight: data.chat_template needs a model tokenizer with a template', async () => {
  const { preflight } = await import('../../src/config/preflight.js');
  const r = parseConfigText('data: {chat_template: true}\n');
  if (!r.ok) throw new Error('invalid');
  expect(() => preflight(r.config)).toThrow(/data.chat_template: true, but a preset model has no tokenizer/);
});
