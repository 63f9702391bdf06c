import { readFileSync } from 'node:fs';

// A TensorBoard event-file reader written from the record format, apart from the writer: TFRecord
// framing with masked CRC-32C (bit by bit, no table), then just enough protobuf for Event.

export function crc32cBitwise(buf: Uint8Array): number {
  let c = ~0 >>> 0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0x82f63b78 & -(c & 1));
  }
  return ~c >>> 0;
}
const masked = (b: Uint8Array) => {
  const c = crc32cBitwise(b);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

/** Each record's bytes; throws on a length or data CRC that does not match. */
export function readRecords(path: string): Buffer[] {
  const f = readFileSync(path);
  const out: Buffer[] = [];
  for (let at = 0; at < f.length;) {
    const len = Number(f.readBigUInt64LE(at));
    if (f.readUInt32LE(at + 8) !== masked(f.subarray(at, at + 8))) throw new Error(`bad length CRC at ${at}`);
    const data = f.subarray(at + 12, at + 12 + len);
    if (f.readUInt32LE(at + 12 + len) !== masked(data)) throw new Error(`bad data CRC at ${at}`);
    out.push(data);
    at += 16 + len;
  }
  return out;
}

type Field = { field: number; wire: number; value: bigint | Buffer };
function fields(b: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  const varint = () => {
    let v = 0n,
      shift = 0n;
    for (;;) {
      const x = b[at++];
      v |= BigInt(x & 0x7f) << shift;
      shift += 7n;
      if (!(x & 0x80)) return v;
    }
  };
  while (at < b.length) {
    const k = Number(varint());
    const [field, wire] = [k >> 3, k & 7];
    if (wire === 0) out.push({ field, wire, value: varint() });
    else if (wire === 1 || wire === 5) {
      const n = wire === 1 ? 8 : 4;
      out.push({ field, wire, value: b.subarray(at, at + n) });
      at += n;
    } else if (wire === 2) {
      const n = Number(varint());
      out.push({ field, wire, value: b.subarray(at, at + n) });
      at += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

export interface ReadEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: { tag: string; simple?: number; plugin?: string; strings?: string[] }[];
}

/** The events of one file, decoded. */
export function readEvents(path: string): ReadEvent[] {
  return readRecords(path).map((rec) => {
    const ev: ReadEvent = { wallTime: 0, step: 0, values: [] };
    for (const f of fields(rec)) {
      if (f.field === 1) ev.wallTime = (f.value as Buffer).readDoubleLE(0);
      if (f.field === 2) ev.step = Number(f.value);
      if (f.field === 3) ev.fileVersion = (f.value as Buffer).toString('utf8');
      if (f.field === 5)
        for (const v of fields(f.value as Buffer).filter((x) => x.field === 1)) {
          const value: ReadEvent['values'][number] = { tag: '' };
          for (const x of fields(v.value as Buffer)) {
            if (x.field === 1) value.tag = (x.value as Buffer).toString('utf8');
            if (x.field === 2) value.simple = (x.value as Buffer).readFloatLE(0);
            if (x.field === 9) {
              const pluginData = fields(x.value as Buffer).find((y) => y.field === 1)!.value as Buffer;
              value.plugin = (fields(pluginData).find((y) => y.field === 1)!.value as Buffer).toString('utf8');
            }
            if (x.field === 8)
              value.strings = fields(x.value as Buffer)
                .filter((y) => y.field === 8)
                .map((y) => (y.value as Buffer).toString('utf8'));
          }
          ev.values.push(value);
        }
    }
    return ev;
  });
}
