import { ProtocolError, type WireTensor } from './tensors.js';

// A message as chunking sees it: one oneof kind whose body may carry a tensor or a tensor set.
// Works on any of the protocol's message types (ClientMessage, ServerMessage, their Out forms).
type Loose = Record<string, unknown> & { kind?: string };
type Chunked = WireTensor & { chunkIndex?: number; chunkCount?: number };

const SET_KINDS = new Set(['parameters', 'averaged']);

function kindOf(m: Loose): string {
  if (m.kind) return m.kind;
  const keys = Object.keys(m).filter((k) => m[k] != null);
  if (keys.length !== 1) throw new Error(`a message must have exactly one kind, got ${keys.join(', ')}`);
  return keys[0];
}

/** The body of a message's oneof kind (received messages name it in `kind`; written ones by their only key). */
export function messageBody(m: object): Record<string, unknown> | undefined {
  const loose = m as Loose;
  const body = loose[loose.kind ?? kindOf(loose)];
  return body && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
}

/** Bytes of a tensor's data (a Buffer or Uint8Array; proto-loader's input types also allow a string). */
export function byteLengthOf(data: unknown): number {
  return (data as Uint8Array | undefined)?.byteLength ?? 0;
}

/**
 * Keeps every gRPC message under `chunkBytes` of tensor data. A single-tensor message (h_A, h_B,
 * gradients) whose tensor is larger travels as several messages of the same kind, each with a
 * slice of the bytes; a parameter set travels as several `parameters`/`averaged` parts, splitting
 * any tensor that is itself too large. The receiver reassembles before anything is decoded.
 */
function slices(t: WireTensor, chunkBytes: number): WireTensor[] {
  const n = Math.max(1, Math.ceil(t.data.byteLength / chunkBytes));
  if (n === 1) return [{ ...t, chunkIndex: 0, chunkCount: 1 } as WireTensor];
  return Array.from(
    { length: n },
    (_, i) =>
      ({
        ...t,
        data: t.data.subarray(i * chunkBytes, (i + 1) * chunkBytes),
        chunkIndex: i,
        chunkCount: n,
      }) as WireTensor,
  );
}

/** A set of tensors as groups of at most `chunkBytes` (tensors larger than that are sliced). */
export function splitTensorSet(tensors: WireTensor[], chunkBytes: number): WireTensor[][] {
  const groups: WireTensor[][] = [[]];
  let size = 0;
  for (const piece of tensors.flatMap((t) => slices(t, chunkBytes))) {
    if (size + piece.data.byteLength > chunkBytes && groups[groups.length - 1].length) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(piece);
    size += piece.data.byteLength;
  }
  return groups;
}

export function chunkMessage<M extends object>(m: M, chunkBytes: number): M[] {
  const kind = kindOf(m as Loose);
  const body = messageBody(m);
  if (!body) return [m];
  if (body.tensor) {
    const parts = slices(body.tensor as WireTensor, chunkBytes);
    return parts.length === 1 ? [m] : parts.map((tensor) => ({ [kind]: { ...body, tensor } }) as M);
  }
  if (SET_KINDS.has(kind) && Array.isArray(body.tensors)) {
    const groups = splitTensorSet(body.tensors as WireTensor[], chunkBytes);
    return groups.map((tensors, i) => ({ [kind]: { ...body, tensors, partIndex: i, partCount: groups.length } }) as M);
  }
  return [m];
}

function joinChunks(chunks: WireTensor[]): WireTensor {
  const total = chunks.reduce((a, c) => a + c.data.byteLength, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    data.set(c.data, off);
    off += c.data.byteLength;
  }
  return { ...chunks[0], data };
}

function chunkInfo(t: WireTensor): { index: number; count: number } {
  const x = t as Chunked;
  return { index: Number(x.chunkIndex ?? 0), count: Math.max(1, Number(x.chunkCount ?? 1)) };
}

/** Put the slices of a received tensor set back together, in order; a gap is a ProtocolError. */
export function joinTensorSet(pieces: WireTensor[], what: string): WireTensor[] {
  const merged: WireTensor[] = [];
  let run: WireTensor[] = [];
  for (const t of pieces) {
    const { index, count } = chunkInfo(t);
    if (index !== run.length || (run.length && run[0].name !== t.name))
      throw new ProtocolError(`${what}: tensor ${t.name} chunk ${index} out of order`);
    run.push(t);
    if (run.length === count) {
      merged.push(count === 1 ? run[0] : joinChunks(run));
      run = [];
    }
  }
  if (run.length) throw new ProtocolError(`${what}: tensor ${run[0].name} is missing chunks`);
  return merged;
}

