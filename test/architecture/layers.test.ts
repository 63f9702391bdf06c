import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

// The structure the code keeps (docs/architecture.md): each folder of src/ is a layer and imports
// only from layers below it, no module imports itself back through others, and no file grows past
// ~300 lines. Type-only imports count: they are arrows in the design even if erased at run time.

/**
 * Lower layers first; a folder may import from folders strictly earlier in this list. The plug-in
 * folders federation/strategies and server/modes are layers of their own below config, which
 * builds its schema from their registries (names, options, traits); they see the rest through
 * their own interfaces (Strategy, RoundContext).
 */
const LAYERS = [
  'util',
  'graph',
  'security',
  'runtime',
  'model',
  'data',
  'federation/strategies',
  'server/modes',
  'config',
  'report',
  'training',
  'privacy',
  'protocol',
  'federation',
  'client',
  'server',
  'launcher',
  'cli',
];
const MAX_LINES = 300;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return p.endsWith(join('protocol', 'generated')) ? [] : sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

const files = sourceFiles('src');
const imports = new Map(
  files.map((f) => {
    const text = readFileSync(f, 'utf8');
    const deps = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/g)].map((m) =>
      normalize(join(dirname(f), m[1])).replace(/\.js$/, '.ts'),
    );
    return [f, deps.filter((d) => !d.includes(join('protocol', 'generated')))];
  }),
);
/** The longest entry of LAYERS that holds the file (a plug-in folder before its parent). */
const layerOf = (f: string) => {
  const parts = relative('src', f).split('/');
  return parts.length > 2 && LAYERS.includes(`${parts[0]}/${parts[1]}`) ? `${parts[0]}/${parts[1]}` : parts[0];
};

test('every folder of src/ is a known layer', () => {
  const folders = readdirSync('src').filter((f) => statSync(join('src', f)).isDirectory());
  expect(folders.filter((f) => !LAYERS.includes(f))).toEqual([]);
  expect(LAYERS.filter((l) => !existsSync(join('src', l)))).toEqual([]);
});

test('imports run one way: from a layer to the layers below it', () => {
  const upward: string[] = [];
  for (const [f, deps] of imports) {
    for (const d of deps) {
      const from = LAYERS.indexOf(layerOf(f)),
        to = LAYERS.indexOf(layerOf(d));
      if (to > from) upward.push(`${f} -> ${d}`);
    }
  }
  expect(upward).toEqual([]);
});

test('no import cycle between modules', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
      return;
    }
    state.set(f, 'open');
    for (const d of imports.get(f) ?? []) if (imports.has(d)) visit(d, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  expect(cycles).toEqual([]);
});

test(`no source file over ${MAX_LINES} formatted lines`, () => {
  const lines = (f: string) => readFileSync(f, 'utf8').split('\n').length;
  // Counted after prettier (print width 120), so a file cannot fit by making its lines longer.
  const long = files.filter((f) => lines(f) > MAX_LINES + 1);
  expect(long).toEqual([]);
});

test('docs/architecture.md lists exactly the folders of src/', () => {
  const doc = readFileSync('docs/architecture.md', 'utf8');
  const listed = [...doc.matchAll(/^\| `src\/([a-z-]+)` \|/gm)].map((m) => m[1]).sort();
  const folders = readdirSync('src')
    .filter((f) => statSync(join('src', f)).isDirectory())
    .sort();
  expect(listed).toEqual(folders);
});
