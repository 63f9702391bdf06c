import type { Command } from 'commander';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { exportPeftAdapter } from '../model/hf.js';
import { exportOnnxDecoder } from '../model/export-onnx.js';
import type { StorageDtype } from '../model/safetensors.js';
import { loadCheckpoint, saveCheckpoint } from '../training/checkpoint.js';
import { prepareOutputDir } from '../util/output-dir.js';
import { UserError } from '../util/errors.js';
import { intOption } from './options.js';
import { loadModelFolder } from '../training/model-folder.js';
import { exportHf } from '../training/export.js';

const DTYPES: Record<string, StorageDtype> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16' };

/** "2GB", "500MB", "1.5GiB" or a byte count. */
export function parseSize(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(v.trim());
  if (!m) throw new UserError(`${flag}: expected a size like 2GB or 500MB, got "${v}"`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30 };
  const n = Math.floor(Number(m[1]) * mult[unit]);
  if (n < 1) throw new UserError(`${flag}: must be at least 1 byte, got "${v}"`);
  return n;
}

export function registerExportCommands(program: Command): void {
  program
    .command('export')
    .description(
      'Take a model home: a Hugging Face folder, a PEFT LoRA adapter, and/or an ONNX decoder with a KV cache',
    )
    .requiredOption('--model <dir>', 'a flglm checkpoint (e.g. runs/<run>/model) or a Hugging Face folder')
    .option(
      '--hf <dir>',
      'write a Hugging Face model folder (config.json, safetensors, tokenizer, generation_config.json)',
    )
    .option('--merge-lora', 'with --hf: fold LoRA adapters into the base weights (required for a LoRA model)')
    .option('--peft <dir>', 'write the LoRA adapter in PEFT layout (adapter_config.json + adapter_model.safetensors)')
    .option(
      '--base-model <name>',
      'with --peft: base_model_name_or_path (default: the base the model was fine-tuned from)',
    )
    .option('--onnx <dir>', 'write decoder.onnx (one decoding step with a KV cache) and decoder.json')
    .option(
      '--cache-len <n>',
      "with --onnx: KV-cache positions (default: the model's max_position_embeddings)",
      intOption('--cache-len', 1),
    )
    .option(
      '--external-data',
      'with --onnx: weights in decoder.onnx.data (ONNX external data; automatic above 1 GiB of weights)',
    )
    .option('--dtype <type>', 'with --hf: float32 | float16 | bfloat16', 'float32')
    .option(
      '--max-shard-size <size>',
      'with --hf: largest weight file, e.g. 2GB (bigger models are sharded with an index)',
      '2GiB',
    )
    .action(
      (o: {
        model: string;
        hf?: string;
        mergeLora?: boolean;
        peft?: string;
        baseModel?: string;
        onnx?: string;
        cacheLen?: number;
        externalData?: boolean;
        dtype: string;
        maxShardSize: string;
      }) => {
        if (!o.hf && !o.peft && !o.onnx)
          throw new UserError('nothing to export: give --hf DIR, --peft DIR and/or --onnx DIR');
        const dtype = DTYPES[o.dtype];
        if (!dtype) throw new UserError(`--dtype: expected float32|float16|bfloat16, got "${o.dtype}"`);
        const maxShardBytes = parseSize('--max-shard-size', o.maxShardSize);
        const m = loadModelFolder(o.model);
        if (o.peft && m.peft.method !== 'lora')
          throw new UserError(
            `--peft: this model was trained with ${m.peft.method}, not LoRA: there is no adapter to export. Fix: use --hf`,
          );
        if (o.hf)
          console.log(
            `${o.hf}: Hugging Face folder (${exportHf(m, o.hf, { mergeLora: o.mergeLora, dtype, maxShardBytes })}, ${o.dtype})`,
          );
        if (o.peft) {
          prepareOutputDir(o.peft, '--peft');
          exportPeftAdapter(o.peft, m.config, m.store, m.peft, o.baseModel ?? m.baseModel);
          console.log(
            `${o.peft}: PEFT LoRA adapter (r ${m.peft.lora.rank}, base ${o.baseModel ?? m.baseModel ?? m.config.model_type})`,
          );
        }
        if (o.onnx) {
          const cacheLen = o.cacheLen ?? m.config.max_position_embeddings;
          prepareOutputDir(o.onnx, '--onnx');
          const { bytes, dataFile } = exportOnnxDecoder(o.onnx, m.config, m.peft, m.store, cacheLen, {
            externalData: o.externalData,
          });
          console.log(
            `${o.onnx}: decoder.onnx${dataFile ? ` + ${dataFile}` : ''} (${(bytes / 1e6).toFixed(1)} MB, cache ${cacheLen} positions) and decoder.json`,
          );
        }
      },
    );
  program
    .command('merge')
    .description('Build the whole model from a server checkpoint (trunk) and a client checkpoint (head + tail)')
    .requiredOption('--server <dir>', "the server's checkpoint (e.g. ckpt/latest)")
    .requiredOption('--client <dir>', "a client's checkpoint (its folder under the client's --checkpoints)")
    .requiredOption('--out <dir>', 'where to write the merged checkpoint (then: flglm eval / generate / export)')
    .action((o: { server: string; client: string; out: string }) => {
      for (const [flag, dir] of [
        ['--server', o.server],
        ['--client', o.client],
      ])
        if (!existsSync(join(dir, 'checkpoint.json')))
          throw new UserError(`${flag} ${dir}: no checkpoint.json (not a flglm checkpoint)`);
      const server = loadCheckpoint(o.server),
        client = loadCheckpoint(o.client);
      if (JSON.stringify(server.meta.model) !== JSON.stringify(client.meta.model))
        throw new UserError(
          '--server and --client checkpoints are of different models (config differs): they are not from the same federation',
        );
      const store = new Map(client.store);
      for (const [n, t] of server.store) store.set(n, t);
      prepareOutputDir(o.out, '--out');
      saveCheckpoint(
        o.out,
        store,
        {
          model: client.meta.model,
          peft: client.meta.peft,
          step: client.meta.step,
          round: server.meta.round,
          base_model: client.meta.base_model,
        },
        undefined,
        undefined,
        o.client,
      );
      loadModelFolder(o.out); // refuses if the two did not make a whole model
      console.log(`${o.out}: whole model (round ${server.meta.round ?? '?'}): ${store.size} tensors`);
    });
}
