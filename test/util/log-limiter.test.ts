import { LogLimiter } from '../../src/util/log-limiter.js';

test('one line per key per period, then a count of what was held back', () => {
  let now = 0;
  const lines: string[] = [];
  const limiter = new LogLimiter(
    (l) => lines.push(l),
    60_000,
    () => now,
  );
  for (let i = 0; i < 200; i++) limiter.log('peer-a', 'refused peer-a');
  limiter.log('peer-b', 'refused peer-b');
  expect(lines).toEqual(['refused peer-a', 'refused peer-b']);
  now = 60_000;
  limiter.log('peer-a', 'refused peer-a');
  expect(lines[2]).toBe('refused peer-a (199 more like it in the last 60 s)');
});
