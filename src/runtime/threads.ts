import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

/**
 * Physical cores as Linux's sysfs lists them: distinct (package, core) pairs among the online CPUs,
 * so that SMT siblings count once. Null where sysfs cannot tell (another OS, a masked /sys).
 */
export function physicalCores(root = '/sys/devices/system/cpu'): number | null {
  try {
    const cores = new Set<string>();
    for (const cpu of readdirSync(root).filter((n) => /^cpu\d+$/.test(n))) {
      const dir = join(root, cpu);
      try {
        if (readFileSync(join(dir, 'online'), 'utf8').trim() === '0') continue;
      } catch {
        // cpu0 has no `online` file: always online.
      }
      const read = (f: string) => readFileSync(join(dir, 'topology', f), 'utf8').trim();
      cores.add(`${read('physical_package_id')}:${read('core_id')}`);
    }
    return cores.size || null;
  } catch {
    return null;
  }
}

/** Physical cores of this machine, read on first use (Infinity where sysfs cannot tell). */
let cores: number | undefined;

/**
 * ONNX Runtime's intra-op threads when the config leaves them open: one per physical core this
 * process may use. ORT's own default (0) ran as one thread on this 2-core guest: a `small` 8 x 128
 * full step took 0.368 s with it, 0.365 s with 1 thread and 0.236 s with 2 (2026-12-02), and every
 * client, `flglm train` and centralized baseline without `runtime.threads` ran that slowly.
 * SMT siblings share a core's FMA units, so they are not counted (as ORT intends).
 */
export function defaultThreads(): number {
  cores ??= physicalCores() ?? Number.POSITIVE_INFINITY;
  return Math.max(1, Math.min(availableParallelism(), cores));
}
