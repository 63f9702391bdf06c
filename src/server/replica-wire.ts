import { decodeTensor, encodeTensor, type TensorContext, type WireTensor } from '../protocol/tensors.js';
import type { TensorData } from '../runtime/tensor.js';

// The replica table's arguments and results over the sub-server's gRPC stream: tensors and
// Float32Arrays anywhere in a value travel as wire tensors (raw bytes, chunked like the rest of the
// protocol), everything else as JSON with a {"$t": i} or {"$f32": i} where each array was. The
// link is mutual TLS between two processes of the server operator: no payload encryption.

const plain: TensorContext = { clientId: 'sub-server', keyId: '', round: 0, step: 0, channel: null };

function isTensorData(v: object): v is TensorData {
  const t = v as Partial<TensorData>;
  return typeof t.dtype === 'string' && Array.isArray(t.shape) && ArrayBuffer.isView(t.data);
}

export function packValue(value: unknown): { json: string; tensors: WireTensor[] } {
  const tensors: WireTensor[] = [];
  const walk = (v: unknown): unknown => {
    if (v instanceof Float32Array) {
      tensors.push(encodeTensor(`v${tensors.length}`, { dtype: 'float32', shape: [v.length], data: v }, plain));
      return { $f32: tensors.length - 1 };
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      if (isTensorData(v)) {
        tensors.push(encodeTensor(`v${tensors.length}`, v, plain));
        return { $t: tensors.length - 1 };
      }
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  const json = JSON.stringify(walk(value) ?? null);
  return { json, tensors };
}

export function unpackValue(json: string, tensors: WireTensor[]): unknown {
  const tensor = (i: unknown): TensorData => {
    const w = tensors[Number(i)];
    if (!w) throw new Error(`reply refers to tensor ${String(i)}, which it does not carry`);
    return decodeTensor(w, { name: w.name }, plain);
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if ('$t' in o) return tensor(o.$t);
      if ('$f32' in o) return tensor(o.$f32).data as Float32Array;
      return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(json ? JSON.parse(json) : null);
}
