/**
 * Only the recipe → sources builder (src/sampling/build.ts) and the schema (src/recipe/schema.ts) may know
 * which kind of negative source they hold: everything else works through the source lifecycle
 * (src/sampling/source.ts). This test fails when another src file compares against a source type name or
 * probes a source structurally (`'epoch' in s`), the pattern that made every new source a hunt through the
 * step, the sequential objectives and the trainer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ALLOWED = new Set(['src/sampling/build.ts', 'src/recipe/schema.ts']);
const TYPES = ['in-batch', 'queue', 'same-tower', 'neighbourhood', 'mined', 'full-catalogue', 'uniform', 'popularity', 'stratified'];
const LIT = `'(?:${TYPES.join('|')})'`;
const RULES: Array<[string, RegExp]> = [
  ['compares against a source type name', new RegExp(`(?:===|!==|==|!=)\\s*${LIT}|${LIT}\\s*(?:===|!==|==|!=)`)],
  ['switches on a source type name', new RegExp(`case\\s+${LIT}\\s*:`)],
  ['looks a source type name up', new RegExp(`\\.(?:includes|has|indexOf)\\(\\s*${LIT}\\s*\\)`)],
  ['probes a source structurally', /'(?:epoch|queue|momentum|sameTower|enqueue|sampler|hardnessFor)'\s+in\s/],
];

/** Violations in one file's text, as "line: what". */
export function violations(text: string): string[] {
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*\*/.test(code)) return; // comment block lines
    for (const [what, re] of RULES) if (re.test(code)) out.push(`${i + 1}: ${what}: ${line.trim()}`);
  });
  return out;
}

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? files(p) : /\.(ts|mts|mjs|js)$/.test(e.name) ? [p] : [];
  });
}

test('the detector catches each pattern and passes the lifecycle idiom', () => {
  assert.equal(violations("if (s.type === 'neighbourhood') x();").length, 1);
  assert.equal(violations("if ('queue' !== spec.type) x();").length, 1);
  assert.equal(violations("    case 'full-catalogue':").length, 1);
  assert.equal(violations("for (const s of set) if ('epoch' in s) s.epoch = e;").length, 1);
  assert.equal(violations("const q = set.find((s) => s.name === 'queue');").length, 1);
  assert.equal(violations('for (const s of sources) s.beginEpoch?.({ epoch, step });').length, 0);
  assert.equal(violations("  readonly name = 'queue';").length, 0);
  assert.equal(violations(" * a 'queue' source keeps past positives").length, 0);
});

test('no src file but the sources builder and the schema reads source type names', () => {
  const root = join(import.meta.dirname, '..');
  const bad: string[] = [];
  for (const f of files(join(root, 'src'))) {
    const rel = relative(root, f).split('\\').join('/');
    if (ALLOWED.has(rel)) continue;
    for (const v of violations(readFileSync(f, 'utf8'))) bad.push(`${rel}:${v}`);
  }
  assert.deepEqual(bad, [], `source type names read outside src/sampling/build.ts:\n${bad.join('\n')}`);
});
