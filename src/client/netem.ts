/**
 * A simulated WAN link between this client and the server (for benchmarks): every message waits
 * half the round-trip time plus its size over the bandwidth, in order, in each direction. Set with
 * `flglm client --net-delay-ms 20 --net-mbps 100` (or FLGLM_NET_DELAY_MS / FLGLM_NET_MBPS).
 */
export interface LinkModel {
  rttMs: number;
  mbps: number;
}

export function linkFromEnv(env: NodeJS.ProcessEnv = process.env): LinkModel | null {
  const rtt = Number(env.FLGLM_NET_DELAY_MS ?? 0),
    mbps = Number(env.FLGLM_NET_MBPS ?? 0);
  return rtt > 0 || mbps > 0 ? { rttMs: rtt, mbps } : null;
}

function messageBytes(m: unknown): number {
  let n = 0;
  const walk = (v: unknown) => {
    if (v instanceof Uint8Array) n += v.byteLength;
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(m);
  return n + 64;
}

/**
 * Delays delivery of items, strictly in order: one queue and one timer (separate timers due in
 * the same millisecond may fire in any order). Each item waits until the link has carried the
 * ones before it, plus half the round-trip time.
 */
export class DelayLine<T> {
  private busyUntil = 0;
  private readonly queue: { at: number; item: T }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly link: LinkModel,
    private readonly deliver: (item: T) => void,
  ) {}

  push(item: T): void {
    const now = Date.now();
    const transfer = this.link.mbps > 0 ? (messageBytes(item) * 8) / (this.link.mbps * 1e3) : 0; // ms
    this.busyUntil = Math.max(this.busyUntil, now) + transfer;
    this.queue.push({ at: this.busyUntil + this.link.rttMs / 2, item });
    if (!this.timer) this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => this.pump(), Math.max(0, this.queue[0].at - Date.now()));
  }

  private pump(): void {
    this.timer = null;
    const now = Date.now();
    while (this.queue.length && this.queue[0].at <= now) this.deliver(this.queue.shift()!.item);
    if (this.queue.length) this.schedule();
  }
}
