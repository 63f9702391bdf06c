import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'flglm-startup-'));
const pki = join(dir, 'pki');
const tlsConfig = join(dir, 'tls.yaml');
const plainConfig = join(dir, 'plain.yaml');
let busy: Server;
let busyPort: number;

beforeAll(async () => {
  expect(runCli(['keygen', '--out', pki, '--clients', 'alice', '--key-bits', '2048']).code).toBe(0);
  writeFileSync(tlsConfig, 'model: {preset: tiny}\n');
  writeFileSync(plainConfig, 'model: {preset: tiny}\nsecurity: {tls: false, payload_encryption: false}\n');
  busy = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => busy.once('listening', r));
  busyPort = (busy.address() as { port: number }).port;
});
afterAll(() => busy.close());

/** A command that must fail at start-up: non-zero at once, with one line naming the cause. */
function failsFast(args: string[], message: RegExp | string): void {
  const t0 = Date.now();
  const r = runCli(args, { timeoutMs: 20000 });
  expect(r.code).not.toBe(0);
  expect(r.code).not.toBeNull(); // null: killed by the timeout, i.e. it hung
  expect(Date.now() - t0).toBeLessThan(10000);
  expect(r.stderr).toMatch(message);
}

describe('a failed start exits non-zero at once', () => {
  test('server: port in use', () =>
    failsFast(
      ['server', '--config', tlsConfig, '--pki', join(pki, 'server'), '--port', String(busyPort)],
      /the port is in use/,
    ));

  test('server: private key readable by others', () => {
    const key = join(pki, 'server', 'server.key');
    chmodSync(key, 0o644);
    try {
      failsFast(
        ['server', '--config', tlsConfig, '--pki', join(pki, 'server'), '--port', '0'],
        /server\.key has permissions 0644/,
      );
    } finally {
      chmodSync(key, 0o600);
    }
  });

  test('server: missing certificate', () => {
    const cert = join(pki, 'server', 'server.crt');
    renameSync(cert, `${cert}.away`);
    try {
      failsFast(
        ['server', '--config', tlsConfig, '--pki', join(pki, 'server'), '--port', '0'],
        /server certificate not found/,
      );
    } finally {
      renameSync(`${cert}.away`, cert);
    }
  });

  test('server: missing revocation list (fails closed)', () =>
    failsFast(
      [
        'server',
        '--config',
        tlsConfig,
        '--pki',
        join(pki, 'server'),
        '--revoked',
        join(dir, 'nope.json'),
        '--port',
        '0',
      ],
      /revocation list .*nope\.json is missing/,
    ));

  test('client: key readable by others', () => {
    const kit = join(dir, 'loose-kit');
    mkdirSync(kit);
    for (const f of readdirSync(join(pki, 'clients', 'alice')))
      writeFileSync(join(kit, f), readFileSync(join(pki, 'clients', 'alice', f)), { mode: 0o644 });
    mkdirSync(join(dir, 'silo'));
    writeFileSync(join(dir, 'silo', 'a.jsonl'), '{"text": "hello"}\n');
    failsFast(
      ['client', '--data', join(dir, 'silo'), '--pki', kit, '--server', `127.0.0.1:${busyPort}`],
      /client\.key has permissions 0644/,
    );
  });

  test('run: an output folder that cannot be created', () => {
    const cfg = join(dir, 'proc.yaml');
    writeFileSync(cfg, 'model: {preset: tiny}\noutput_dir: /proc/flglm-runs\n');
    failsFast(['run', cfg, '--quiet'], /virtual filesystem/);
  });
});

describe('--insecure is never silent about what it drops', () => {
  test('with --pki', () =>
    failsFast(
      ['server', '--config', plainConfig, '--pki', join(pki, 'server'), '--insecure', '--port', '0'],
      /--insecure and --pki contradict/,
    ));
  test('with a config that asks for TLS', () =>
    failsFast(['server', '--config', tlsConfig, '--insecure', '--port', '0'], /security\.tls: true/));
  test('on a non-loopback address', () =>
    failsFast(
      ['server', '--config', plainConfig, '--insecure', '--host', '0.0.0.0', '--port', '0'],
      /refusing to listen on 0\.0\.0\.0 without TLS/,
    ));
  test('client with --pki', () =>
    failsFast(
      ['client', '--data', dir, '--pki', join(pki, 'clients', 'alice'), '--insecure'],
      /--insecure and --pki contradict/,
    ));
});

describe('keygen never leaves a half-written PKI and never replaces a CA silently', () => {
  test('invalid input is refused before anything is written', () => {
    for (const [args, message] of [
      [['--clients', 'ok,bad id'], /client id "bad id" is not allowed/],
      [['--clients', 'ok,sub-server.x'], /reserved/],
      [['--clients', 'ok', '--server-name', 'a"b\nc'], /--server-name: "a\\"b\\nc" is not a DNS name/],
      [['--clients', 'ok', '--server-ip', '10.0.0.300'], /--server-ip/],
    ] as [string[], RegExp][]) {
      const out = join(dir, `bad-${Math.random().toString(36).slice(2)}`);
      failsFast(['keygen', '--out', out, '--key-bits', '2048', ...args], message);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    }
  });

  test('a folder holding a CA key without a manifest is not overwritten; --force keeps the old one aside', () => {
    const out = join(dir, 'partial');
    mkdirSync(join(out, 'ca'), { recursive: true });
    writeFileSync(join(out, 'ca', 'ca.key'), 'old key', { mode: 0o600 });
    failsFast(['keygen', '--out', out, '--clients', 'a', '--key-bits', '2048'], /already holds a CA key/);
    expect(readFileSync(join(out, 'ca', 'ca.key'), 'utf8')).toBe('old key');
    const r = runCli(['keygen', '--out', out, '--clients', 'a', '--key-bits', '2048', '--force']);
    expect(r.code).toBe(0);
    const kept = /moved to (\S+)/.exec(r.stdout)![1];
    expect(readFileSync(join(kept, 'ca', 'ca.key'), 'utf8')).toBe('old key');
  });

  test('private folders are 0700 whatever the umask', () => {
    const out = join(dir, 'umask');
    const r = spawnSync(
      'sh',
      [
        '-c',
        `umask 000 && "${process.execPath}" bin/flglm keygen --out "${out}" --clients a --sub-servers s --key-bits 2048`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status).toBe(0);
    for (const d of ['ca', 'server', 'clients/a', 'subservers/s'])
      expect(statSync(join(out, d)).mode & 0o777).toBe(0o700);
    for (const f of [
      'ca/ca.key',
      'server/server.key',
      'clients/a/client.key',
      'clients/a/payload.key',
      'subservers/s/client.key',
    ])
      expect(statSync(join(out, f)).mode & 0o777).toBe(0o600);
  });

  test('add-client refuses a reserved id', () =>
    failsFast(['keygen', 'add-client', 'sub-server.evil', '--pki', pki], /reserved/));
});
