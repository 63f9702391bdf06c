import { runCli } from '../helpers/cli.js';

// `flglm serve` refuses, before loading anything, what would expose the endpoint or is not the OpenAI API.
test('flglm serve: a non-loopback bind without an API key, or no --openai, is refused with the fix', () => {
  const open = runCli(['serve', '--openai', '--model', 'nowhere', '--host', '0.0.0.0'], {
    env: { FLGLM_API_KEY: '' },
  });
  expect(open.code).not.toBe(0);
  expect(open.stderr).toMatch(/--host 0\.0\.0\.0 is not a loopback address.*Fix: --api-key-file FILE/);
  const plain = runCli(['serve', '--model', 'nowhere']);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toMatch(/add --openai/);
});
