import { Inbox } from '../protocol/inbox.js';
import type { TensorContext } from '../protocol/tensors.js';
import type { PayloadChannel } from '../security/payload.js';
import { chunkMessage } from '../protocol/chunking.js';
import type { PeerIdentity } from '../security/tls.js';
import { tensorBytesOf } from './client-limits.js';
import type { ClientMessage, ServerMessageOut, ServerSessionCall } from '../protocol/messages.js';

/** One connected client as the server sees it: its stream, inbox and this round's payload key. */
export class Participant {
  keyId = '';
  channel: PayloadChannel | null = null;
  /** Training rows (sequences) of h_A received this round: the client's verified FedAvg weight. */
  examplesThisRound = 0;
  /** Tensor bytes sent to and received from this client (for the per-round traffic record). */
  bytesSent = 0;
  bytesReceived = 0;
  readonly id: string;
  closed = false;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    readonly peer: PeerIdentity,
    readonly call: ServerSessionCall,
    readonly inbox: Inbox<ClientMessage>,
    readonly numExamples: number,
    readonly payloadPublicKey: string | null,
    private readonly chunkBytes = Number.POSITIVE_INFINITY,
    private readonly activations: TensorContext['activations'] = 'float32',
  ) {
    this.id = peer.clientId;
  }

  context(round: number, step: number): TensorContext {
    return { clientId: this.id, keyId: this.keyId, round, step, channel: this.channel, activations: this.activations };
  }

  send(m: ServerMessageOut): void {
    if (this.closed) return;
    for (const part of chunkMessage(m, this.chunkBytes)) {
      this.bytesSent += tensorBytesOf(part);
      this.call.write(part);
    }
  }

  /** Heartbeats keep idle streams (a client waiting for its turn) visibly alive. */
  startHeartbeats(everyMs: number): void {
    this.heartbeat = setInterval(() => this.send({ heartbeat: { timeMs: Date.now() } }), everyMs);
    this.heartbeat.unref();
  }

  /** Tell the client why it is dropped, then end its stream (it may rejoin later). */
  close(reason?: string): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.closed) return;
    if (reason) {
      try {
        this.call.write({ error: { code: 'DROPPED', message: reason } });
      } catch {
        /* stream already gone */
      }
    }
    this.closed = true;
    try {
      this.call.end();
    } catch {
      /* stream already gone */
    }
  }
}
