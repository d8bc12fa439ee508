/**
 * Item names end to end: `--item-names FILE[:COLUMN]` read from any tabular format, saved with a trained model,
 * printed by `recommend` (text and --json), carried by the exported bundle into the server's responses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { loadItemNames, parseItemNamesSpec } from '../src/data/item-names.ts';
import { Recommender } from '../src/serve/recommender.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const DATA = 'synthetic:users=200,items=150,clusters=4,zipf=1.0,seed=3';

test('loadItemNames: RecBole file with a partial column name, CSV by id column, missing ids null, wrong column one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-names-'));
  try {
    const rb = join(dir, 'ml.item');
    writeFileSync(rb, 'item_id:token\tmovie_title:token_seq\trelease_year:token\n1\tToy Story\t1995\n2\tGoldenEye\t1995\n9\tNot in data\t2000\n');
    assert.deepEqual(parseItemNamesSpec(`${rb}:title`), { path: rb, column: 'title' });
    assert.deepEqual(await loadItemNames(`${rb}:title`, ['2', '1', '3']), ['GoldenEye', 'Toy Story', null]);
    const csv = join(dir, 'meta.csv');
    writeFileSync(csv, 'sku,label,asin\nx,wrong,i1\ny,also wrong,i0\n');
    // The id column is the data's item column name when given, else a conventional one (asin), else the first.
    assert.deepEqual(await loadItemNames(`${csv}:label`, ['i0', 'i1']), ['also wrong', 'wrong']);
    assert.deepEqual(await loadItemNames(`${csv}:label`, ['x', 'y'], 'sku'), ['wrong', 'also wrong']);
    await assert.rejects(loadItemNames(`${csv}:genre`, ['i0']), /meta\.csv.*genre.*columns: sku, label, asin/);
    await assert.rejects(loadItemNames(`${rb}:title`, ['i0', 'i1']), /no id in column 'item_id' matches an item id/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('train --item-names → recommend prints names → export → the server answers with names', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-names-cli-'));
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  try {
    const names = join(dir, 'items.jsonl');
    writeFileSync(names, Array.from({ length: 150 }, (_, j) => JSON.stringify({ item_id: `i${j}`, title: `Title number ${j}` })).join('\n') + '\n');
    const t = cli(['train', '--data', DATA, '--epochs', '1', '--batch-size', '128', '--no-progress', '--out', 'run', '--item-names', names]);
    assert.equal(t.status, 0, t.stderr);
    const r = cli(['recommend', '--model', 'run', '--user', 'u3', '--k', '5']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n').slice(1);
    assert.equal(lines.length, 5);
    for (const l of lines) {
      const m = /^\s*\d+\s+i(\d+)\s+-?\d\.\d{4}\s+Title number (\d+)$/.exec(l);
      assert.ok(m && m[1] === m[2], `line without its name: '${l}'`);
    }
    const j = JSON.parse(cli(['recommend', '--model', 'run', '--user', 'u3', '--k', '5', '--json']).stdout.trim().split('\n').at(-1)!);
    for (const it of j.items) assert.equal(it.name, `Title number ${it.item.slice(1)}`);
    // --item-names on recommend overrides the saved names.
    const other = join(dir, 'other.csv');
    writeFileSync(other, 'item_id,name\n' + Array.from({ length: 150 }, (_, k) => `i${k},Other ${k}`).join('\n') + '\n');
    const o = JSON.parse(cli(['recommend', '--model', 'run', '--user', 'u3', '--k', '3', '--json', '--item-names', `${other}:name`]).stdout.trim().split('\n').at(-1)!);
    for (const it of o.items) assert.equal(it.name, `Other ${it.item.slice(1)}`);

    const e = cli(['export', '--model', 'run', '--out', 'bundle', '--no-index']);
    assert.equal(e.status, 0, e.stderr);
    assert.ok(existsSync(join(dir, 'bundle', 'vocab', 'item-names.json')));
    const bundle = await readBundle(join(dir, 'bundle'));
    const rec = new Recommender(bundle, await getBackend(), 'exact').recommend({ user: 'u3', k: 5, excludeSeen: true });
    for (const it of rec.items) assert.equal(it.name, `Title number ${it.item.slice(1)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
