import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// TensorBoard event files, written from the format (no TensorFlow): TFRecord framing (length,
// masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes) around Event protobufs
// holding scalar (simple_value) and text (a string tensor for the text plugin) summaries.

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1; // Castagnoli, reflected
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotated right by 15 bits plus a constant (a CRC of data holding CRCs stays useful). */
export function maskedCrc32c(buf: Uint8Array): number {
  const c = crc32c(buf);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: u64 length, u32 masked CRC of those 8 bytes, the data, u32 masked CRC of the data (little-endian). */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(16 + data.length);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

// Protobuf, the few wire types an Event needs.
function varint(v: number | bigint): number[] {
  let n = BigInt(v);
  const out: number[] = [];
  do {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    out.push(n ? b | 0x80 : b);
  } while (n);
  return out;
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const bytesField = (field: number, b: Uint8Array) => Buffer.from([...key(field, 2), ...varint(b.length), ...b]);
const stringField = (field: number, s: string) => bytesField(field, Buffer.from(s, 'utf8'));
function fixed(field: number, v: number, size: 4 | 8): Buffer {
  const b = Buffer.alloc(size);
  if (size === 8) b.writeDoubleLE(v);
  else b.writeFloatLE(v);
  return Buffer.concat([Buffer.from(key(field, size === 8 ? 1 : 5)), b]);
}

/** Event { wall_time = 1 (double), step = 2 (int64), file_version = 3 | summary = 5 }. */
function event(wallTime: number, step: number, body: Buffer): Buffer {
  return Buffer.concat([
    fixed(1, wallTime, 8),
    Buffer.from([...key(2, 0), ...varint(Math.max(0, Math.round(step)))]),
    body,
  ]);
}

/** Summary { value = 1: Value { tag = 1, simple_value = 2 | metadata = 9 + tensor = 8 } }. */
function scalarSummary(tag: string, value: number): Buffer {
  return bytesField(5, bytesField(1, Buffer.concat([stringField(1, tag), fixed(2, value, 4)])));
}

function textSummary(tag: string, text: string): Buffer {
  const metadata = bytesField(9, bytesField(1, stringField(1, 'text'))); // SummaryMetadata.plugin_data.plugin_name
  const DT_STRING = 7;
  const tensor = bytesField(
    8,
    Buffer.concat([Buffer.from([...key(1, 0), DT_STRING]), bytesField(2, Buffer.alloc(0)), stringField(8, text)]),
  );
  return bytesField(5, bytesField(1, Buffer.concat([stringField(1, tag), metadata, tensor])));
}

/** One event file (`events.out.tfevents.<time>.<host>.<pid>`) in `dir`, written as records come (no buffering). */
export class EventFileWriter {
  readonly path: string;
  private fd: number | null;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    this.path = join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}`);
    this.fd = openSync(this.path, 'a');
    this.write(event(now, 0, stringField(3, 'brain.Event:2')));
  }

  scalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    if (Number.isFinite(value)) this.write(event(wallTime, step, scalarSummary(tag, value)));
  }

  text(tag: string, text: string, step = 0, wallTime = Date.now() / 1000): void {
    this.write(event(wallTime, step, textSummary(tag, text)));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private write(ev: Buffer): void {
    if (this.fd !== null) writeSync(this.fd, tfRecord(ev));
  }
}
