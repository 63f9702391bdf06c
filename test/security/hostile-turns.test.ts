import { Inbox } from '../../src/protocol/inbox.js';
import { SplitServer } from '../../src/server/split-server.js';
import { config } from '../helpers/federation.js';
import { hostileFederation, RawClient } from '../helpers/hostile.js';

// Issue 28, item 1: a client that joins and then says nothing in its turn, first in the turn order.
// The server drops it at its deadline; the clients waiting behind it must not give up at the same
// moment (the server's heartbeats show it alive), and finish the run.
const TIMEOUT_MS = 3000;

describe.each(['sequential', 'interleaved'])('%s mode: a silent first-in-turn client', (mode) => {
  test('is dropped alone, and the clients waiting for their turn finish', async () => {
    const cfg = config(`
seed: 1
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 30}
schedule: {warmup_steps: 0, decay: constant}
eval: {max_batches: 1}
security: {tls: false, payload_encryption: false}
federation: {mode: ${mode}, clients: 3, min_clients: 1, rounds: 2, local_steps: 2, heartbeat_ms: 500, client_timeout_ms: ${TIMEOUT_MS}}
`);
    const f = await hostileFederation(cfg);
    try {
      // "aaa" sorts first, so it is served first; it joins, takes its round start and goes silent.
      const silent = new RawClient(f.target, 'aaa');
      await silent.join();
      const honest = [f.honest('bob', 0), f.honest('carol', 1)];
      await silent.roundStart();
      const t0 = Date.now();
      const results = await Promise.all(honest);
      // The honest clients waited past the deadline the silent one was dropped at.
      expect(Date.now() - t0).toBeGreaterThan(TIMEOUT_MS);
      for (const r of results) {
        expect(r.losses).toHaveLength(4);
        expect(r.losses.every(Number.isFinite)).toBe(true);
      }
      const summary = await f.server.done;
      expect(summary.history[0]).toMatchObject({
        clients: ['insecure-bob', 'insecure-carol'],
        dropped: ['insecure-aaa'],
      });
      expect(summary.history[1].clients).toEqual(['insecure-bob', 'insecure-carol']);
      silent.close();
    } finally {
      await f.stop();
    }
  });
});

describe('what a wait counts as silence', () => {
  const heartbeats = (inbox: Inbox<{ kind: string }>) => {
    const timer = setInterval(() => inbox.push({ kind: 'heartbeat' }), 50);
    return () => clearInterval(timer);
  };

  test('a server reading a client keeps its deadline: heartbeats alone do not hold a turn', async () => {
    const inbox = new Inbox<{ kind: string }>();
    const stop = heartbeats(inbox);
    try {
      await expect(inbox.next(['activations'], 300)).rejects.toThrow('peer silent for 300 ms');
    } finally {
      stop();
    }
  });

  test("a client reading the server waits as long as the server's heartbeats come", async () => {
    const inbox = new Inbox<{ kind: string; trunkOut?: object }>(null, true);
    const stop = heartbeats(inbox);
    setTimeout(() => inbox.push({ kind: 'trunkOut', trunkOut: {} }), 700);
    try {
      expect((await inbox.next(['trunkOut'], 300)).kind).toBe('trunkOut');
    } finally {
      stop();
    }
    await expect(inbox.next(['trunkOut'], 300)).rejects.toThrow('peer silent for 300 ms');
  });

  test('heartbeats too rare for the client timeout are refused at start', () => {
    const cfg = config(`model: {preset: tiny}
security: {tls: false, payload_encryption: false}
federation: {heartbeat_ms: 2000, client_timeout_ms: 3000}`);
    expect(() => new SplitServer({ cfg, kit: null })).toThrow(
      'federation.heartbeat_ms: 2000 with client_timeout_ms 3000: a client waiting for its turn would see the server silent; keep heartbeat_ms at most half of client_timeout_ms',
    );
  });
});
