import type * as grpc from '@grpc/grpc-js';
import type { ClientMessage as ClientMessageIn, ClientMessage__Output } from './generated/flglm/v1/ClientMessage.js';
import type { ServerMessage as ServerMessageIn, ServerMessage__Output } from './generated/flglm/v1/ServerMessage.js';
import type { SubReply as SubReplyIn, SubReply__Output } from './generated/flglm/v1/SubReply.js';
import type { SubRequest as SubRequestIn, SubRequest__Output } from './generated/flglm/v1/SubRequest.js';
import type { SplitTrainingClient } from './generated/flglm/v1/SplitTraining.js';
import type { GenerateUp as GenerateUpIn, GenerateUp__Output } from './generated/flglm/v1/GenerateUp.js';
import type { GenerateDown as GenerateDownIn, GenerateDown__Output } from './generated/flglm/v1/GenerateDown.js';

/**
 * The messages of protos/flglm.proto as each side sees them, from the generated types
 * (scripts/gen-proto-types.mjs). What a peer *receives* has every field present (proto-loader
 * fills defaults, 64-bit integers arrive as strings); what it *writes* may leave fields out.
 */
export type ClientMessage = ClientMessage__Output;
export type ClientMessageOut = ClientMessageIn;
export type ServerMessage = ServerMessage__Output;
export type ServerMessageOut = ServerMessageIn;
export type SubReply = SubReply__Output;
export type SubReplyOut = SubReplyIn;
export type SubRequest = SubRequest__Output;
export type SubRequestOut = SubRequestIn;
export type GenerateUp = GenerateUp__Output;
export type GenerateUpOut = GenerateUpIn;
export type GenerateDown = GenerateDown__Output;
export type GenerateDownOut = GenerateDownIn;
export type { SplitTrainingClient };

/** The oneof kinds a message type can carry. */
export type KindOf<M extends { kind?: string }> = NonNullable<M['kind']>;

/** A received message narrowed to one of `K`, with that kind's body present (distributes over K). */
export type OfKind<M extends { kind?: string }, K extends KindOf<M>> = K extends unknown
  ? M & { kind: K } & { [P in K & keyof M]-?: NonNullable<M[P]> }
  : never;

/** The server's end of a client's Session stream, and the client's end. */
export type ServerSessionCall = grpc.ServerDuplexStream<ClientMessage, ServerMessageOut>;
export type ClientSessionCall = grpc.ClientDuplexStream<ClientMessageOut, ServerMessage>;
/** The server's end of a split-inference stream, and the client's end. */
export type ServerGenerateCall = grpc.ServerDuplexStream<GenerateUp, GenerateDownOut>;
export type ClientGenerateCall = grpc.ClientDuplexStream<GenerateUpOut, GenerateDown>;
/** The parent's end of a sub-server's stream, and the sub-server's end. */
export type ParentSubCall = grpc.ServerDuplexStream<SubReply, SubRequestOut>;
export type SubServerCall = grpc.ClientDuplexStream<SubReplyOut, SubRequest>;

/**
 * The wire protocol a client speaks (Join.protocol). Bumped whenever a message changes meaning, so
 * an old client meets one clear refusal instead of a confusing failure mid-round.
 */
export const PROTOCOL_VERSION = 'flglm/4';
