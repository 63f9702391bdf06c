import { chunkMessage } from '../protocol/chunking.js';
import type { ClientMessageOut, ClientSessionCall } from '../protocol/messages.js';
import { DelayLine, type LinkModel } from './netem.js';

/** Where the client writes: the Session stream, chunked (and delayed on a simulated link). */
export interface Uplink {
  write(m: ClientMessageOut): void;
  /**
   * Resolves once what was written so far has left for the server. A write only queues: HTTP/2
   * sends on a later turn of the event loop, which ONNX Runtime and the optimizer block while they
   * run. Awaited before such work when the server waits on the message.
   */
  sent(): Promise<void>;
}

/** The uplink over `raw`, in parts of at most `chunkBytes()` (the plan's, once it is known). */
export function createUplink(raw: ClientSessionCall, link: LinkModel | null, chunkBytes: () => number): Uplink {
  const up = link ? new DelayLine<ClientMessageOut>(link, (m) => raw.write(m)) : null;
  let lastWrite: Promise<void> = Promise.resolve();
  return {
    write: (m) => {
      for (const part of chunkMessage(m, chunkBytes())) {
        if (up) up.push(part);
        else lastWrite = new Promise((resolve) => raw.write(part, () => resolve())); // called on failure too
      }
    },
    // The write callback fires when grpc-js hands the message to HTTP/2, which sends it on the
    // event loop's next turn (an immediate).
    sent: () => lastWrite.then(() => new Promise<void>((resolve) => setImmediate(resolve))),
  };
}
