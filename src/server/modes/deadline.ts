// How batch mode waits for a group: the first arrival gets the client timeout, the rest a short
// deadline after it, so one slow client cannot hold a whole group's step.

/** Resolve each promise or mark it late: the first gets `firstMs`, the rest `afterFirstMs` more. */
export async function gatherWithDeadline<T>(
  promises: Promise<T>[],
  firstMs: number,
  afterFirstMs: number,
): Promise<({ ok: true; value: T } | { ok: false; error: Error })[]> {
  const results: ({ ok: true; value: T } | { ok: false; error: Error } | null)[] = promises.map(() => null);
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    let pending = promises.length;
    if (pending === 0) return resolve();
    const finish = () => {
      clearTimeout(timer);
      resolve();
    };
    timer = setTimeout(finish, firstMs);
    let first = true;
    promises.forEach((p, i) => {
      p.then(
        (value) => {
          results[i] = { ok: true, value };
        },
        (error: Error) => {
          results[i] = { ok: false, error };
        },
      ).finally(() => {
        if (first) {
          first = false;
          clearTimeout(timer);
          timer = setTimeout(finish, afterFirstMs);
        }
        if (--pending === 0) finish();
      });
    });
  });
  return results.map((r) => r ?? { ok: false, error: new Error('missed the batch deadline') });
}
