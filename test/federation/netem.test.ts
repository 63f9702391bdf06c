import { DelayLine } from '../../src/client/netem.js';

describe('simulated WAN link', () => {
  test('delivers in order, after the latency and the transfer time', async () => {
    const got: { id: number; at: number }[] = [];
    const start = Date.now();
    const line = new DelayLine<{ id: number; data: Uint8Array }>({ rttMs: 40, mbps: 8 }, (m) =>
      got.push({ id: m.id, at: Date.now() - start }),
    );
    line.push({ id: 1, data: new Uint8Array(20000) }); // 20 KB at 8 Mbit/s: 20 ms on the wire
    for (let i = 2; i <= 50; i++) line.push({ id: i, data: new Uint8Array(0) });
    await new Promise((r) => setTimeout(r, 200));
    expect(got.map((g) => g.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(got[0].at).toBeGreaterThanOrEqual(38); // 20 ms transfer + 20 ms half RTT, timer slack
  });
});
