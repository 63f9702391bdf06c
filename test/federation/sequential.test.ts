import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../../src/config/load.js';
import type { ExperimentConfig } from '../../src/config/schema.js';
import { keygen } from '../../src/security/pki.js';
import { startTransport } from '../../src/server/transport.js';
import { SplitServer } from '../../src/server/split-server.js';
import { runClient, type ClientResult } from '../../src/client/split-client.js';
import { trainCentralized } from '../../src/runtime/centralized.js';
import { resolveData } from '../../src/config/experiment.js';

function config(yaml: string): ExperimentConfig {
  const r = parseConfigText(yaml);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.config;
}

const base = `
seed: 3
model: {preset: tiny, max_seq_len: 64}
optimizer: {lr: 0.003, grad_clip: 0}
schedule: {warmup_steps: 2}
data: {task: classify, batch_size: 4, seq_len: 48, max_examples: 40}
eval: {max_batches: 3}
`;

async function federate(cfg: ExperimentConfig, kitRoot: string | null, audit?: (clientId: string, kind: string, body: Record<string, unknown>) => void) {
  const data = resolveData(cfg);
  const server = new SplitServer(cfg, kitRoot ? join(kitRoot, 'server') : null, { log: () => {}, onReceive: audit });
  const transport = await startTransport({ kit: kitRoot ? join(kitRoot, 'server') : null, port: 0, onSession: server.onSession });
  try {
    const ids = ['alice', 'bob', 'carol'].slice(0, cfg.federation.clients);
    const results: ClientResult[] = await Promise.all(ids.map((id, i) => runClient({
      target: `127.0.0.1:${transport.port}`, kit: kitRoot ? join(kitRoot, 'clients', id) : null, serverName: 'localhost',
      train: data.silos[i], test: data.test,
    })));
    const summary = await server.done;
    return { results, summary, data };
  } finally {
    await transport.close();
  }
}

describe('federated split training over gRPC on 127.0.0.1', () => {
  test('1 client, sequential: same per-step losses as centralized training', async () => {
    const cfg = config(base + 'federation: {mode: sequential, clients: 1, rounds: 2, local_steps: 4}\nsecurity: {tls: false, payload_encryption: false}\n');
    const { results, data } = await federate(cfg, null);
    const central = await trainCentralized(cfg, { quiet: true, data });
    expect(results[0].losses).toHaveLength(central.losses.length);
    results[0].losses.forEach((l, i) => expect(Math.abs(l - central.losses[i]) / central.losses[i]).toBeLessThan(1e-4));
  });

  test('3 clients with mTLS and payload encryption: loss goes down, server never sees tokens or labels', async () => {
    const pki = join(mkdtempSync(join(tmpdir(), 'flglm-fed-')), 'pki');
    keygen({ out: pki, clients: ['alice', 'bob', 'carol'], serverName: 'localhost', serverIps: ['127.0.0.1'], days: 1, keyBits: 2048 });
    const cfg = config(base + 'federation: {mode: sequential, clients: 3, rounds: 3, local_steps: 4}\n');
    const seen: { kind: string; names: string[]; encrypted: boolean[] }[] = [];
    const { results } = await federate(cfg, pki, (_id, kind, body) => {
      const payload = body[kind] as { tensor?: { name: string; encrypted: boolean }; tensors?: { name: string; encrypted: boolean }[] };
      const tensors = payload.tensor ? [payload.tensor] : payload.tensors ?? [];
      seen.push({ kind, names: tensors.map((t) => t.name), encrypted: tensors.map((t) => t.encrypted) });
    });
    for (const r of results) {
      expect(r.eval).not.toBeNull();
      const first = r.losses.slice(0, 4).reduce((a, b) => a + b) / 4;
      const last = r.losses.slice(-4).reduce((a, b) => a + b) / 4;
      expect(last).toBeLessThan(first);
    }
    expect(seen.length).toBeGreaterThan(0);
    const names = new Set(seen.flatMap((s) => s.names));
    expect(names.has('tokens')).toBe(false);
    expect(names.has('labels')).toBe(false);
    expect([...names].filter((n) => !n.startsWith('model.') && !n.startsWith('lm_head')).sort()).toEqual(['grad_h_B', 'h_A']);
    expect(seen.every((s) => s.encrypted.every(Boolean))).toBe(true);
  });
});
