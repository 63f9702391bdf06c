import { SplitServer } from '../../src/server/split-server.js';
import { startTransport } from '../../src/server/transport.js';
import { resolveData } from '../../src/config/experiment.js';
import { runClient } from '../../src/client/split-client.js';
import { config } from '../helpers/federation.js';
import { RawClient } from '../helpers/hostile.js';

const cfg = config(`
seed: 1
model: {preset: tiny}
data: {batch_size: 2, seq_len: 16, max_examples: 20}
federation: {mode: sequential, clients: 2, rounds: 1, local_steps: 2, min_clients: 1, client_timeout_ms: 20000}
eval: {max_batches: 1}
security: {tls: false, payload_encryption: false}
`);

function tensor(name: string, shape: number[], dtype = 'float32', bytes?: number) {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, dtype, shape, data: Buffer.alloc(bytes ?? n * 4), counter: 0, tag: Buffer.alloc(0), encrypted: false };
}

describe('malformed messages are refused without crashing the server', () => {
  test.each([
    ['wrong shape', tensor('h_A', [2, 16, 16]), /shape \[2,16,16\], expected \[2,16,32\]/],
    ['more bytes than the plan allows', tensor('h_A', [2, 16, 99]), /tensor h_A is over 4096 bytes/],
    ['wrong dtype', tensor('h_A', [2, 16, 32], 'float64'), /dtype float64, expected float32/],
    ['wrong tensor name', tensor('tokens', [2, 16, 32]), /expected tensor h_A, got tokens/],
    ['truncated bytes', tensor('h_A', [2, 16, 32], 'float32', 100), /got 100 bytes/],
  ])('%s', async (_name, badTensor, message) => {
    const data = resolveData(cfg);
    const server = new SplitServer({ cfg, kit: null });
    await server.init();
    const transport = await startTransport({ kit: null, port: 0, onSession: server.onSession });
    const target = `127.0.0.1:${transport.port}`;
    try {
      // A well-behaved client trains alongside the bad one.
      const good = runClient({
        target,
        kit: null,
        train: data.silos[0],
        test: data.test,
        insecureName: 'good',
        reconnectAttempts: 0,
      });
      const bad = new RawClient(target, 'bad');
      await bad.join(10);
      // Wait for this client's turn, then send a bad activation.
      await bad.roundStart(20000);
      bad.send({ activations: { round: 1, step: 1, tensor: badTensor, eval: false } });
      expect(await bad.dropReason(20000)).toMatch(message);
      bad.close();
      const r = await good;
      expect(r.losses).toHaveLength(2);
      const summary = await server.done;
      expect(summary.history[0].clients).toEqual(['insecure-good']);
      expect(summary.history[0].dropped).toEqual(['insecure-bad']);
    } finally {
      await transport.close();
      await server.close();
    }
  });
});
