/**
 * The package as a user gets it: `import … from 'towerlab'` by name, from a folder outside the repository whose
 * node_modules/towerlab links to it. The README's "As a library" example is read straight out of README.md and
 * run with plain `node` (no tsx, no loader), and a small TypeScript consumer is type-checked against the shipped
 * .d.ts files — so README, exports and types cannot drift apart.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

/** The first ```js block of the README's "As a library" section. */
function readmeExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## As a library'));
  const m = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'README.md: no ```js block in "As a library"');
  return m[1];
}

function consumerDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-consumer-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'towerlab'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  return dir;
}

// dist/ is what the package exports; build it if the sources moved on since (a no-op when current).
const build = spawnSync(process.execPath, [join(root, 'scripts', 'build-lib.mjs')], { cwd: root, encoding: 'utf8' });

test('the library builds into dist/ with an entry and its types', () => {
  assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
  for (const f of ['dist/towerlab.js', 'dist/towerlab.d.ts', 'dist/bundle/verify-worker.mjs']) assert.ok(existsSync(join(root, f)), `${f} missing`);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  assert.equal(pkg.exports['.'].types, './dist/towerlab.d.ts');
  assert.ok(pkg.files.includes('dist'), 'package.json files must ship dist/');
});

test("README's library example runs on plain Node, importing 'towerlab' by name", () => {
  const dir = consumerDir();
  try {
    writeFileSync(join(dir, 'example.mjs'), readmeExample());
    // No --import tsx, and a clean NODE_OPTIONS: exactly what a user's `node example.mjs` does.
    const env = { ...process.env, NODE_OPTIONS: '' };
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', env, timeout: 300_000 });
    assert.equal(r.status, 0, `example failed:\n${r.stdout}\n${r.stderr}`);
    const recall = /test recall@10 ([\d.]+) popularity ([\d.]+)/.exec(r.stdout);
    assert.ok(recall, `no recall line in:\n${r.stdout}`);
    // Planted structure (5 taste groups): the model must beat popularity clearly.
    assert.ok(Number(recall[1]) > Number(recall[2]) + 0.1, `recall@10 ${recall[1]} vs popularity ${recall[2]}`);
    assert.ok(existsSync(join(dir, 'runs', 'lib-model', 'manifest.json')), 'model.save did not write runs/lib-model');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a TypeScript consumer type-checks against the shipped declarations', () => {
  const dir = consumerDir();
  try {
    writeFileSync(
      join(dir, 'consumer.ts'),
      `import { train, load, evaluate, loadRecipe, defaultRecipe, UserError, type TrainOptions, type Recommendation, type Recipe, type TextModel, type UserFeatures } from 'towerlab';
const recipe: Recipe = defaultRecipe;
const options: TrainOptions = { data: { users: Int32Array.of(0, 1), items: ['a', 'b'] }, recipe, train: { epochs: 1 } };
export async function run(): Promise<number> {
  const model = await train(options);
  const top: Recommendation[] = model.recommend({ history: ['a'] }, 3);
  const v: Float32Array = model.encodeItems(['a', { id: 'new', genre: 'x' }]);
  // @ts-expect-error k is a number: the declarations must carry real types, not any
  model.recommend('u', 'ten');
  const again = await load('dir');
  const { metrics } = await evaluate(again, [{ user: 'u', item: 'a' }]);
  // A new user by features (dense + categorical): embeddings and recommendations.
  const newUser: UserFeatures = { taste: [0.1, 0.2], age: Float32Array.of(0.5), region: 'r1' };
  const u: Float32Array = again.encodeUsers([newUser]);
  const forNew: Recommendation[] = again.recommend({ features: newUser }, 3);
  // @ts-expect-error a feature value is a string, boolean, number or numbers, not an object
  again.encodeUsers([{ taste: { x: 1 } }]);
  const text: TextModel = await train({ data: { pairs: [{ query: 'q', document: { id: 'd', text: 't' } }] } });
  const hits: Recommendation[] = text.recommend('a query', 2);
  void loadRecipe; void UserError; void hits;
  return top.length + v.length + u.length + forNew.length + (metrics['recall@10'] ?? 0);
}
`,
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: [] }, files: ['consumer.ts'] }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
