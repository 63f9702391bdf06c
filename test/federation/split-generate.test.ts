import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS } from '../../src/model/config.js';
import { addPeftParams, initParams, type PeftConfig } from '../../src/model/params.js';
import { partOwns } from '../../src/model/partition.js';
import { generate, generateWith } from '../../src/model/generate.js';
import { SplitStepper } from '../../src/client/split-generate.js';
import { TrunkServer, DEFAULT_SERVE_LIMITS, type ServeLimits } from '../../src/server/serving/trunk-serving.js';
import { startTransport } from '../../src/server/transport.js';
import { keygen } from '../../src/security/pki.js';
import { RevocationChecker } from '../../src/security/tls.js';
import { config as parseConfig } from '../helpers/federation.js';
import { connect } from '../../src/client/transport.js';
import { PROTOCOL_VERSION, type GenerateDown } from '../../src/protocol/messages.js';

// Split inference against a real serving trunk (worker thread, gRPC over mutual TLS with a session
// key on 127.0.0.1): head and tail here, trunk there, caches on both sides. Greedy tokens must be
// exactly the merged model's, for LoRA and full fine-tuning, alone and with sessions batched together.
const config = { ...PRESETS.tiny };
const split = { head_blocks: 1, tail_blocks: 1 };
const cfgFor = (method: 'full' | 'lora', extra = '') =>
  parseConfig(
    `model: {preset: tiny}\nsplit: {head_blocks: 1, tail_blocks: 1}\nfinetune: {method: ${method}, lora: {rank: 4, alpha: 8, targets: [q, v]}}\nruntime: {threads: 1}\n${extra}`,
  );
const peftFor = (method: 'full' | 'lora'): PeftConfig => ({
  method,
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v'] },
  prefix: { length: 2 },
});

function model(method: 'full' | 'lora') {
  const store = initParams(config, 11);
  addPeftParams(store, config, peftFor(method), 11);
  // Weights large enough for a non-flat greedy path, and LoRA adapters that matter.
  for (const [n, p] of store)
    for (let i = 0; i < p.data.length; i++)
      p.data[i] = n.endsWith('lora_B') ? 0.3 * Math.sin(i + n.length) : p.data[i] * 4;
  const part = (names: (n: string) => boolean) => new Map([...store].filter(([n]) => names(n)));
  const [head, trunk, tail] = (['head', 'trunk', 'tail'] as const).map((p) => partOwns(p, config, split));
  return { store, client: part((n) => head(n) || tail(n)), trunk: [...part(trunk)] };
}

let pki: string;
beforeAll(() => {
  pki = join(mkdtempSync(join(tmpdir(), 'flglm-serve-')), 'pki');
  keygen({
    out: pki,
    clients: ['alice', 'bob', 'carol'],
    serverName: 'localhost',
    serverIps: ['127.0.0.1'],
    days: 1,
    keyBits: 2048,
  });
});

async function serving(
  method: 'full' | 'lora',
  trunk: ReturnType<typeof model>['trunk'],
  limits: Partial<ServeLimits> = {},
  extraConfig = '',
) {
  const revocation = new RevocationChecker(join(pki, 'server', 'revoked.json'));
  const events: Record<string, unknown>[] = [];
  const log = (_message: string, fields?: Record<string, unknown>) => {
    if (fields) events.push(fields);
  };
  const server = await TrunkServer.start({
    cfg: cfgFor(method, extraConfig),
    model: config,
    params: trunk,
    kit: join(pki, 'server'),
    revocation,
    limits: { ...DEFAULT_SERVE_LIMITS, cacheLen: 64, ...limits },
    log,
  });
  const transport = await startTransport({
    kit: join(pki, 'server'),
    port: 0,
    revocation,
    onGenerate: server.onGenerate,
  });
  return {
    server,
    events,
    target: `127.0.0.1:${transport.port}`,
    close: async () => {
      await transport.close();
      await server.close();
    },
  };
}

const stepper = (
  target: string,
  id: string,
  client: Map<string, { shape: number[]; data: Float32Array }>,
  method: 'full' | 'lora',
  batch: number,
  promptLen: number,
  timings?: { trunk_s: number; client_s: number; bytes_up: number; bytes_down: number },
) =>
  new SplitStepper({
    target,
    kit: join(pki, 'clients', id),
    serverName: 'localhost',
    config,
    peft: peftFor(method),
    store: client,
    batch,
    promptLen,
    maxNewTokens: 8,
    runtime: { threads: 1 },
    timings,
  });

const greedy = { maxNewTokens: 8, temperature: 0, topK: 0, seed: 0 };
const prompts = [
  [256, 72, 101, 108, 108, 111],
  [256, 87, 104],
  [256, 84, 104, 101, 32, 113, 117],
];

