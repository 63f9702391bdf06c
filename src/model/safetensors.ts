import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { sizeOf } from '../graph/ir.js';
import { UserError } from '../util/errors.js';
import { writeChunksAtomic } from '../util/atomic-write.js';
import { floatToBf16, floatToHalf, halfToFloat } from '../util/half.js';
import { float32Of, type HalfParam, type QuantParam } from './weights.js';
import { toHalfBits } from './frozen-dtype.js';

/** safetensors: 8-byte little-endian header length, JSON header, raw little-endian tensor bytes. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
  half?: undefined;
  quant?: undefined;
}

/** Storage dtypes flglm writes: F32 as trained, or F16 / BF16 (round to nearest even) to halve the files. */
export type StorageDtype = 'F32' | 'F16' | 'BF16';
/** What can be written: float32 tensors, frozen weights held in float16 (written as they are for F16) or quantized (their dequantized values). */
export type StorableTensor = NamedTensor | HalfParam | QuantParam;

function encodeData(t: StorableTensor, dtype: StorageDtype): Uint8Array {
  if (t.half && dtype === 'F16') return new Uint8Array(t.half.buffer, t.half.byteOffset, t.half.byteLength);
  const data = float32Of(t);
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const conv = dtype === 'F16' ? floatToHalf : floatToBf16;
  for (let i = 0; i < data.length; i++) out[i] = conv(data[i]);
  return new Uint8Array(out.buffer);
}

/** The file as a header followed by each tensor's bytes, encoded one tensor at a time. */
function* safetensorsChunks(
  tensors: Map<string, StorableTensor>,
  metadata: Record<string, string>,
  dtype: StorageDtype,
): Generator<Uint8Array> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const bytesPer = dtype === 'F32' ? 4 : 2;
  const names = [...tensors.keys()].sort();
  let offset = 0;
  for (const name of names) {
    const size = sizeOf(tensors.get(name)!.shape) * bytesPer;
    header[name] = { dtype, shape: tensors.get(name)!.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // keep tensor data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = new Uint8Array(8 + headerBytes.length);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  prefix.set(headerBytes, 8);
  yield prefix;
  for (const name of names) yield encodeData(tensors.get(name)!, dtype);
}

export function encodeSafetensors(
  tensors: Map<string, StorableTensor>,
  metadata: Record<string, string> = {},
  dtype: StorageDtype = 'F32',
): Uint8Array {
  const chunks = [...safetensorsChunks(tensors, metadata, dtype)];
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** The JSON header of safetensors bytes, checked; `base` is where tensor data starts. */
function parseHeader(
  prefix: Uint8Array,
  fileBytes: number,
  source: string,
): { entries: Map<string, HeaderEntry>; metadata: Record<string, string>; base: number } {
  if (fileBytes < 8 || prefix.byteLength < 8)
    throw new UserError(`${source}: file too short to be safetensors (truncated?)`);
  const n = Number(new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > fileBytes) throw new UserError(`${source}: header runs past the end of the file (truncated?)`);
  let header: Record<string, HeaderEntry>;
  try {
    header = JSON.parse(Buffer.from(prefix.subarray(8, 8 + n)).toString('utf8'));
  } catch {
    throw new UserError(`${source}: header is not valid JSON (corrupted file?)`);
  }
  const base = 8 + n;
  const entries = new Map<string, HeaderEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = info as unknown as Record<string, string>;
      continue;
    }
    if (base + info.data_offsets[1] > fileBytes)
      throw new UserError(`${source}: tensor ${name} runs past the end of the file (truncated?)`);
    entries.set(name, info);
  }
  return { entries, metadata, base };
}

/** One tensor's stored bytes as float32 (F16 and BF16 widened). */
function decodeData(raw: Uint8Array, info: HeaderEntry, name: string, source: string): NamedTensor {
  const count = info.shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(count);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (info.dtype === 'F32') new Uint8Array(data.buffer).set(raw);
  else if (info.dtype === 'F16') for (let i = 0; i < count; i++) data[i] = halfToFloat(dv.getUint16(2 * i, true));
  else if (info.dtype === 'BF16') {
    const u = new Uint32Array(data.buffer);
    for (let i = 0; i < count; i++) u[i] = dv.getUint16(2 * i, true) << 16;
  } else
    throw new UserError(`${source}: tensor ${name} has unsupported dtype ${info.dtype} (F32, F16, BF16 are supported)`);
  return { shape: info.shape, data };
}

