import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfigFile } from '../../config/load.js';
import type { ExperimentConfig } from '../../config/schema.js';
import type { ModelConfig } from '../../model/config.js';
import { partOwns } from '../../model/partition.js';
import { asFloat32, type StoredParam } from '../../model/params.js';
import { loadCheckpoint } from '../../training/checkpoint.js';
import { UserError } from '../../util/errors.js';
import type { InferenceWorkerInit } from './inference-worker.js';

/**
 * The trunk to serve from a run folder (`flglm server --serve --from RUN_DIR`): the plan it was
 * trained with (config.yaml) and the server's last round checkpoint (its frozen weights read back
 * from the base model when the checkpoint left them there).
 */
export function trunkFromRun(
  runDir: string,
  configPath?: string,
): { cfg: ExperimentConfig; model: ModelConfig; params: InferenceWorkerInit['params'] } {
  const cfgFile = configPath ?? join(runDir, 'config.yaml');
  if (!existsSync(cfgFile))
    throw new UserError(`--from ${runDir}: no config.yaml there (a folder made by flglm run), and no --config given`);
  const cfg = loadConfigFile(cfgFile);
  for (const dir of [join(runDir, 'checkpoints', 'server', 'latest'), join(runDir, 'latest'), runDir]) {
    if (!existsSync(join(dir, 'checkpoint.json'))) continue;
    const { store, meta } = loadCheckpoint(dir);
    const trunk = partOwns('trunk', meta.model, cfg.split);
    const params = [...store]
      .filter(([n]) => trunk(n))
      .map(([n, p]): [string, StoredParam] => [n, p.quant ? p : asFloat32(p)]);
    if (params.length === 0)
      throw new UserError(
        `${dir} holds no trunk weights (a client checkpoint?). Fix: point --from at the run folder or the server's --checkpoints folder`,
      );
    return { cfg, model: meta.model, params };
  }
  throw new UserError(
    `--from ${runDir}: no server checkpoint (checkpoints/server/latest, latest/ or the folder itself). Fix: give the folder flglm run wrote, or the server's --checkpoints folder`,
  );
}
