import * as http2 from 'node:http2';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHANNEL_OPTIONS } from '../../src/protocol/load.js';
import { startTransport } from '../../src/server/transport.js';
import { keygen } from '../../src/security/pki.js';

const WINDOW = CHANNEL_OPTIONS['grpc-node.flow_control_window'] as number;

/** The windows a client is given by the server: per stream (SETTINGS) and for the connection (WINDOW_UPDATE). */
async function windowsSeenBy(
  url: string,
  tls: http2.SecureClientSessionOptions = {},
): Promise<{ stream: number; connection: number }> {
  const session = http2.connect(url, tls);
  try {
    await new Promise<void>((resolve, reject) => {
      session.once('remoteSettings', () => resolve());
      session.once('error', reject);
    });
    // The connection window grows by the WINDOW_UPDATE that follows the SETTINGS frame.
    for (let i = 0; i < 100 && (session.state.remoteWindowSize ?? 0) < WINDOW; i++)
      await new Promise((r) => setTimeout(r, 20));
    return { stream: session.remoteSettings.initialWindowSize ?? 0, connection: session.state.remoteWindowSize ?? 0 };
  } finally {
    session.destroy();
  }
}

describe("the server's receive windows", () => {
  // grpc-js's server keeps Node's 64 KiB windows whatever its options say; a client's 1 MiB h_A
  // then waits for 16 WINDOW_UPDATEs (receive-window.ts).
  test('a client may send 16 MiB before the server answers, plaintext and over mutual TLS', async () => {
    expect(WINDOW).toBeGreaterThanOrEqual(16 * 2 ** 20);
    const plain = await startTransport({ kit: null, port: 0 });
    try {
      expect(await windowsSeenBy(`http://127.0.0.1:${plain.port}`)).toEqual({ stream: WINDOW, connection: WINDOW });
    } finally {
      await plain.close();
    }
    const root = mkdtempSync(join(tmpdir(), 'flglm-window-'));
    try {
      keygen({
        out: join(root, 'pki'),
        clients: ['alice'],
        serverName: 'localhost',
        serverIps: ['127.0.0.1'],
        days: 1,
        keyBits: 2048,
      });
      const kit = join(root, 'pki', 'server');
      const alice = join(root, 'pki', 'clients', 'alice');
      const secure = await startTransport({ kit, port: 0 });
      try {
        const tls = {
          ca: readFileSync(join(alice, 'ca.crt')),
          cert: readFileSync(join(alice, 'client.crt')),
          key: readFileSync(join(alice, 'client.key')),
          servername: 'localhost',
          ALPNProtocols: ['h2'],
        };
        expect(await windowsSeenBy(`https://127.0.0.1:${secure.port}`, tls)).toEqual({
          stream: WINDOW,
          connection: WINDOW,
        });
      } finally {
        await secure.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60000);
});
