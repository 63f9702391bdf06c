import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultThreads, physicalCores } from '../../src/runtime/threads.js';

/** A sysfs cpu folder: cpuN with its package, core and (except cpu0) online flag. */
function fakeSysfs(cpus: { pkg: number; core: number; online?: boolean }[]): string {
  const root = mkdtempSync(join(tmpdir(), 'flglm-sysfs-'));
  cpus.forEach((c, i) => {
    const dir = join(root, `cpu${i}`);
    mkdirSync(join(dir, 'topology'), { recursive: true });
    writeFileSync(join(dir, 'topology', 'physical_package_id'), `${c.pkg}\n`);
    writeFileSync(join(dir, 'topology', 'core_id'), `${c.core}\n`);
    if (i > 0) writeFileSync(join(dir, 'online'), c.online === false ? '0\n' : '1\n');
  });
  mkdirSync(join(root, 'cpufreq'));
  return root;
}

describe('ONNX Runtime threads', () => {
  test('physical cores: SMT siblings count once, offline CPUs not at all, two packages apart', () => {
    const root = fakeSysfs([
      { pkg: 0, core: 0 },
      { pkg: 0, core: 1 },
      { pkg: 0, core: 0 },
      { pkg: 0, core: 1 },
      { pkg: 1, core: 0 },
      { pkg: 1, core: 1, online: false },
    ]);
    try {
      expect(physicalCores(root)).toBe(3);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    expect(physicalCores(join(tmpdir(), 'no-such-sysfs'))).toBeNull();
  });

  test("the default uses every core this process may run on (ORT's own default ran one thread on 2-core guests)", () => {
    const n = defaultThreads();
    expect(n).toBeGreaterThanOrEqual(1);
    expect(n).toBeLessThanOrEqual(availableParallelism());
    const cores = physicalCores();
    if (cores !== null) expect(n).toBe(Math.min(cores, availableParallelism()));
  });
});
