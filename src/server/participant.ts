import { Inbox } from '../protocol/inbox.js';
import type { TensorContext } from '../protocol/tensors.js';
import type { PayloadChannel } from '../security/payload.js';
import { chunkMessage } from '../protocol/chunking.js';
import type { PeerIdentity } from '../security/tls.js';
import { tensorBytesOf } from './client-limits.js';
import type { ClientMessage, ServerMessageOut, ServerSessionCall } from '../protocol/messages.js';

export interface ParticipantOptions {
  peer: PeerIdentity;
  call: ServerSessionCall;
  inbox: Inbox<ClientMessage>;
  /** Examples it reported at join. */
  numExamples: number;
  /** Its payload public key (PEM), which wraps each round's key; null without payload encryption. */
  payloadPublicKey: string | null;
  /** The largest message part it is sent (federation.chunk_bytes). */
  chunkBytes?: number;
  activations?: TensorContext['activations'];
}

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
  readonly peer: PeerIdentity;
  readonly call: ServerSessionCall;
  readonly inbox: Inbox<ClientMessage>;
  readonly numExamples: number;
  readonly payloadPublicKey: string | null;
  closed = false;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly chunkBytes: number;
  private readonly activations: TensorContext['activations'];

  constructor(o: ParticipantOptions) {
    ({ peer: this.peer, call: this.call, inbox: this.inbox, numExamples: this.numExamples } = o);
    this.payloadPublicKey = o.payloadPublicKey;
    this.chunkBytes = o.chunkBytes ?? Number.POSITIVE_INFINITY;
    this.activations = o.activations ?? 'float32';
    this.id = o.peer.clientId;
  }

  context(round: number, step: number): TensorContext {
    const { id: clientId, keyId, channel, activations } = this;
    return { clientId, keyId, round, step, channel, sealed: this.payloadPublicKey !== null, activations };
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
