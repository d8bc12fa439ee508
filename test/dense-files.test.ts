/**
 * Dense (numeric / vector) features read from files: `--item-dense-features` / `--user-dense-features` columns of
 * the interaction file (CSV text "[x, y]", numbers) or of a features file (Parquet list column, JSONL arrays),
 * the values each entity gets (last value by time/row; zeros without one), and strict one-line errors naming
 * file, row and column (exit 2, no stack) for a wrong width, a non-number, NaN. Then a model trained from such
 * files through the CLI exports a bundle and an ONNX query tower that takes the dense input.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadInteractions, type DataSpec } from '../src/data/load.ts';
import { withDuck } from '../src/data/duck.ts';
import { UserError } from '../src/util/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'towerlab-dense-files-'));
const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

const vecOf = (d: { itemDense?: { name: string; width: number; values: Float32Array }[]; itemVocab: { get(id: string): number | undefined } }, name: string, id: string) => {
  const f = d.itemDense!.find((x) => x.name === name)!;
  const e = d.itemVocab.get(id)!;
  return Array.from(f.values.subarray(e * f.width, (e + 1) * f.width));
};

test('interaction-file columns: text vectors and numbers; an item takes its last value by time; none = zeros', async () => {
  const p = file('inter.csv', [
    'user_id,item_id,timestamp,vec,price',
    'u1,a,3,"[1, 2, 3]",1.5',
    'u1,b,1,"[0.5,0.5,0.5]",2',
    'u2,a,1,"[9, 9, 9]",',
    'u2,c,2,,',
    '',
  ].join('\n'));
  const d = await loadInteractions({ path: p, itemDenseCols: ['vec', 'price'] });
  assert.deepEqual(d.itemDense!.map((f) => [f.name, f.width]), [['vec', 3], ['price', 1]]);
  assert.deepEqual(vecOf(d, 'vec', 'a'), [1, 2, 3], 'the later row (time 3) wins over time 1');
  assert.deepEqual(vecOf(d, 'vec', 'b'), [0.5, 0.5, 0.5]);
  assert.deepEqual(vecOf(d, 'vec', 'c'), [0, 0, 0], 'no value: zeros');
  assert.deepEqual(vecOf(d, 'price', 'a'), [1.5]);
  assert.deepEqual(vecOf(d, 'price', 'c'), [0]);
  assert.equal(d.userDense, undefined);
});

test('a features file: Parquet list column and JSONL arrays; keys not in the data ignored, later rows override', async () => {
  const inter = file('inter2.csv', 'user,item\nu1,a\nu1,b\nu2,c\n');
  const pq = join(dir, 'items.parquet');
  await withDuck((duck) => duck.run(`COPY (SELECT * FROM (VALUES ('a', [1.0, 2.0]::FLOAT[], 'x'), ('zz', [5.0, 5.0]::FLOAT[], 'y'), ('b', [3.0, 4.0]::FLOAT[], 'x'), ('a', [7.0, 8.0]::FLOAT[], 'z')) t(item, emb, shelf)) TO '${pq}' (FORMAT parquet)`));
  const d = await loadInteractions({ path: inter, itemFeaturesPath: pq, itemDenseCols: ['emb'] });
  assert.deepEqual(d.itemFeatures.map((f) => f.name), ['shelf'], 'the dense column is not also a categorical one');
  assert.deepEqual(vecOf(d, 'emb', 'a'), [7, 8]);
  assert.deepEqual(vecOf(d, 'emb', 'b'), [3, 4]);
  assert.deepEqual(vecOf(d, 'emb', 'c'), [0, 0]);
  const jl = file('users.jsonl', '{"user": "u1", "taste": [0.25, -1]}\n{"user": "u2", "taste": [2, 3]}\n');
  const du = await loadInteractions({ path: inter, userFeaturesPath: jl, userDenseCols: ['taste'] });
  const f = du.userDense![0];
  assert.deepEqual([f.name, f.width, Array.from(f.values)], ['taste', 2, [0.25, -1, 2, 3]]);
});

test('strict errors: wrong width, not a number, NaN, empty list, missing column — file, row and column named', async () => {
  const cases: Array<[string, string, DataSpec['itemDenseCols'], RegExp]> = [
    ['width.csv', 'user,item,vec\nu1,a,"[1,2,3]"\nu2,b,"[1,2]"\n', ['vec'], /width\.csv:3: field 'vec': has 2 numbers, but the first row with a value \(row 2\) has 3/],
    ['word.csv', 'user,item,vec\nu1,a,"[1,2]"\nu2,b,abc\n', ['vec'], /word\.csv:3: field 'vec': not a number or a list of numbers \[x, y, …\]: 'abc'/],
    ['elem.csv', 'user,item,vec\nu1,a,"[1,x]"\n', ['vec'], /elem\.csv:2: field 'vec': every element must be a finite number \(not NaN, infinite or missing\): '\[1,x\]'/],
    ['nan.csv', 'user,item,vec\nu1,a,"[1,2]"\nu1,b,"[nan, 1]"\n', ['vec'], /nan\.csv:3: field 'vec': every element must be a finite number/],
    ['nan1.csv', 'user,item,price\nu1,a,1\nu1,b,NaN\n', ['price'], /nan1\.csv:3: field 'price': every element must be a finite number/],
    ['empty.csv', 'user,item,vec\nu1,a,[]\n', ['vec'], /empty\.csv:2: field 'vec': an empty list/],
    ['nocol.csv', 'user,item\nu1,a\n', ['vec'], /nocol\.csv: field 'vec': no such column \(wanted as the item dense feature column\)/],
  ];
  for (const [name, text, cols, re] of cases) {
    await assert.rejects(loadInteractions({ path: file(name, text), itemDenseCols: cols }), (e: unknown) => e instanceof UserError && re.test((e as Error).message), name);
  }
  const wide = file('wide.csv', `user,item,vec\nu1,a,"[${Array(5000).fill(1).join(',')}]"\n`);
  await assert.rejects(loadInteractions({ path: wide, itemDenseCols: ['vec'] }), /wide\.csv:2: field 'vec': 5000 numbers per value, over the limit of 4096/);
  // Through the CLI: one line, exit 2, no stack trace.
  const r = cli(['train', '--data', join(dir, 'width.csv'), '--item-dense-features', 'vec', '--epochs', '1', '--no-progress', '--out', 'bad-run']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^towerlab: error: .*width\.csv:3: field 'vec': has 2 numbers/);
  assert.equal(r.err.trim().split('\n').length, 1, r.err);
  assert.doesNotMatch(r.err, /\n\s+at /);
});

test('CLI: train with dense feature columns, export a bundle and an ONNX tower whose inputs include the dense one', () => {
  const lines = ['user,item,time,taste,vec'];
  for (let u = 0; u < 60; u++) {
    const c = u % 3;
    for (let j = 0; j < 6; j++) {
      const it = c * 20 + ((u + j * 3) % 20);
      lines.push(`u${u},i${it},${u * 10 + j},"[${c === 0 ? 1 : 0}, ${c === 1 ? 1 : 0}]","[${c}, ${it % 5}, 1]"`);
    }
  }
  file('train.csv', `${lines.join('\n')}\n`);
  let r = cli(['train', '--data', 'train.csv', '--user-dense-features', 'taste', '--item-dense-features', 'vec', '--epochs', '1', '--batch-size', '64', '--dim', '8', '--mlp', '16,8', '--no-progress', '--out', 'run']);
  assert.equal(r.code, 0, r.err);
  r = cli(['export', '--model', 'run', '--out', 'bundle', '--onnx', '--no-index']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /inputs user_index, dense_0 → embedding/);
  const spec = JSON.parse(readFileSync(join(dir, 'bundle', 'query-tower.json'), 'utf8'));
  assert.deepEqual(spec.dense, [{ input: 'dense_0', name: 'taste', width: 2 }]);
  const manifest = JSON.parse(readFileSync(join(dir, 'bundle', 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.model.item.dense, [{ name: 'vec', width: 3, dim: 16 }]);
});
