import OpenAI from 'openai';
import { runCli } from '../helpers/cli.js';
import { FlglmProcess } from '../helpers/processes.js';

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

test('flglm serve --openai --model HF_FOLDER serves the whole model locally until SIGINT', async () => {
  const p = new FlglmProcess([
    'serve',
    '--openai',
    '--model',
    'models/flglm-small-base',
    '--port',
    '0',
    '--context',
    '64',
  ]);
  try {
    const [, url] = await p.waitFor(
      /OpenAI API for "flglm-small-base" on (http:\/\/127\.0\.0\.1:\d+\/v1) \(local, unsplit/,
    );
    const sdk = new OpenAI({ baseURL: url, apiKey: 'unused', maxRetries: 0 });
    expect((await sdk.models.list()).data.map((m) => m.id)).toEqual(['flglm-small-base']);
    const r = await sdk.chat.completions.create({
      model: 'flglm-small-base',
      messages: [{ role: 'user', content: 'Hello' }],
      max_tokens: 4,
      temperature: 0,
    });
    expect(r.usage?.completion_tokens).toBeGreaterThan(0);
    expect(r.usage?.prompt_tokens).toBe(1 + Buffer.byteLength('User: Hello\nAssistant:'));
    p.kill('SIGINT');
    expect(await p.exited).toBe(0);
  } finally {
    p.kill();
  }
}, 60_000);
