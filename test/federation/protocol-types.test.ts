import { spawnSync } from 'node:child_process';

// The TypeScript types of every message come from protos/flglm.proto; a proto edit without
// regenerating them (node scripts/gen-proto-types.mjs) must fail here, not drift silently.
test('src/protocol/generated matches protos/flglm.proto', () => {
  const r = spawnSync(process.execPath, ['scripts/gen-proto-types.mjs', '--check'], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});
