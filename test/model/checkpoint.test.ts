import { mkdtempSync, existsSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS } from '../../src/model/config.js';
import { addPeftParams, float32Of, initParams } from '../../src/model/params.js';
import { exportHfFolder } from '../../src/model/hf.js';
import { loadSafetensors } from '../../src/model/safetensors.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/training/checkpoint.js';
import { AdamW } from '../../src/training/optimizer.js';

const peft = {
  method: 'full' as const,
  lora: { rank: 2, alpha: 4, dropout: 0, targets: ['q' as const] },
  prefix: { length: 2 },
};

describe('checkpoints', () => {
  test('weights, optimizer state and metadata round-trip exactly', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'flglm-ckpt-')), 'ckpt');
    const store = initParams(PRESETS.tiny, 3);
    const opt = new AdamW({
      name: 'adamw',
      lr: 1e-3,
      weight_decay: 0,
      betas: [0.9, 0.99],
      eps: 1e-8,
      momentum: 0,
      grad_clip: 0,
      grad_accum: 1,
    });
    const params = new Map([...store].map(([k, v]) => [k, v.data]));
    opt.apply(params, new Map([...params].map(([k, v]) => [k, Float32Array.from(v, (x) => x * 0.1 + 0.01)])), 1e-3);
    saveCheckpoint(
      dir,
      store,
      { model: PRESETS.tiny, peft, step: 7, rng: [1, 2, 3, 4], data: { epoch: 2 } },
      opt.state(),
    );
    const back = loadCheckpoint(dir);
    expect(back.meta).toMatchObject({
      step: 7,
      rng: [1, 2, 3, 4],
      data: { epoch: 2 },
      optimizer: { name: 'adamw', step: 1 },
    });
    for (const [n, p] of store) expect(Array.from(float32Of(back.store.get(n)!))).toEqual(Array.from(p.data));
    const restored = new AdamW(opt.config);
    restored.load(back.optimizer!);
    expect(Array.from(restored.state().slots['model.norm.weight'][1])).toEqual(
      Array.from(opt.state().slots['model.norm.weight'][1]),
    );
  });

  test('a half-written checkpoint (no checkpoint.json) is never loaded, and saving again replaces it', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'flglm-ckpt-')), 'ckpt');
    const store = initParams(PRESETS.tiny, 3);
    saveCheckpoint(dir, store, { model: PRESETS.tiny, peft, step: 1 });
    rmSync(join(dir, 'checkpoint.json'));
    expect(() => loadCheckpoint(dir)).toThrow(/no complete checkpoint/);
    saveCheckpoint(dir, store, { model: PRESETS.tiny, peft, step: 2 });
    expect(loadCheckpoint(dir).meta.step).toBe(2);
    expect(readdirSync(join(dir, '..')).filter((f) => f.includes('.tmp') || f.includes('.old'))).toEqual([]);
    expect(existsSync(join(dir, 'model.safetensors'))).toBe(true);
  });

  test('a LoRA checkpoint on a base model folder stores only what trains and reads the rest back from the base', () => {
    const root = mkdtempSync(join(tmpdir(), 'flglm-ckpt-'));
    const base = join(root, 'base'),
      dir = join(root, 'ckpt');
    const store = initParams(PRESETS.tiny, 5);
    exportHfFolder(base, PRESETS.tiny, store);
    const lora = { ...peft, method: 'lora' as const };
    addPeftParams(store, PRESETS.tiny, lora, 5);
    for (const [n, p] of store) if (n.endsWith('lora_B')) p.data.fill(0.25);
    saveCheckpoint(dir, store, { model: PRESETS.tiny, peft: lora, step: 3, base_model: base });
    const written = loadSafetensors(join(dir, 'model.safetensors')).tensors;
    expect([...written.keys()].every((n) => n.includes('.lora_'))).toBe(true);
    expect(written.size).toBe([...store.keys()].filter((n) => n.includes('.lora_')).length);
    const back = loadCheckpoint(dir);
    expect(back.meta.frozen!.from).toBe(base);
    expect([...back.store.keys()].sort()).toEqual([...store.keys()].sort());
    for (const [n, p] of store) expect(Array.from(float32Of(back.store.get(n)!))).toEqual(Array.from(p.data));
    // Without its base the checkpoint says what it needs, and where.
    rmSync(base, { recursive: true });
    expect(() => loadCheckpoint(dir)).toThrow(
      `${dir} stores only the weights that trained (lora); its ${store.size - written.size} frozen weights come from the base model ${base}, which is not there`,
    );
    // Full fine-tuning stores everything, base folder or not.
    exportHfFolder(base, PRESETS.tiny, initParams(PRESETS.tiny, 5));
    saveCheckpoint(dir, store, { model: PRESETS.tiny, peft, step: 4, base_model: base });
    expect(loadSafetensors(join(dir, 'model.safetensors')).tensors.size).toBe(store.size);
  });
});
