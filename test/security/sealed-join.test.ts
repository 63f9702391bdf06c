import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runClient } from '../../src/client/split-client.js';
import { resolveData, resolveModel } from '../../src/config/experiment.js';
import type { ClientMessage, ServerSessionCall } from '../../src/protocol/messages.js';
import { decodeTensor } from '../../src/protocol/tensors.js';
import { readPrivateKey } from '../../src/security/files.js';
import { PayloadChannel, unwrapRoundKey } from '../../src/security/payload.js';
import { keygen } from '../../src/security/pki.js';
import { clientPartSpec, clientPlan } from '../../src/server/client-update.js';
import { startTransport } from '../../src/server/transport.js';
import { config } from '../helpers/federation.js';
import { hostileFederation, RawClient, wireTensor } from '../helpers/hostile.js';

// Issue 28, item 7: with payload encryption on, the global parts a (re)joining client gets at join
// are sealed (a join key comes first), and a client refuses any tensor that arrives unsealed.
const root = mkdtempSync(join(tmpdir(), 'flglm-sealed-'));
const pki = join(root, 'pki');
keygen({
  out: pki,
  clients: ['alice', 'mallory'],
  serverName: 'localhost',
  serverIps: ['127.0.0.1'],
  days: 1,
  keyBits: 2048,
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const cfg = config(`
seed: 1
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 20}
eval: {max_batches: 1}
security: {tls: true, payload_encryption: true}
federation: {mode: sequential, clients: 1, min_clients: 1, rounds: 3, local_steps: 2, client_timeout_ms: 20000}
`);
const data = resolveData(cfg);
const spec = clientPartSpec(cfg, resolveModel(cfg).config);

test('a client joining after round 1 gets a join key, then the global parts sealed with it', async () => {
  const f = await hostileFederation(cfg, { kitRoot: pki, data });
  try {
    const alice = f.honest('alice', 0);
    for (let i = 0; i < 600 && !f.events.some((e) => e.type === 'round'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const mallory = new RawClient(f.target, 'mallory', join(pki, 'clients', 'mallory'));
    await mallory.join();
    const key = (await mallory.inbox.next(['roundKey'], 20000)).roundKey;
    const averaged = (await mallory.inbox.next(['averaged'], 20000)).averaged;
    mallory.close();
    expect(averaged.tensors.length).toBe(spec.size);
    expect(averaged.tensors.every((t) => t.encrypted)).toBe(true);
    // They open with the join key, unwrapped with mallory's own payload key, and no other.
    const channel = new PayloadChannel(
      unwrapRoundKey(key.wrappedKey, readPrivateKey(join(pki, 'clients', 'mallory', 'payload.key'))),
      'up',
    );
    const ctx = { clientId: 'mallory', keyId: key.keyId, round: averaged.round, step: 0, channel, sealed: true };
    for (const t of averaged.tensors)
      expect(
        decodeTensor(t, { name: t.name, dtype: 'float32', shape: [spec.get(t.name)!], finite: true }, ctx).data.length,
      ).toBe(spec.get(t.name));
    expect((await alice).losses).toHaveLength(6);
  } finally {
    await f.stop();
  }
});

test('a client refuses global parts that arrive unsealed while payload encryption is on', async () => {
  const kit = join(pki, 'server');
  // A server that speaks the protocol but sends the parts in the clear after the plan.
  const server = await startTransport({
    kit,
    port: 0,
    onSession: (call: ServerSessionCall) => {
      call.on('data', (m: ClientMessage) => {
        if (m.kind !== 'join') return;
        call.write({ plan: { planJson: JSON.stringify(clientPlan(cfg, 'sequential')) } });
        const tensors = [...spec].map(([name, n]) => wireTensor(name, [n], 0.5));
        call.write({ averaged: { round: 1, tensors } });
      });
      call.on('error', () => {});
    },
  });
  try {
    const run = runClient({
      target: `127.0.0.1:${server.port}`,
      kit: join(pki, 'clients', 'alice'),
      serverName: 'localhost',
      train: data.silos[0],
      test: data.test,
      reconnectAttempts: 0,
    });
    await expect(run).rejects.toThrow(/tensor \S+ arrived unencrypted but payload encryption is on/);
  } finally {
    await server.close();
  }
});
