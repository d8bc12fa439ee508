/**
 * Embeddings out as Parquet (src/bundle/embeddings-parquet.ts, `towerlab export --embeddings`): written, then
 * read back with DuckDB's own SQL (not the module's reader) and compared bit for bit with the model's vectors;
 * the module's reader agrees too. Sequence models: item rows are the scoring table, user rows the tower's
 * last-state query (what the server answers a history query with).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { withDuck } from '../src/data/duck.ts';
import { modelEmbeddings, readEmbeddingsParquet, writeEmbeddingsParquet } from '../src/bundle/embeddings-parquet.ts';
import { seqAsArtifacts, SeqHistoryQuery } from '../src/bundle/seq.ts';
import { buildTower, defaultSeqModel } from '../src/seq/experiment.ts';
import { exportEmbeddings } from '../src/towerlab.ts';
import { makeArtifacts, makeModelDir, tmp, ITEMS, USERS } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

/** Every (side, id) → vector of the file, as DuckDB reads it. */
async function duckRead(path: string): Promise<Map<string, number[]>> {
  return withDuck(async (duck) => {
    const rows = await duck.rows(`SELECT side, id, "index", vector FROM read_parquet('${path}')`);
    const m = new Map<string, number[]>();
    for (const [side, id, , vec] of rows) m.set(`${side}:${id}`, (vec as any).items ?? (vec as number[]));
    return m;
  });
}

function assertRowsEqual(got: Map<string, number[]>, side: string, ids: string[], vecs: Float32Array, dim: number): void {
  for (let r = 0; r < ids.length; r++) {
    const v = got.get(`${side}:${ids[r]}`);
    assert.ok(v, `${side} ${ids[r]} missing`);
    assert.equal(v.length, dim);
    for (let t = 0; t < dim; t++) assert.equal(v[t], vecs[r * dim + t], `${side} ${ids[r]}[${t}]`);
  }
}

test('two-tower embeddings: Parquet written atomically, read back by DuckDB bit for bit', async () => {
  const backend = await getBackend();
  const a = makeArtifacts(3);
  const e = modelEmbeddings(backend, a);
  const dim = a.model.dim;
  assert.equal(e.users.length, USERS * dim);
  // Items are the vectors the server scores against; users what the user tower gives for each id.
  assert.deepEqual(e.items, a.model.embedAllItems(backend));
  const one = new Float32Array(dim);
  a.model.user.embed(backend, Int32Array.of(17), one);
  assert.deepEqual(e.users.subarray(17 * dim, 18 * dim), one);

  const dir = tmp('emb');
  const path = join(dir, 'emb.parquet');
  const r = await writeEmbeddingsParquet(path, e);
  assert.deepEqual([r.users, r.items, r.dim], [USERS, ITEMS, dim]);
  assert.deepEqual(readdirSync(dir), ['emb.parquet'], 'no temporary file left behind');
  const got = await duckRead(path);
  assert.equal(got.size, USERS + ITEMS);
  assertRowsEqual(got, 'user', a.userIds, e.users, dim);
  assertRowsEqual(got, 'item', a.itemIds, e.items, dim);
  const back = await readEmbeddingsParquet(path);
  assert.deepEqual(back.userIds, a.userIds);
  assert.deepEqual(back.itemIds, a.itemIds);
  assert.deepEqual(back.users, e.users);
  assert.deepEqual(back.items, e.items);
});

test('sequence model: items = scoring table, users = the tower output after each whole sequence', async () => {
  const backend = await getBackend();
  const items = 25;
  const users = 40;
  const opts = { ...defaultSeqModel, dim: 8, maxLen: 6, blocks: 1, heads: 1, dropout: 0, seed: 5 };
  const tower = buildTower(opts, items, true);
  const offsets = new Int32Array(users + 1);
  const cols: number[] = [];
  for (let u = 0; u < users; u++) {
    for (let k = 0; k < 3 + (u % 4); k++) cols.push((u * 3 + k * 7) % items);
    offsets[u + 1] = cols.length;
  }
  const art = seqAsArtifacts({
    tower,
    options: opts,
    score: 'dot',
    userIds: Array.from({ length: users }, (_, u) => `u${u}`),
    itemIds: Array.from({ length: items }, (_, j) => `i${j}`),
    sequences: { rows: users, offsets, cols: Int32Array.from(cols) },
    itemCounts: new Float32Array(items).fill(1),
    meta: {},
  });
  const e = modelEmbeddings(backend, art);
  const d = opts.dim;
  // The server's history query for user 9's whole sequence is the exported user vector.
  const q = new Float32Array(d);
  new SeqHistoryQuery(tower, backend).embed(cols.slice(offsets[9], offsets[10]), q);
  for (let t = 0; t < d; t++) assert.ok(Math.abs(q[t] - e.users[9 * d + t]) < 1e-6, `user 9 dim ${t}: ${q[t]} vs ${e.users[9 * d + t]}`);
  assert.deepEqual(e.items, tower.items.data.subarray(0, items * d)); // dot scoring: the raw item table
  const path = join(tmp('emb-seq'), 'seq.parquet');
  await writeEmbeddingsParquet(path, e);
  const got = await duckRead(path);
  assertRowsEqual(got, 'user', art.userIds, e.users, d);
  assertRowsEqual(got, 'item', art.itemIds, e.items, d);
});

test('towerlab export --embeddings writes only the Parquet file; bad paths are one-line errors', async () => {
  const dir = tmp('emb-cli');
  const model = join(dir, 'model');
  const a = makeModelDir(model, 4);
  const out = join(dir, 'e.parquet');
  const r = spawnSync(process.execPath, [BIN, 'export', '--model', model, '--embeddings', out, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual([j.embeddings.users, j.embeddings.items], [USERS, ITEMS]);
  const back = await readEmbeddingsParquet(out);
  const e = modelEmbeddings(await getBackend(), a);
  assert.deepEqual(back.items, e.items);
  assert.deepEqual(back.users, e.users);
  assert.ok(!existsSync(join(dir, 'bundle')));
  // The same from the library's package entry.
  const viaLib = await exportEmbeddings(model, join(dir, 'lib.parquet'));
  assert.deepEqual([viaLib.users, viaLib.items], [USERS, ITEMS]);
  assert.deepEqual((await readEmbeddingsParquet(join(dir, 'lib.parquet'))).items, e.items);

  const bad = spawnSync(process.execPath, [BIN, 'export', '--model', model, '--embeddings', join(dir, 'e.csv')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--embeddings: .*must end in \.parquet/);
  writeFileSync(join(dir, 'file'), 'x');
  const unwritable = spawnSync(process.execPath, [BIN, 'export', '--model', model, '--embeddings', join(dir, 'file', 'e.parquet')], { encoding: 'utf8' });
  assert.equal(unwritable.status, 2, unwritable.stderr);
  assert.match(unwritable.stderr, /towerlab: error: .*file\/e\.parquet: cannot create its directory/);
  assert.doesNotMatch(unwritable.stderr, /internal error|\n\s+at /);
  const nothing = spawnSync(process.execPath, [BIN, 'export', '--model', model], { encoding: 'utf8' });
  assert.equal(nothing.status, 2);
  assert.match(nothing.stderr, /nothing to write/);
});
