import type { Command } from 'commander';
import { writeFileAtomic } from '../util/atomic-write.js';
import { loadConfigFile } from '../config/load.js';
import { peftOf, resolveModel } from '../config/experiment.js';
import { buildPartProgram, type PartName, type ProgramKind } from '../model/partition.js';
import { toOnnx } from '../graph/onnx.js';
import { UserError } from '../util/errors.js';

const PARTS: PartName[] = ['head', 'trunk', 'tail', 'full'];
const KINDS: ProgramKind[] = ['forward', 'backward', 'step', 'eval'];

export function registerGraphCommand(program: Command): void {
  program
    .command('graph <config>')
    .description("Write a partition's forward or backward graph to an .onnx file (for Netron)")
    .requiredOption('--part <part>', PARTS.join(' | '))
    .requiredOption('--kind <kind>', 'forward | backward (head, trunk) or step | eval (tail, full)')
    .requiredOption('--out <file>', 'output .onnx file')
    .action((configPath: string, o: { part: PartName; kind: ProgramKind; out: string }) => {
      if (!PARTS.includes(o.part)) throw new UserError(`--part: expected ${PARTS.join('|')}, got "${o.part}"`);
      if (!KINDS.includes(o.kind)) throw new UserError(`--kind: expected ${KINDS.join('|')}, got "${o.kind}"`);
      const valid = o.part === 'tail' || o.part === 'full' ? ['step', 'eval'] : ['forward', 'backward'];
      if (!valid.includes(o.kind))
        throw new UserError(`--kind ${o.kind} does not exist for the ${o.part}; use ${valid.join(' or ')}`);
      const cfg = loadConfigFile(configPath);
      const { config, store } = resolveModel(cfg);
      const built = buildPartProgram(
        o.part,
        o.kind,
        config,
        cfg.split,
        peftOf(cfg),
        store,
        cfg.data.batch_size,
        cfg.data.seq_len,
      );
      const bytes = toOnnx(built.graph);
      writeFileAtomic(o.out, bytes);
      console.log(
        `${o.out}: ${o.part} ${o.kind} graph, ${built.graph.nodes.length} nodes, ${built.trainable.length} trainable inputs, ${(bytes.byteLength / 1e6).toFixed(1)} MB`,
      );
    });
}