/** Decode safetensors bytes; F16 and BF16 tensors are widened to F32. */
export function decodeSafetensors(
  bytes: Uint8Array,
  source = 'safetensors',
): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  const { entries, metadata, base } = parseHeader(bytes, bytes.byteLength, source);
  const tensors = new Map<string, NamedTensor>();
  for (const [name, info] of entries)
    tensors.set(
      name,
      decodeData(bytes.subarray(base + info.data_offsets[0], base + info.data_offsets[1]), info, name, source),
    );
  return { tensors, metadata };
}

/**
 * A safetensors file read tensor by tensor: only the header up front, then each tensor's bytes when
 * asked for. A part of the model (the server's trunk, a client's head and tail) then reads only its
 * own weights, and never holds the whole file in memory besides the widened float32 copies.
 */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly entries: Map<string, HeaderEntry>,
    private readonly base: number,
    readonly metadata: Record<string, string>,
  ) {}

  static open(path: string): SafetensorsFile {
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const lengthBytes = Buffer.alloc(8);
      readSync(fd, lengthBytes, 0, Math.min(8, size), 0);
      const n = size >= 8 ? Number(lengthBytes.readBigUInt64LE(0)) : 0;
      const prefix = Buffer.alloc(Math.min(size, 8 + n));
      readSync(fd, prefix, 0, prefix.length, 0);
      const { entries, base, metadata } = parseHeader(prefix, size, path);
      return new SafetensorsFile(path, entries, base, metadata);
    } finally {
      closeSync(fd);
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** A tensor's stored shape, from the header alone. */
  shapeOf(name: string): number[] | undefined {
    return this.entries.get(name)?.shape;
  }

  read(name: string): NamedTensor {
    const info = this.entries.get(name);
    if (!info) throw new Error(`${this.path} has no tensor ${name}`);
    return decodeData(this.bytes(name, info), info, name, this.path);
  }

  /**
   * A tensor as float16 bits (see frozen-dtype.ts for what is exact), or null where float16 cannot
   * hold it (a value beyond ±65504) or the file stores another dtype than F16/BF16 and `fromF32` is off.
   */
  readHalf(name: string, fromF32 = false): HalfParam | null {
    const info = this.entries.get(name);
    if (!info) throw new Error(`${this.path} has no tensor ${name}`);
    if (info.dtype !== 'F16' && info.dtype !== 'BF16' && !(fromF32 && info.dtype === 'F32')) return null;
    const raw = this.bytes(name, info);
    const half = toHalfBits(raw, info.dtype as 'F32' | 'F16' | 'BF16');
    return half ? { shape: info.shape, half } : null;
  }

  private bytes(name: string, info: HeaderEntry): Buffer {
    const [a, b] = info.data_offsets;
    const raw = Buffer.alloc(b - a);
    const fd = openSync(this.path, 'r');
    try {
      for (let done = 0; done < raw.length;) {
        const got = readSync(fd, raw, done, raw.length - done, this.base + a + done);
        if (got === 0) throw new UserError(`${this.path}: tensor ${name} is cut short (truncated file?)`);
        done += got;
      }
    } finally {
      closeSync(fd);
    }
    return raw;
  }
}

/** Write a safetensors file atomically, tensor by tensor (no whole-file copy in memory). */
export function saveSafetensors(
  path: string,
  tensors: Map<string, StorableTensor>,
  metadata: Record<string, string> = {},
  dtype: StorageDtype = 'F32',
): void {
  writeChunksAtomic(path, safetensorsChunks(tensors, metadata, dtype));
}

/** Read every tensor of a file (one at a time from disk, widened to float32). */
export function loadSafetensors(path: string): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  const file = SafetensorsFile.open(path);
  return { tensors: new Map(file.names().map((n) => [n, file.read(n)])), metadata: file.metadata };
}
