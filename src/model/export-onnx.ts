import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sizeOf } from '../graph/ir.js';
import { toOnnx, toOnnxWithExternalData } from '../graph/onnx.js';
import { writeChunksAtomic, writeFileAtomic } from '../util/atomic-write.js';
import type { ModelConfig } from './config.js';
import { decoderSpec } from './decoder-spec.js';
import { buildDecode } from './decode-graphs.js';
import type { ParamStore, PeftConfig } from './weights.js';

const DATA_FILE = 'decoder.onnx.data';
/** Weights above this go to an external data file (protobuf's limit is 2 GiB). */
const EXTERNAL_DATA_ABOVE = 2 ** 30;

/**
 * The model as one ONNX inference graph that any onnxruntime runs: a decoder step with a KV cache
 * of `cacheLen` positions (weights inside the file, LoRA and prefix included). Feed the prompt one
 * token at a time, then each generated token; `decoder.json` says what every input and output is.
 */
export function exportOnnxDecoder(
  dir: string,
  config: ModelConfig,
  peft: PeftConfig,
  store: ParamStore,
  cacheLen: number,
  o: { externalData?: boolean } = {},
): { bytes: number; dataFile?: string } {
  mkdirSync(dir, { recursive: true });
  const graph = buildDecode(config, peft, store, cacheLen, {
    part: 'full',
    split: { head_blocks: 0, tail_blocks: 0 },
    batch: 1,
    frozen: 'initializer',
  });
  // Protobuf caps a message at 2 GiB: a real model's weights go to decoder.onnx.data (ONNX external data).
  const weightBytes = [...store.values()].reduce((a, p) => a + 4 * sizeOf(p.shape), 0);
  const external = o.externalData ?? weightBytes > EXTERNAL_DATA_ABOVE;
  let bytes: number;
  if (external) {
    const { model, data } = toOnnxWithExternalData(graph, DATA_FILE);
    writeChunksAtomic(join(dir, DATA_FILE), data);
    writeFileAtomic(join(dir, 'decoder.onnx'), model);
    bytes = model.byteLength + data.reduce((a, d) => a + d.byteLength, 0);
  } else {
    const model = toOnnx(graph);
    rmSync(join(dir, DATA_FILE), { force: true });
    writeFileAtomic(join(dir, 'decoder.onnx'), model);
    bytes = model.byteLength;
  }
  writeFileAtomic(
    join(dir, 'decoder.json'),
    JSON.stringify(
      {
        format: 'flglm-onnx-decoder-1',
        ...(external
          ? {
              external_data: `${DATA_FILE}: the weights (ONNX external data); keep it next to decoder.onnx and load decoder.onnx by path`,
            }
          : {}),
        model: config,
        ...decoderSpec(config, peft, cacheLen),
      },
      null,
      2,
    ),
  );
  return { bytes, ...(external ? { dataFile: DATA_FILE } : {}) };
}
