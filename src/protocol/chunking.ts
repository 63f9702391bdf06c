import { ProtocolError, type WireTensor } from './tensors.js';

/**
 * Keeps every gRPC message under `chunkBytes` of tensor data. A single-tensor message (h_A, h_B,
 * gradients) whose tensor is larger travels as several messages of the same kind, each with a
 * slice of the bytes; a parameter set travels as several `parameters`/`averaged` parts, splitting
 * any tensor that is itself too large. The receiver reassembles before anything is decoded.
 */
type Msg = Record<string, unknown> & { kind?: string };
type WithTensor = Record<string, unknown> & { tensor: WireTensor };
type WithTensors = Record<string, unknown> & { tensors: WireTensor[] };

const SET_KINDS = new Set(['parameters', 'averaged']);

function kindOf(m: Msg): string {
  if (m.kind) return m.kind;
  const keys = Object.keys(m);
  if (keys.length !== 1) throw new Error(`a message must have exactly one kind, got ${keys.join(', ')}`);
  return keys[0];
}

function slices(t: WireTensor, chunkBytes: number): WireTensor[] {
  const n = Math.max(1, Math.ceil(t.data.byteLength / chunkBytes));
  if (n === 1) return [{ ...t, chunkIndex: 0, chunkCount: 1 } as WireTensor];
  return Array.from({ length: n }, (_, i) => ({ ...t, data: t.data.subarray(i * chunkBytes, (i + 1) * chunkBytes), chunkIndex: i, chunkCount: n }) as WireTensor);
}

export function chunkMessage(m: Msg, chunkBytes: number): Msg[] {
  const kind = kindOf(m);
  const body = m[kind] as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object') return [m];
  if ('tensor' in body && body.tensor) {
    const parts = slices((body as WithTensor).tensor, chunkBytes);
    return parts.length === 1 ? [m] : parts.map((tensor) => ({ [kind]: { ...body, tensor } }));
  }
  if (SET_KINDS.has(kind) && Array.isArray((body as WithTensors).tensors)) {
    const groups: WireTensor[][] = [[]];
    let size = 0;
    for (const piece of (body as WithTensors).tensors.flatMap((t) => slices(t, chunkBytes))) {
      if (size + piece.data.byteLength > chunkBytes && groups[groups.length - 1].length) { groups.push([]); size = 0; }
      groups[groups.length - 1].push(piece);
      size += piece.data.byteLength;
    }
    if (groups.length === 1) return [{ [kind]: { ...body, tensors: groups[0], partIndex: 0, partCount: 1 } }];
    return groups.map((tensors, i) => ({ [kind]: { ...body, tensors, partIndex: i, partCount: groups.length } }));
  }
  return [m];
}

function joinChunks(chunks: WireTensor[]): WireTensor {
  const total = chunks.reduce((a, c) => a + c.data.byteLength, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) { data.set(c.data, off); off += c.data.byteLength; }
  return { ...chunks[0], data };
}

function chunkInfo(t: WireTensor): { index: number; count: number } {
  const x = t as WireTensor & { chunkIndex?: number; chunkCount?: number };
  return { index: Number(x.chunkIndex ?? 0), count: Math.max(1, Number(x.chunkCount ?? 1)) };
}

/** Reassembles chunked messages; returns the whole message once its last piece arrives, else null. */
export class ChunkAssembler {
  private pendingTensor = new Map<string, WireTensor[]>();
  private pendingSet = new Map<string, { body: Record<string, unknown>; tensors: WireTensor[]; next: number }>();

  constructor(private readonly maxPieces = 1 << 16) {}

  accept(m: Msg): Msg | null {
    const kind = m.kind ?? kindOf(m);
    const body = m[kind] as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object') return m;
    if ('tensor' in body && body.tensor) {
      const t = body.tensor as WireTensor;
      const { index, count } = chunkInfo(t);
      if (count === 1) return m;
      if (count > this.maxPieces) throw new ProtocolError(`tensor ${t.name}: ${count} chunks is over the limit`);
      const list = this.pendingTensor.get(kind) ?? [];
      if (index !== list.length || (list.length && list[0].name !== t.name)) throw new ProtocolError(`tensor ${t.name}: chunk ${index} of ${count} out of order`);
      list.push(t);
      if (list.length < count) { this.pendingTensor.set(kind, list); return null; }
      this.pendingTensor.delete(kind);
      return { ...m, [kind]: { ...body, tensor: joinChunks(list) } };
    }
    if (SET_KINDS.has(kind)) {
      const partCount = Math.max(1, Number(body.partCount ?? 1));
      const partIndex = Number(body.partIndex ?? 0);
      const state = this.pendingSet.get(kind) ?? { body, tensors: [], next: 0 };
      if (partIndex !== state.next) throw new ProtocolError(`${kind}: part ${partIndex} of ${partCount} out of order`);
      state.tensors.push(...((body.tensors as WireTensor[]) ?? []));
      state.next++;
      if (state.next < partCount) { this.pendingSet.set(kind, state); return null; }
      this.pendingSet.delete(kind);
      // Join tensor chunks that were split across parts, in order.
      const merged: WireTensor[] = [];
      let run: WireTensor[] = [];
      for (const t of state.tensors) {
        const { index, count } = chunkInfo(t);
        if (index !== run.length || (run.length && run[0].name !== t.name)) throw new ProtocolError(`${kind}: tensor ${t.name} chunk ${index} out of order`);
        run.push(t);
        if (run.length === count) { merged.push(count === 1 ? run[0] : joinChunks(run)); run = []; }
      }
      if (run.length) throw new ProtocolError(`${kind}: tensor ${run[0].name} is missing chunks`);
      return { ...m, [kind]: { ...state.body, tensors: merged, partIndex: 0, partCount: 1 } };
    }
    return m;
  }
}

/**
 * A stream 'data' handler: reassembles chunked messages and delivers each whole one; a malformed
 * sequence of chunks goes to `fail` instead.
 */
export function reassembling(deliver: (m: Msg) => void, fail: (e: Error) => void): (m: Msg) => void {
  const assembler = new ChunkAssembler();
  return (m) => {
    let whole: Msg | null;
    try {
      whole = assembler.accept(m);
    } catch (e) {
      return fail(e as Error);
    }
    if (whole) deliver(whole);
  };
}
