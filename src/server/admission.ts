import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExperimentConfig } from '../config/schema.js';
import { reassembling } from '../protocol/chunking.js';
import { ACTIVATION_WIRE_DTYPES } from '../protocol/tensors.js';
import { Inbox } from '../protocol/inbox.js';
import { ProtocolError } from '../protocol/tensors.js';
import type { PeerIdentity, RevocationChecker } from '../security/tls.js';
import { LogLimiter } from '../util/log-limiter.js';
import { tensorBytesOf, type ClientLimits } from './client-limits.js';
import { Participant } from './participant.js';
import { PROTOCOL_VERSION, type ClientMessage, type ServerSessionCall } from '../protocol/messages.js';

export interface AdmissionDeps {
  cfg: ExperimentConfig;
  /** Server kit (payload keys); null = plaintext. */
  kit: string | null;
  limits: ClientLimits;
  revocation: RevocationChecker | null;
  /** The server's joined clients by client id (admission adds, replaces and cuts off). */
  participants: Map<string, Participant>;
  /** Structured events (metrics.jsonl): a live client cut off, with why. */
  onEvent?: (record: Record<string, unknown>) => void;
  log: (msg: string) => void;
  joined: (s: Participant, lastRound: number) => void;
}

/**
 * Who may talk to the server and how much: every Session stream gets an inbox bounded by the
 * plan's limits and a chunk assembler with the same limits; every message is checked against the
 * revocation list (a revoked client is cut off within one step); a `join` is checked (payload key,
 * name, sample count) before the client is registered. Refusals are logged once per peer per minute.
 */
export class Admission {
  private readonly refusals: LogLimiter;

  constructor(private readonly d: AdmissionDeps) {
    this.refusals = new LogLimiter(d.log);
  }

  accept(call: ServerSessionCall, peer: PeerIdentity): void {
    const { cfg } = this.d;
    const inbox = new Inbox<ClientMessage>(this.d.limits.queue);
    let joined: Participant | null = null;
    const receive = reassembling<ClientMessage>(
      (m) => {
        if (joined) joined.bytesReceived += tensorBytesOf(m);
        inbox.push(m);
      },
      (e) => inbox.fail(e),
      this.d.limits.chunks,
    );
    call.on('data', (m: ClientMessage) => {
      if (inbox.failed) return;
      const revoked = this.revokedReason(peer);
      if (revoked) return this.cutOff(peer.clientId, inbox, revoked);
      receive(m);
    });
    call.on('error', (e) => inbox.fail(e));
    call.on('end', () => inbox.fail(new Error('client closed the stream')));
    call.on('cancelled', () => inbox.fail(new Error('client cancelled the stream')));
    void (async () => {
      try {
        const joinMsg = await inbox.next(['join'], cfg.federation.client_timeout_ms);
        let payloadPublicKey: string | null = null;
        if (this.d.kit && cfg.security.payload_encryption) {
          const path = join(this.d.kit, 'payload-keys', `${peer.clientId}.pub`);
          if (!existsSync(path))
            throw new ProtocolError(
              `unknown client "${peer.clientId}": the server has no payload key for it (${path}); add it with \`flglm keygen add-client ${peer.clientId}\``,
            );
          payloadPublicKey = readFileSync(path, 'utf8');
        }
        const j = joinMsg.join;
        if (j.protocol !== PROTOCOL_VERSION)
          throw new ProtocolError(
            `the client speaks protocol "${j.protocol || 'unknown'}", this server ${PROTOCOL_VERSION}: run the same flglm version on both sides`,
          );
        // Without TLS there is no certificate; plaintext clients name themselves (loopback tests only).
        if (!this.d.kit && j.insecureName && !/^[A-Za-z0-9._-]{1,64}$/.test(j.insecureName))
          throw new ProtocolError('join: insecure_name must be 1-64 letters, digits, ".", "_" or "-"');
        if (!this.d.kit) peer = { ...peer, clientId: j.insecureName ? `insecure-${j.insecureName}` : peer.clientId };
        const numExamples = Number(j.numExamples);
        if (!Number.isFinite(numExamples) || numExamples <= 0)
          throw new ProtocolError(`join: num_examples must be positive, got ${j.numExamples}`);
        const previous = this.d.participants.get(peer.clientId);
        if (previous) previous.close('replaced by a new session of the same client');
        const s = new Participant({
          peer,
          call,
          inbox,
          numExamples,
          payloadPublicKey,
          chunkBytes: cfg.federation.chunk_bytes,
          activations: ACTIVATION_WIRE_DTYPES[cfg.transport.activation_dtype],
        });
        this.d.participants.set(peer.clientId, s);
        joined = s;
        s.startHeartbeats(cfg.federation.heartbeat_ms);
        this.d.joined(s, j.lastRound);
      } catch (e) {
        // Keyed by certificate id, or by address without the port for plaintext peers.
        this.refusals.log(
          peer.clientId.replace(/:\d+$/, ''),
          `refused a session from ${peer.clientId}: ${(e as Error).message}`,
        );
        try {
          call.write({ error: { code: 'REFUSED', message: (e as Error).message } });
          call.end();
        } catch {
          /* gone */
        }
      }
    })();
  }

  /** Why this peer may no longer talk to the server (revoked, or the list is unreadable: fail closed), or null. */
  revokedReason(peer: PeerIdentity): string | null {
    if (!this.d.revocation) return null;
    try {
      return this.d.revocation.isRevoked(peer)
        ? `client "${peer.clientId}" has been revoked (certificate serial ${peer.serial})`
        : null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** End a client's stream at once: its pending and next reads fail, and it gets no further keys. */
  private cutOff(clientId: string, inbox: Inbox<ClientMessage>, reason: string): void {
    inbox.fail(new ProtocolError(reason));
    const s = this.d.participants.get(clientId);
    if (s && s.inbox === inbox) {
      this.d.participants.delete(clientId);
      s.close(reason);
    }
    this.refusals.log(`cut:${clientId}`, `cut off ${clientId}: ${reason}`);
    this.d.onEvent?.({ type: 'cut_off', client: clientId, reason, time: Date.now() });
  }
}
