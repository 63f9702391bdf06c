import type { Command } from 'commander';
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, freemem, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { cudaAvailable } from '../runtime/session.js';
import { defaultThreads } from '../runtime/threads.js';
import { readKitServer } from '../security/kit-server.js';
import { MALLOC_ENV, mallocTuned } from '../util/malloc-env.js';

type Check = { ok: boolean | 'warn'; what: string; detail: string };

function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer()
      .once('error', () => res(false))
      .listen(port, host, () => s.close(() => res(true)));
  });
}

function writable(dir: string): boolean {
  let d = resolve(dir);
  while (!existsSync(d)) d = resolve(d, '..');
  try {
    accessSync(d, constants.W_OK);
    return statSync(d).isDirectory();
  } catch {
    return false;
  }
}

/** A kit's certificates: who, until when, and whether its private keys are private. */
function kitChecks(kit: string): Check[] {
  const out: Check[] = [];
  const cert = ['server.crt', 'client.crt'].map((f) => join(kit, f)).find(existsSync);
  if (!cert)
    return [{ ok: false, what: `kit ${kit}`, detail: 'no server.crt or client.crt: not a kit made by flglm keygen' }];
  const x = new X509Certificate(readFileSync(cert));
  const days = (new Date(x.validTo).getTime() - Date.now()) / 86400e3;
  out.push({
    ok: days > 14 ? true : days > 0 ? 'warn' : false,
    what: `kit ${kit}`,
    detail: `${x.subject.replace(/\n/g, ', ')}; expires ${new Date(x.validTo).toISOString().slice(0, 10)} (${days > 0 ? `${Math.floor(days)} days left` : 'EXPIRED: make a new kit with flglm keygen'})`,
  });
  for (const key of ['server.key', 'client.key', 'payload.key']) {
    const p = join(kit, key);
    if (!existsSync(p)) continue;
    const mode = statSync(p).mode & 0o777;
    out.push({
      ok: (mode & 0o077) === 0,
      what: `  ${key}`,
      detail:
        (mode & 0o077) === 0
          ? `mode ${mode.toString(8)}`
          : `mode ${mode.toString(8)}: readable by others. Fix: chmod 600 ${p}`,
    });
  }
  const server = readKitServer(kit);
  if (server)
    out.push({ ok: true, what: '  server.json', detail: `dials ${server.address} (TLS name ${server.server_name})` });
  return out;
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'Check this machine for flglm: Node, ONNX Runtime and its providers, CPU, memory, ports, paths, a PKI kit',
    )
    .option('--pki <dir>', 'also check this startup kit (certificate, expiry, key permissions, server address)')
    .option('--port <n>', 'the port the server will listen on', '50051')
    .action(async (o: { pki?: string; port: string }) => {
      const major = Number(process.versions.node.split('.')[0]);
      const backends = ort.listSupportedBackends().map((b) => `${b.name}${b.bundled ? '' : ' (not bundled)'}`);
      const checks: Check[] = [
        {
          ok: major >= 20,
          what: 'node',
          detail: `${process.versions.node}${major >= 20 ? '' : ': flglm needs Node 20 or newer'}`,
        },
        { ok: true, what: 'onnxruntime-node', detail: `${ort.env.versions.node}; providers: ${backends.join(', ')}` },
        {
          ok: cudaAvailable() ? true : 'warn',
          what: 'cuda',
          detail: cudaAvailable()
            ? 'the CUDA provider loads: runtime.device: cuda uses it'
            : 'not installed: runtime.device: cuda falls back to CPU',
        },
        {
          ok: true,
          what: 'cpu',
          detail: `${cpus()[0]?.model ?? 'unknown'}, ${availableParallelism()} threads; ONNX Runtime uses ${defaultThreads()} per process unless runtime.threads says otherwise`,
        },
        {
          ok: freemem() > 1 << 30 ? true : 'warn',
          what: 'memory',
          detail: `${(freemem() / 2 ** 30).toFixed(1)} GiB free of ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
        },
        {
          ok: (await portFree(Number(o.port))) ? true : 'warn',
          what: `port ${o.port}`,
          detail: (await portFree(Number(o.port)))
            ? 'free on 127.0.0.1'
            : 'in use: flglm server needs --port with another one',
        },
        {
          ok: mallocTuned() ? true : 'warn',
          what: 'malloc',
          detail: mallocTuned()
            ? 'freed memory stays mapped (MALLOC_MMAP_MAX_=0, no trim)'
            : `glibc defaults: each step faults fresh pages in. Fix for processes you start by hand: export ${Object.entries(
                MALLOC_ENV,
              )
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')} (flglm run sets it for its server and clients; src/util/malloc-env.ts)`,
        },
        {
          ok: writable('.'),
          what: 'current folder',
          detail: writable('.')
            ? `${resolve('.')} is writable (runs/ goes here by default)`
            : `${resolve('.')} is not writable: set output_dir in the config`,
        },
        ...(o.pki ? kitChecks(o.pki) : []),
      ];
      for (const c of checks)
        console.log(`${c.ok === true ? 'ok  ' : c.ok === 'warn' ? 'warn' : 'FAIL'}  ${c.what.padEnd(18)} ${c.detail}`);
      if (checks.some((c) => c.ok === false)) process.exitCode = 1;
    });
}
