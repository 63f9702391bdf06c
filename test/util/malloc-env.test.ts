import { spawnSync } from 'node:child_process';
import { MALLOC_ENV, mallocTuned, withMallocEnv } from '../../src/util/malloc-env.js';

// The settings flglm's launcher gives its server and clients: added where unset, a user's own values
// kept, none with FLGLM_SYSTEM_MALLOC=1; and glibc really keeps freed memory mapped with them.
test('withMallocEnv adds the settings where unset, keeps what is set, and stays out with FLGLM_SYSTEM_MALLOC=1', () => {
  const env = withMallocEnv({ PATH: '/bin' });
  expect(env).toMatchObject({ PATH: '/bin', ...MALLOC_ENV });
  expect(mallocTuned(env)).toBe(true);
  expect(withMallocEnv({ MALLOC_MMAP_MAX_: '65536' }).MALLOC_MMAP_MAX_).toBe('65536');
  expect(withMallocEnv({ FLGLM_SYSTEM_MALLOC: '1' })).toEqual({ FLGLM_SYSTEM_MALLOC: '1' });
  expect(mallocTuned({})).toBe(false);
});

const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
  ?.glibcVersionRuntime;

(glibc ? test : test.skip)(
  'with the settings, a 48 MiB buffer allocated and dropped 20 times faults its pages in about once, not every time',
  () => {
    // Minor page faults of a Node process that allocates, touches and drops (gc) a 48 MiB buffer 20
    // times: above glibc's largest dynamic mmap threshold (32 MiB), so by default each is mmapped anew.
    const script = `const f = () => Number(require('fs').readFileSync('/proc/self/stat', 'utf8').split(' ')[9]);
    const before = f(); for (let i = 0; i < 20; i++) { let b = Buffer.alloc(48 << 20); b.fill(i); b = null; gc(); }
    console.log(f() - before);`;
    const faults = (env: NodeJS.ProcessEnv) =>
      Number(spawnSync(process.execPath, ['--expose-gc', '-e', script], { env, encoding: 'utf8' }).stdout.trim());
    const plain = { ...process.env };
    for (const k of Object.keys(MALLOC_ENV)) delete plain[k];
    const pages = (48 << 20) / 4096;
    expect(faults(plain)).toBeGreaterThan(10 * pages); // glibc's default: mmap and munmap each time
    expect(faults({ ...plain, ...MALLOC_ENV })).toBeLessThan(4 * pages);
  },
);
