import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS, type ModelConfig } from '../../src/model/config.js';
import { toHfConfig } from '../../src/model/hf-config.js';
import {
  addPeftParams,
  float32Of,
  initParams,
  baseParamShapes,
  type ParamStore,
  type PeftConfig,
} from '../../src/model/params.js';
import { exportHfFolder, exportPeftAdapter, importHfFolder } from '../../src/model/hf.js';
import { decodeSafetensors, encodeSafetensors, loadSafetensors } from '../../src/model/safetensors.js';
import { PartExecutor } from '../../src/training/part-executor.js';
import { tensor } from '../../src/runtime/tensor.js';
import { HfTokenizer } from '../../src/data/hf-tokenizer.js';

const dir = () => mkdtempSync(join(tmpdir(), 'flglm-hf-'));
const split = { head_blocks: 1, tail_blocks: 1 };
const full: PeftConfig = {
  method: 'full',
  lora: { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v'] },
  prefix: { length: 2 },
};

async function logits(config: ModelConfig, store: ParamStore) {
  const ex = new PartExecutor('full', config, split, full, store, { threads: 1 });
  const r = await ex.evaluate(
    tensor('int64', [1, 8], [1, 2, 3, 4, 5, 6, 7, 8]),
    tensor('int64', [8], [2, 3, 4, 5, 6, 7, 8, 9]),
  );
  await ex.release();
  return r;
}

describe('Hugging Face folders', () => {
  test.each([
    ['llama', { ...PRESETS.tiny }],
    [
      'qwen2 (q/k/v bias, tied embeddings)',
      { ...PRESETS.tiny, model_type: 'qwen2', attention_bias: true, tie_word_embeddings: true },
    ],
  ])('%s: export then import gives bit-equal weights and equal outputs', async (_name, config) => {
    const store = initParams(config, 5);
    const out = dir();
    exportHfFolder(out, config, store);
    const hf = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(hf.hidden_size).toBe(config.hidden_size);
    // HF layout: nn.Linear weights are [out, in].
    const raw = loadSafetensors(join(out, 'model.safetensors')).tensors;
    expect(raw.get('model.layers.0.self_attn.k_proj.weight')!.shape).toEqual([
      config.num_key_value_heads * 8,
      config.hidden_size,
    ]);
    const back = importHfFolder(out);
    expect(back.config).toEqual(config);
    for (const [name] of baseParamShapes(config))
      expect(
        Buffer.from(float32Of(back.store.get(name)!).buffer).equals(Buffer.from(store.get(name)!.data.buffer)),
      ).toBe(true);
    const a = await logits(config, store);
    const b = await logits(back.config, back.store);
    expect(b.loss).toBe(a.loss);
    expect(Array.from(b.pred)).toEqual(Array.from(a.pred));
  });

  test('a folder with a missing weight is one clear error', () => {
    const out = dir();
    writeFileSync(join(out, 'config.json'), JSON.stringify(toHfConfig(PRESETS.tiny)));
    writeFileSync(join(out, 'model.safetensors'), encodeSafetensors(new Map()));
    expect(() => importHfFolder(out)).toThrow(/weight model\.embed_tokens\.weight is missing/);
  });

  test('LoRA adapters are written in PEFT layout', () => {
    const config = { ...PRESETS.tiny };
    const store = initParams(config, 1);
    const peft: PeftConfig = { ...full, method: 'lora' };
    addPeftParams(store, config, peft, 1);
    const out = dir();
    exportPeftAdapter(out, config, store, peft);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'] });
    const t = loadSafetensors(join(out, 'adapter_model.safetensors')).tensors;
    expect(t.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape).toEqual([4, 32]);
    expect(t.get('base_model.model.model.layers.3.self_attn.v_proj.lora_B.weight')!.shape).toEqual([16, 4]);
    expect(t.size).toBe(4 * 2 * 2);
  });
});

describe('safetensors', () => {
  test('F16 and BF16 tensors are widened to F32', () => {
    const header = JSON.stringify({
      a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] },
      b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] },
    });
    const bytes = new Uint8Array(8 + header.length + 6);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
    bytes.set(Buffer.from(header), 8);
    const dv = new DataView(bytes.buffer, 8 + header.length);
    dv.setUint16(0, 0x3c00, true); // 1.0
    dv.setUint16(2, 0xc000, true); // -2.0
    dv.setUint16(4, 0x4049, true); // bf16 3.140625
    const t = decodeSafetensors(bytes).tensors;
    expect(Array.from(t.get('a')!.data)).toEqual([1, -2]);
    expect(t.get('b')!.data[0]).toBeCloseTo(3.140625, 6);
  });

  test('a truncated file is refused with a clear error', () => {
    const good = encodeSafetensors(new Map([['w', { shape: [4], data: Float32Array.of(1, 2, 3, 4) }]]));
    expect(() => decodeSafetensors(good.subarray(0, good.length - 3), 'x.safetensors')).toThrow(
      'x.safetensors: tensor w runs past the end of the file (truncated?)',
    );
  });
});

// GPT-2's byte-to-unicode table, used by byte-level BPE tokenizer.json files.
function bytesToUnicode(): string[] {
  const keep = [
    ...Array.from({ length: 94 }, (_, i) => 33 + i),
    ...Array.from({ length: 12 }, (_, i) => 161 + i),
    ...Array.from({ length: 82 }, (_, i) => 174 + i),
  ];
  let n = 0;
  return Array.from({ length: 256 }, (_, b) =>
    keep.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++),
  );
}

describe('tokenizer.json through tokenizers.js', () => {
  test('byte-level BPE encodes with merges and decodes back', () => {
    const chars = bytesToUnicode();
    const vocab: Record<string, number> = {};
    chars.forEach((c, i) => (vocab[c] = i));
    vocab['Ġs'] = 256;
    vocab['pa'] = 257;
    vocab['Ġspa'] = 258;
    vocab['Ġspam'] = 259;
    vocab['<|endoftext|>'] = 260;
    const json = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [
        {
          id: 260,
          content: '<|endoftext|>',
          single_word: false,
          lstrip: false,
          rstrip: false,
          normalized: false,
          special: true,
        },
      ],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: ['Ġ s', 'p a', 'Ġs pa', 'Ġspa m'],
      },
    };
    const folder = dir();
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(join(folder, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
    const tok = HfTokenizer.fromFolder(folder);
    expect(tok.vocabSize).toBe(261);
    expect(tok.eos).toBe(260);
    expect(tok.encode('label: spam')).toEqual([...Buffer.from('label:')].map((b) => vocab[chars[b]]).concat([259]));
    expect(tok.decode(tok.encode('label: spam, ham'))).toBe('label: spam, ham');
  });
});
