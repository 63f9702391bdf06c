import type { Command } from 'commander';

/** One example per command, shown at the end of its --help (a test checks every command has one). */
export const EXAMPLES: Record<string, string[]> = {
  keygen: [
    'flglm keygen --out pki --clients alice,bob,carol --server-name fl.example.org --server-address fl.example.org:50051',
  ],
  'keygen add-client': ['flglm keygen add-client dave --pki pki'],
  'keygen revoke': ['flglm keygen revoke bob --pki pki'],
  server: ['flglm server --config configs/quickstart.yaml --pki pki/server --host 0.0.0.0 --checkpoints ckpt'],
  client: ['flglm client --pki pki/clients/alice --data silos/client-0 --test silos/test'],
  run: ['flglm run configs/quickstart.yaml', 'flglm run --resume runs/quickstart-20261125-120000'],
  dashboard: ['flglm dashboard runs/quickstart-20261125-120000 --port 8470'],
  train: ['flglm train configs/quickstart.yaml --out runs/centralized'],
  eval: ['flglm eval --model runs/quickstart-20261125-120000/model --data silos/test'],
  generate: ['flglm generate --model runs/quickstart-20261125-120000/model --prompt "Subject: " --max-new-tokens 40'],
  serve: [
    'flglm serve --openai --server 127.0.0.1:50051 --pki pki/clients/alice --model runs/quickstart-20261125-120000/checkpoints/clients/client-0 --port 8000',
  ],
  'data check': ['flglm data check silos/client-0 --task classify'],
  'data prepare': ['flglm data prepare --out silos --clients 3 --partition dirichlet:0.5'],
  'config validate': ['flglm config validate configs/quickstart.yaml --set federation.rounds=8'],
  'config schema': ['flglm config schema --out configs/flglm.schema.json'],
  init: ['flglm init my-experiment.yaml'],
  graph: ['flglm graph configs/quickstart.yaml --part trunk --kind backward --out trunk-backward.onnx'],
  export: ['flglm export --model runs/quickstart-20261125-120000/model --hf out/model --merge-lora --peft out/adapter'],
  doctor: ['flglm doctor --pki pki/clients/alice'],
  merge: ['flglm merge --server ckpt/latest --client client-ckpt/alice --out model'],
  'privacy epsilon': ['flglm privacy epsilon --sampling-rate 0.01 --noise-multiplier 1.0 --steps 300 --delta 1e-5'],
  'privacy noise': ['flglm privacy noise --target-epsilon 8 --sampling-rate 1 --steps 20 --delta 1e-5'],
  'attack invert': [
    'flglm run configs/quickstart.yaml --attack   # then: flglm attack invert --run runs/quickstart-20261125-120000',
  ],
};

export const pathOf = (cmd: Command): string => {
  const names: string[] = [];
  for (let c: Command | null = cmd; c && c.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
};

/**
 * The conventions every command follows, applied in one place: its example after --help, required
 * options marked as such, and a usage error that names `flglm <command> --help`.
 */
export function applyConventions(program: Command): void {
  const visit = (cmd: Command) => {
    for (const sub of cmd.commands) visit(sub);
    if (cmd === program) return;
    const path = pathOf(cmd);
    const examples = EXAMPLES[path];
    if (examples && cmd.commands.length === 0)
      cmd.addHelpText(
        'after',
        `\nExample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  ${e}`).join('\n')}`,
      );
    for (const o of cmd.options)
      if (o.mandatory && !o.description.endsWith('(required)')) o.description += ' (required)';
    cmd.showHelpAfterError(`(run \`flglm ${path} --help\` for its options and an example)`);
  };
  visit(program);
}
