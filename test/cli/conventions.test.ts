import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { EXAMPLES, pathOf } from '../../src/cli/conventions.js';
import { runCli } from '../helpers/cli.js';

function leaves(cmd: Command): Command[] {
  return cmd.commands.length ? cmd.commands.flatMap(leaves) : [cmd];
}

test("every command's --help has an example, and its required options say so", () => {
  const commands = leaves(buildProgram());
  expect(commands.length).toBeGreaterThan(12);
  // Every command has its example in the one table; --help shows it (checked on one command here).
  expect(commands.map(pathOf).filter((p) => !EXAMPLES[p])).toEqual([]);
  const help = runCli(['export', '--help']).stdout;
  expect(help).toContain(`\nExample:\n  ${EXAMPLES.export[0]}`);
  expect(help).toMatch(/--model <dir> +a flglm checkpoint.*\(required\)/s);
  for (const cmd of commands)
    for (const o of cmd.options)
      if (o.mandatory)
        expect([pathOf(cmd), o.flags, o.description.endsWith('(required)')]).toEqual([pathOf(cmd), o.flags, true]);
});

test("-V prints the version; usage errors start with flglm: and name the command's --help", () => {
  expect(runCli(['-V']).stdout.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  const r = runCli(['run', '--bogus']);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(/^flglm: unknown option '--bogus'/);
  expect(r.stderr).toContain('(run `flglm run --help` for its options and an example)');
});

test.each([
  [
    ['generate', '--model', 'm', '--prompt', 'p', '--temperature', '-1'],
    '--temperature: expected a number >= 0, got "-1"',
  ],
  [['generate', '--model', 'm', '--prompt', 'p', '--top-k', '2.5'], '--top-k: expected an integer >= 0, got "2.5"'],
  [['client', '--data', 'd', '--insecure', '--reconnect', '-1'], '--reconnect: expected an integer >= 0, got "-1"'],
  [
    ['server', '--config', 'c', '--insecure', '--port', '70000'],
    '--port: expected a port from 0 to 65535, got "70000"',
  ],
])('bad numbers are refused before any work: %j', (args, message) => {
  const r = runCli(args);
  expect(r.code).not.toBe(0);
  expect(r.stderr.split('\n')[0]).toBe(`flglm: ${message}`);
});

test('flglm doctor: one line per check; a kit with a world-readable key fails it', async () => {
  const { mkdtempSync, chmodSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const r = runCli(['doctor']);
  expect(r.code).toBe(0);
  for (const what of ['node', 'onnxruntime-node', 'cuda', 'cpu', 'memory', 'port 50051', 'malloc', 'current folder'])
    expect(r.stdout).toMatch(new RegExp(`^(ok  |warn|FAIL)  ${what}`, 'm'));
  const pki = join(mkdtempSync(join(tmpdir(), 'flglm-doc-')), 'pki');
  expect(runCli(['keygen', '--out', pki, '--clients', 'a', '--key-bits', '2048', '--days', '30']).code).toBe(0);
  const kit = join(pki, 'clients', 'a');
  const good = runCli(['doctor', '--pki', kit]);
  expect(good.code).toBe(0);
  expect(good.stdout).toMatch(/ok {4}kit .*CN=a.*\((29|30) days left\)/);
  expect(good.stdout).toMatch(/ok +server\.json +dials localhost:50051/);
  chmodSync(join(kit, 'client.key'), 0o644);
  const bad = runCli(['doctor', '--pki', kit]);
  expect(bad.code).toBe(1);
  expect(bad.stdout).toMatch(/FAIL +client\.key .*readable by others\. Fix: chmod 600/);
});
