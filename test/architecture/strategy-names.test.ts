import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { STRATEGY_NAMES } from '../../src/federation/strategies/lookup.js';

// A strategy is handed over as behaviour (its halves, hooks and traits), never chosen by name: no
// string in src/ outside src/federation/strategies/ names one, so adding a strategy is one file
// there plus one registry line. The check reads string literals and template text (comments may
// name strategies), so it also catches names in error messages built outside the strategy.

const OWNER = join('src', 'federation', 'strategies');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory())
      return p === OWNER || p.endsWith(join('protocol', 'generated')) ? [] : sourceFiles(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** Every string literal and piece of template text of a source, with its line. */
function strings(file: string, text = readFileSync(file, 'utf8')): { text: string; line: number }[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: { text: string; line: number }[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node))
      out.push({ text: node.text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const named = new RegExp(`(^|[^A-Za-z0-9_])(${STRATEGY_NAMES.join('|')})($|[^A-Za-z0-9_])`);

test('no file of src/ outside federation/strategies names a strategy in a string', () => {
  const found = sourceFiles('src').flatMap((f) =>
    strings(f)
      .filter((s) => named.test(s.text))
      .map((s) => `${f}:${s.line}: ${JSON.stringify(s.text)}`),
  );
  expect(found).toEqual([]);
});

test('the check sees names in plain strings and in template text, not in comments', () => {
  const text = "const a = 'relay';\nconst b = `x ${a} scaffold`;\n// fedavg in a comment\nconst c = 'relayed';\n";
  expect(strings('probe.ts', text).filter((s) => named.test(s.text))).toEqual([
    { text: 'relay', line: 1 },
    { text: ' scaffold', line: 2 },
  ]);
});
