/** Length of the union of intervals. */
function unionLength(intervals: [number, number][]): number {
  const iv = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0,
    curS = 0,
    curE = -Infinity;
  for (const [s, e] of iv) {
    if (s > curE) {
      if (curE > curS) total += curE - curS;
      curS = s;
      curE = e;
    } else curE = Math.max(curE, e);
  }
  if (curE > curS) total += curE - curS;
  return total;
}

/**
 * Busy intervals of the trunk replicas during a round, to measure that they run in parallel.
 * A replica is busy over the union of its requests' intervals (requests queued on one replica do
 * not run in parallel); parallel time is what the replicas' busy times add up to beyond their union.
 */
export class BusyLog {
  private intervals = new Map<number, [number, number][]>();
  async time<T>(replica: number, work: Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await work;
    } finally {
      const list = this.intervals.get(replica) ?? [];
      list.push([start, performance.now()]);
      this.intervals.set(replica, list);
    }
  }
  /** [replica busy seconds summed, seconds of it spent in parallel with another replica]. */
  take(): [number, number] {
    const per = [...this.intervals.values()];
    this.intervals = new Map();
    const busy = per.reduce((a, iv) => a + unionLength(iv), 0);
    return [busy / 1000, Math.max(0, busy - unionLength(per.flat())) / 1000];
  }
}
