import { existsSync, readFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sizeOf } from '../graph/ir.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { ModelConfig } from './config.js';
import { fromHfConfig, hfConfigText, toHfConfig } from './hf-config.js';
import { baseParamShapes, type FinetuneMethod, type ParamStore, type StoredParam } from './params.js';
import { SafetensorsFile, saveSafetensors, type StorableTensor, type StorageDtype } from './safetensors.js';
import { halfEligible, halfFrom, quantBitsOf, type FrozenDtype } from './frozen-dtype.js';
import { quantize, type QuantCompute } from './quantize.js';
import { copyModelAssets } from './assets.js';
import { transposeStored } from './layout.js';

/**
 * Hugging Face LLaMA/Qwen2-style folders. HF stores nn.Linear weights as [out, in]; flglm keeps
 * [in, out] so MatMul needs no transpose, so linear weights (and lm_head) are transposed on the way
 * in and out. Everything else maps by name.
 */
function isLinear(name: string): boolean {
  return /_proj\.weight$/.test(name) || name === 'lm_head.weight';
}

export interface HfImportOptions {
  /** Hold frozen linear weights in float16 (frozen-dtype.ts): the fine-tuning method and `model.frozen_dtype`. */
  frozen?: { method: FinetuneMethod; dtype: FrozenDtype; compute?: QuantCompute };
}

/**
 * A Hugging Face folder as flglm's config and weights. `select` chooses which weights to read (a part
 * reads only its own: the server's trunk, a client's head and tail); each is read from disk, widened
 * to float32 (or kept 16-bit, `o.frozen`) and transposed one at a time.
 */
export function importHfFolder(
  dir: string,
  select?: (config: ModelConfig) => (name: string) => boolean,
  o: HfImportOptions = {},
): { config: ModelConfig; store: ParamStore } {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath))
    throw new UserError(`${dir}: no config.json; expected a Hugging Face model folder (config.json + *.safetensors)`);
  const config = fromHfConfig(JSON.parse(readFileSync(cfgPath, 'utf8')));
  const files = weightFiles(dir);
  if (files.length === 0)
    throw new UserError(
      `${dir}: no .safetensors weights found (PyTorch .bin files are not supported; convert with save_pretrained(safe_serialization=True))`,
    );
  const where = new Map<string, SafetensorsFile>();
  for (const f of files) {
    const file = SafetensorsFile.open(join(dir, f));
    for (const name of file.names()) where.set(name, file);
  }
  const store: ParamStore = new Map();
  const keep = select?.(config) ?? (() => true);
  const halfPolicy = o.frozen ? halfFrom(o.frozen.dtype) : null;
  const bits = o.frozen ? quantBitsOf(o.frozen.dtype) : null;
  for (const [name, shape] of baseParamShapes(config)) {
    const file = where.get(name);
    if (!file) throw new UserError(`${dir}: weight ${name} is missing from the safetensors files`);
    const stored = file.shapeOf(name)!;
    const asFlglm = isLinear(name) && stored.length === 2 ? [stored[1], stored[0]] : stored;
    if (asFlglm.join() !== shape.join())
      throw new UserError(
        `${dir}: weight ${name} has shape [${stored}], config.json implies [${isLinear(name) ? [shape[1], shape[0]] : shape}]`,
      );
    if (!keep(name)) continue;
    const eligible = o.frozen !== undefined && halfEligible(name, o.frozen.method);
    const half = halfPolicy && eligible ? file.readHalf(name, halfPolicy.fromF32) : null;
    const t: StoredParam = half ?? file.read(name);
    const p = isLinear(name) ? transposeStored(t) : t;
    // One weight widened at a time, then quantized: the float32 copy dies before the next is read.
    if (bits && eligible && p.data)
      store.set(name, { shape: p.shape, quant: quantize(p.data, p.shape, bits, o.frozen!.compute ?? 'int8') });
    else store.set(name, p);
  }
  return { config, store };
}

/** The weight files of a folder: those its `model.safetensors.index.json` names, else every `*.safetensors`. */
function weightFiles(dir: string): string[] {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let map: Record<string, string>;
    try {
      map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
    } catch (e) {
      throw new UserError(`${index}: not a safetensors index (${(e as Error).message})`);
    }
    const files = [...new Set(Object.values(map ?? {}))].sort();
    for (const f of files)
      if (!existsSync(join(dir, f)))
        throw new UserError(`${index} names ${f}, which is not in ${dir} (incomplete download?)`);
    return files;
  }
  return readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
}

export interface HfExportOptions {
  /** Storage dtype of the weights (default F32, as trained). */
  dtype?: StorageDtype;
  /** Largest weight file; a bigger model is sharded with model.safetensors.index.json (default 2 GiB). */
  maxShardBytes?: number;
  /** Folder whose tokenizer and generation files travel with the weights (see assets.ts). */
  assetsFrom?: string | null;
  /** Special token ids for a generation_config.json when the assets have none. */
  specialTokens?: { bos: number; eos: number; pad: number };
}

/** A Hugging Face model folder (base weights only: merge LoRA first, see lora.ts). */
export function exportHfFolder(dir: string, config: ModelConfig, store: ParamStore, o: HfExportOptions = {}): void {
  mkdirSync(dir, { recursive: true });
  const dtype = o.dtype ?? 'F32';
  const bytesPer = dtype === 'F32' ? 4 : 2;
  const maxShard = o.maxShardBytes ?? 2 ** 31;
  const shards: Map<string, StorableTensor>[] = [new Map()];
  let size = 0,
    total = 0;
  for (const [name] of baseParamShapes(config)) {
    const t = store.get(name);
    if (!t) throw new UserError(`cannot export: the model has no ${name}`);
    const bytes = sizeOf(t.shape) * bytesPer;
    if (size > 0 && size + bytes > maxShard) {
      shards.push(new Map());
      size = 0;
    }
    shards[shards.length - 1].set(name, isLinear(name) ? transposeStored(t) : t);
    size += bytes;
    total += bytes;
  }
  for (const f of readdirSync(dir))
    if (/^model(-\d+-of-\d+)?\.safetensors(\.index\.json)?$/.test(f)) rmSync(join(dir, f)); // a previous export's shards
  if (shards.length === 1) saveSafetensors(join(dir, 'model.safetensors'), shards[0], { format: 'pt' }, dtype);
  else {
    const name = (i: number) =>
      `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const weightMap: Record<string, string> = {};
    shards.forEach((s, i) => {
      saveSafetensors(join(dir, name(i)), s, { format: 'pt' }, dtype);
      for (const n of s.keys()) weightMap[n] = name(i);
    });
    writeFileAtomic(
      join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
    );
  }
  writeFileAtomic(join(dir, 'config.json'), hfConfigText({ ...toHfConfig(config), torch_dtype: TORCH_DTYPE[dtype] }));
  const copied = copyModelAssets(o.assetsFrom, dir);
  if (!copied.includes('generation_config.json') && o.specialTokens) {
    const t = o.specialTokens;
    writeFileAtomic(
      join(dir, 'generation_config.json'),
      JSON.stringify({ bos_token_id: t.bos, eos_token_id: t.eos, pad_token_id: t.pad }, null, 2),
    );
  }
}

const TORCH_DTYPE: Record<StorageDtype, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

export { exportPeftAdapter, importPeftAdapter } from './peft.js';