describe('split generation', () => {
  test.each(['full', 'lora'] as const)(
    "%s: greedy tokens equal the merged model's, one session and three at once; only the new position travels per step",
    async (method) => {
      const m = model(method);
      const local = await Promise.all(
        prompts.map((p) => generate(config, peftFor(method), m.store, p, greedy, { threads: 1 })),
      );
      expect(local.every((t) => t.length === 8)).toBe(true);
      const s = await serving(method, m.trunk);
      try {
        // One session decoding the three prompts as a batch of rows.
        const timings = { trunk_s: 0, client_s: 0, bytes_up: 0, bytes_down: 0 };
        const batch = stepper(s.target, 'alice', m.client, method, 3, 7, timings);
        expect(await generateWith(batch, prompts, greedy).finally(() => batch.release())).toEqual(local);
        // Prefill sends [3, 7, D] h_A; every decode step only the rows still decoding, one position each.
        const D = config.hidden_size;
        expect(timings.bytes_up).toBe(4 * D * (3 * 7 + 7 * 3));
        // Three clients' sessions at once: their decode steps are batched on the server.
        const alone = await Promise.all(
          prompts.map((p, k) => {
            const st = stepper(s.target, ['alice', 'bob', 'carol'][k], m.client, method, 1, p.length);
            return generateWith(st, [p], greedy).finally(() => st.release());
          }),
        );
        expect(alone.map((r) => r[0])).toEqual(local);
        await new Promise((r) => setTimeout(r, 50));
        expect(s.server.stats()).toMatchObject({ sessions: 0, rowsInUse: 0 });
        // Each time the server goes idle it logs what its trunk did: the three sessions' 7 decode
        // steps each (the first token comes from the prefill), batched across sessions.
        const idle = s.events.filter((e) => e.event === 'serving_idle');
        expect(idle.at(-1)).toMatchObject({ sessions: 3, rows: 21 });
        expect(idle.at(-1)!.batches as number).toBeLessThan(21);
        expect(idle.at(-1)!.decode_s as number).toBeGreaterThan(0);
        expect(s.server.busyPeriod).toMatchObject({ sessions: 0, rows: 0 });
      } finally {
        await s.close();
      }
    },
    60_000,
  );

  test("the client sends in the server's chunk_bytes (from its opened reply): a prefill larger than that arrives in parts and decodes the same tokens", async () => {
    const m = model('full');
    const local = await generate(config, peftFor('full'), m.store, prompts[0], greedy, { threads: 1 });
    const chunk = 256;
    expect(4 * config.hidden_size * prompts[0].length).toBeGreaterThan(2 * chunk); // the prefill's h_A needs parts
    const s = await serving('full', m.trunk, {}, `federation: {chunk_bytes: ${chunk}}\n`);
    try {
      const st = stepper(s.target, 'alice', m.client, 'full', 1, prompts[0].length);
      expect(await generateWith(st, [prompts[0]], greedy).finally(() => st.release())).toEqual([local]);
      expect(st.chunkBytes).toBe(chunk);
    } finally {
      await s.close();
    }
  }, 60_000);

  test('a session that breaks the protocol is refused alone, its rows freed; the others decode on', async () => {
    const m = model('full');
    const s = await serving('full', m.trunk);
    try {
      const honest = stepper(s.target, 'alice', m.client, 'full', 1, prompts[0].length);
      const local = await generate(config, peftFor('full'), m.store, prompts[0], greedy, { threads: 1 });
      // bob opens a session of 2 rows, then sends a step for a row he does not have, with NaN in it.
      const call = connect(s.target, join(pki, 'clients', 'bob'), 'localhost').client.Generate();
      const down: GenerateDown[] = [];
      call.on('data', (d: GenerateDown) => down.push(d));
      call.on('error', () => {});
      call.write({ open: { protocol: PROTOCOL_VERSION, batch: 2, promptLen: 4, maxNewTokens: 4, lengths: [4, 4] } });
      for (let i = 0; i < 100 && down.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(s.server.stats().rowsInUse).toBe(2);
      call.write({
        step: {
          step: 0,
          rows: [0, 1],
          tensor: {
            name: 'h_A',
            dtype: 'float32',
            shape: [2, 4, config.hidden_size],
            data: Buffer.alloc(2 * 4 * config.hidden_size * 4, 0xff),
            counter: 0,
            tag: Buffer.alloc(0),
            encrypted: false,
          },
        },
      });
      const result = await generateWith(honest, [prompts[0]], greedy).finally(() => honest.release());
      for (let i = 0; i < 100 && !down.some((d) => d.error); i++) await new Promise((r) => setTimeout(r, 20));
      expect(down.find((d) => d.error)?.error?.message).toMatch(/h_A/);
      expect(result[0]).toEqual(local);
      await new Promise((r) => setTimeout(r, 50));
      expect(s.server.stats()).toMatchObject({ sessions: 0, rowsInUse: 0 });
      call.end();
    } finally {
      await s.close();
    }
  }, 60_000);

  test('an idle session is evicted with a clear error and its cache rows are freed; limits are enforced', async () => {
    const m = model('full');
    // Idle long enough that a loaded machine (load 18 seen) does not evict alice before bob asks.
    const s = await serving('full', m.trunk, { idleTimeoutMs: 2000, maxSessions: 1 });
    try {
      const st = stepper(s.target, 'alice', m.client, 'full', 2, 6);
      await st.prefill(prompts.slice(0, 2));
      expect(s.server.stats()).toMatchObject({ sessions: 1, rowsInUse: 2 });
      // A second session over the limit is refused, naming the option.
      const other = stepper(s.target, 'bob', m.client, 'full', 1, 6);
      await expect(other.prefill([prompts[0]])).rejects.toThrow(
        /busy: 1 generation sessions open \(--max-sessions 1\)/,
      );
      for (let i = 0; i < 100 && s.server.stats().sessions > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(s.server.stats()).toMatchObject({ sessions: 0, rowsInUse: 0 });
      await expect(st.decode([1, 2], [6, 3])).rejects.toThrow(/evicted, its cache freed/);
      await st.release();
      await other.release();
    } finally {
      await s.close();
    }
  }, 60_000);
});