/**
 * What a peer may send per message kind: the tensor bytes of the whole (reassembled) message and
 * how many pieces (chunks, parts, set entries) it may take. Checked as pieces arrive, before they
 * are held, so a peer can never make the receiver buffer more than one legitimate message's worth.
 */
export interface ChunkLimits {
  budget(kind: string): { maxBytes: number; maxPieces: number };
}

const UNLIMITED: ChunkLimits = { budget: () => ({ maxBytes: Number.POSITIVE_INFINITY, maxPieces: 1 << 16 }) };

/** Reassembles chunked messages; returns the whole message once its last piece arrives, else null. */
export class ChunkAssembler {
  private pendingTensor = new Map<string, { pieces: WireTensor[]; bytes: number }>();
  private pendingSet = new Map<
    string,
    { body: Record<string, unknown>; tensors: WireTensor[]; next: number; bytes: number }
  >();

  constructor(private readonly limits: ChunkLimits = UNLIMITED) {}

  /** Bytes held in incomplete messages. */
  get heldBytes(): number {
    let n = 0;
    for (const p of this.pendingTensor.values()) n += p.bytes;
    for (const p of this.pendingSet.values()) n += p.bytes;
    return n;
  }

  accept<M extends object>(m: M): M | null {
    const kind = kindOf(m as Loose);
    const body = messageBody(m);
    if (!body) return m;
    const { maxBytes, maxPieces } = this.limits.budget(kind);
    if (body.tensor) {
      const t = body.tensor as WireTensor;
      const { index, count } = chunkInfo(t);
      if (count > maxPieces)
        throw new ProtocolError(`${kind}: tensor ${t.name} in ${count} chunks, the limit is ${maxPieces}`);
      const state = this.pendingTensor.get(kind) ?? { pieces: [], bytes: 0 };
      if (index !== state.pieces.length || (state.pieces.length && state.pieces[0].name !== t.name))
        throw new ProtocolError(`tensor ${t.name}: chunk ${index} of ${count} out of order`);
      state.bytes += byteLengthOf(t.data);
      if (state.bytes > maxBytes)
        throw new ProtocolError(`${kind}: tensor ${t.name} is over ${maxBytes} bytes, the most this message can carry`);
      if (count === 1) return m;
      state.pieces.push(t);
      if (state.pieces.length < count) {
        this.pendingTensor.set(kind, state);
        return null;
      }
      this.pendingTensor.delete(kind);
      return { ...m, [kind]: { ...body, tensor: joinChunks(state.pieces) } } as M;
    }
    if (SET_KINDS.has(kind)) {
      const partCount = Math.max(1, Number(body.partCount ?? 1));
      const partIndex = Number(body.partIndex ?? 0);
      if (partCount > maxPieces) throw new ProtocolError(`${kind}: ${partCount} parts, the limit is ${maxPieces}`);
      const state = this.pendingSet.get(kind) ?? { body, tensors: [], next: 0, bytes: 0 };
      if (partIndex !== state.next) throw new ProtocolError(`${kind}: part ${partIndex} of ${partCount} out of order`);
      const tensors = (body.tensors as WireTensor[]) ?? [];
      state.tensors.push(...tensors);
      state.bytes += tensors.reduce((a, t) => a + byteLengthOf(t.data), 0);
      if (state.tensors.length > maxPieces) throw new ProtocolError(`${kind}: more than ${maxPieces} tensor pieces`);
      if (state.bytes > maxBytes)
        throw new ProtocolError(`${kind}: over ${maxBytes} bytes of tensors, the most this message can carry`);
      state.next++;
      if (state.next < partCount) {
        this.pendingSet.set(kind, state);
        return null;
      }
      this.pendingSet.delete(kind);
      return {
        ...m,
        [kind]: { ...state.body, tensors: joinTensorSet(state.tensors, kind), partIndex: 0, partCount: 1 },
      } as M;
    }
    return m;
  }
}

/**
 * A stream 'data' handler: reassembles chunked messages and delivers each whole one; a malformed
 * sequence of chunks goes to `fail` instead.
 */
export function reassembling<M extends object>(
  deliver: (m: M) => void,
  fail: (e: Error) => void,
  limits?: ChunkLimits,
): (m: M) => void {
  const assembler = new ChunkAssembler(limits);
  return (m) => {
    let whole: M | null;
    try {
      whole = assembler.accept(m);
    } catch (e) {
      return fail(e as Error);
    }
    if (whole) deliver(whole);
  };
}
