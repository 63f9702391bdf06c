import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { floatToBf16, floatToHalf, halfToFloat } from '../util/half.js';

/** safetensors: 8-byte little-endian header length, JSON header, raw little-endian tensor bytes. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

/** Storage dtypes flglm writes: F32 as trained, or F16 / BF16 (round to nearest even) to halve the files. */
export type StorageDtype = 'F32' | 'F16' | 'BF16';
function encodeData(data: Float32Array, dtype: StorageDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const conv = dtype === 'F16' ? floatToHalf : floatToBf16;
  for (let i = 0; i < data.length; i++) out[i] = conv(data[i]);
  return new Uint8Array(out.buffer);
}

export function encodeSafetensors(tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}, dtype: StorageDtype = 'F32'): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  const names = [...tensors.keys()].sort();
  const encoded = new Map(names.map((n) => [n, encodeData(tensors.get(n)!.data, dtype)]));
  for (const name of names) {
    const bytes = encoded.get(name)!;
    header[name] = { dtype, shape: tensors.get(name)!.shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8); // keep tensor data 8-byte aligned
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const name of names) {
    const bytes = encoded.get(name)!;
    out.set(bytes, pos);
    pos += bytes.byteLength;
  }
  return out;
}

/** Decode safetensors bytes; F16 and BF16 tensors are widened to F32. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors'): { tensors: Map<string, NamedTensor>; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) throw new UserError(`${source}: file too short to be safetensors (truncated?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (8 + n > bytes.byteLength) throw new UserError(`${source}: header runs past the end of the file (truncated?)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8'));
  } catch {
    throw new UserError(`${source}: header is not valid JSON (corrupted file?)`);
  }
  const base = 8 + n;
  const tensors = new Map<string, NamedTensor>();
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') { metadata = info as unknown as Record<string, string>; continue; }
    const [a, b] = info.data_offsets;
    if (base + b > bytes.byteLength) throw new UserError(`${source}: tensor ${name} runs past the end of the file (truncated?)`);
    const raw = bytes.subarray(base + a, base + b);
    const count = info.shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(count);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    if (info.dtype === 'F32') new Uint8Array(data.buffer).set(raw);
    else if (info.dtype === 'F16') for (let i = 0; i < count; i++) data[i] = halfToFloat(dv.getUint16(2 * i, true));
    else if (info.dtype === 'BF16') {
      const u = new Uint32Array(data.buffer);
      for (let i = 0; i < count; i++) u[i] = dv.getUint16(2 * i, true) << 16;
    } else throw new UserError(`${source}: tensor ${name} has unsupported dtype ${info.dtype} (F32, F16, BF16 are supported)`);
    tensors.set(name, { shape: info.shape, data });
  }
  return { tensors, metadata };
}

export function saveSafetensors(path: string, tensors: Map<string, NamedTensor>, metadata: Record<string, string> = {}, dtype: StorageDtype = 'F32'): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, dtype));
}

export function loadSafetensors(path: string) {
  return decodeSafetensors(readFileSync(path), path);
}
