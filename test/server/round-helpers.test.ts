import { BusyLog } from '../../src/server/busy-log.js';
import { gatherWithDeadline } from '../../src/server/modes/deadline.js';

const after = <T>(ms: number, v: T) => new Promise<T>((r) => setTimeout(() => r(v), ms));
const failAfter = (ms: number, m: string) => new Promise<never>((_, rej) => setTimeout(() => rej(new Error(m)), ms));

describe('batch deadline gather', () => {
  test('the first arrival starts a short deadline; later arrivals past it are marked late', async () => {
    const t0 = performance.now();
    const r = await gatherWithDeadline([after(20, 'a'), after(40, 'b'), after(2000, 'c')], 5000, 100);
    const took = performance.now() - t0;
    expect(r[0]).toEqual({ ok: true, value: 'a' });
    expect(r[1]).toEqual({ ok: true, value: 'b' });
    expect(r[2]).toMatchObject({ ok: false, error: expect.objectContaining({ message: 'missed the batch deadline' }) });
    expect(took).toBeGreaterThanOrEqual(100);
    expect(took).toBeLessThan(1000);
  });

  test("a failure counts as an arrival and is reported as that client's error", async () => {
    const r = await gatherWithDeadline([failAfter(10, 'stream ended'), after(30, 'b')], 5000, 200);
    expect(r[0]).toMatchObject({ ok: false, error: expect.objectContaining({ message: 'stream ended' }) });
    expect(r[1]).toEqual({ ok: true, value: 'b' });
  });

  test('nobody arrives: everyone is late after the first deadline; nothing to wait for returns at once', async () => {
    const t0 = performance.now();
    const r = await gatherWithDeadline([after(5000, 'a')], 80, 10);
    expect(r[0].ok).toBe(false);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(await gatherWithDeadline([], 5000, 10)).toEqual([]);
  });
});

describe('BusyLog', () => {
  test('busy time is the union per replica; parallel time is the overlap between replicas', async () => {
    const log = new BusyLog();
    // Replica 0: two queued requests back to back (~100 ms, never parallel with itself).
    // Replica 1: one request of ~100 ms during replica 0's.
    await Promise.all([
      log.time(0, after(50, null)).then(() => log.time(0, after(50, null))),
      log.time(1, after(100, null)),
    ]);
    const [busy, overlap] = log.take();
    expect(busy).toBeGreaterThan(0.18);
    expect(busy).toBeLessThan(0.5);
    expect(overlap).toBeGreaterThan(0.08);
    expect(overlap).toBeLessThanOrEqual(busy / 2 + 0.01);
    // Taking resets the log; one replica alone never overlaps.
    await log.time(0, after(30, null));
    const [busy2, overlap2] = log.take();
    expect(busy2).toBeGreaterThan(0.02);
    expect(overlap2).toBe(0);
  });
});
