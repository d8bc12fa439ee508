/**
 * The item index: HNSW results against exact search (recall), save/load, metric choices, the exact searcher
 * against a brute-force reference, and `towerlab index build` end to end with its one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { annConfigFrom } from '../src/cli/index-cmd.ts';
import { getBackend } from '../src/compute/index.ts';
import { AnnIndex } from '../src/index/ann-index.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { loadIndexDir } from '../src/index/item-index.ts';
import { indexRecall } from '../src/index/recall.ts';
import { Rng } from '../src/util/rng.ts';
import { makeModelDir, tmp } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

/** n unit vectors around `clusters` random centres: retrieval-like structure. */
function clustered(n: number, dim: number, clusters: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const centres = Float32Array.from({ length: clusters * dim }, () => rng.normal());
  const v = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = rng.int(clusters);
    let s = 0;
    for (let t = 0; t < dim; t++) {
      const x = centres[c * dim + t] + 0.6 * rng.normal();
      v[i * dim + t] = x;
      s += x * x;
    }
    for (let t = 0; t < dim; t++) v[i * dim + t] /= Math.sqrt(s);
  }
  return v;
}

test('HNSW finds what exact search finds (recall@10 >= 0.95), for ip and cos, and survives save/load', async () => {
  const backend = await getBackend();
  const n = 3000;
  const dim = 16;
  const items = clustered(n, dim, 30, 1);
  const queries = clustered(200, dim, 30, 2);
  const exact = new ExactSearcher(backend, items, n, dim);
  for (const metric of ['ip', 'cos'] as const) {
    const cfg = { metric, connectivity: 16, expansionAdd: 64, expansionSearch: 64 };
    const idx = AnnIndex.build(items, n, dim, cfg);
    assert.equal(idx.size, n);
    const r = indexRecall(idx, exact, queries, 10);
    assert.ok(r.recall >= 0.95, `${metric}: recall@10 ${r.recall}`);
    // Scores are similarities: equal to the exact inner product of the returned item.
    const q = queries.subarray(0, dim);
    const h = idx.search(q, 5);
    for (let i = 0; i < h.ids.length; i++) {
      let dot = 0;
      for (let t = 0; t < dim; t++) dot += q[t] * items[h.ids[i] * dim + t];
      assert.ok(Math.abs(dot - h.scores[i]) < 1e-4, `${metric}: score ${h.scores[i]} vs dot ${dot}`);
      if (i) assert.ok(h.scores[i - 1] >= h.scores[i] - 1e-6, 'best first');
    }
    const dir = tmp('ann');
    idx.save(join(dir, 'i.usearch'));
    const back = AnnIndex.load(join(dir, 'i.usearch'), dim, cfg, n);
    assert.deepEqual(Array.from(back.search(q, 10).ids), Array.from(idx.search(q, 10).ids));
    assert.throws(() => AnnIndex.load(join(dir, 'i.usearch'), dim, cfg, n + 1), /holds 3000 vectors, the model has 3001 items/);
    assert.throws(() => AnnIndex.load(join(dir, 'nope.usearch'), dim, cfg, n), /index file missing/);
  }
  // k beyond the index size returns every item once.
  const small = AnnIndex.build(items.subarray(0, 20 * dim), 20, dim, { metric: 'ip', connectivity: 8, expansionAdd: 32, expansionSearch: 32 });
  assert.equal(new Set(small.search(queries.subarray(0, dim), 100).ids).size, 20);
});

test('exact search matches a brute-force reference, with banned rows, a skip predicate and an allow-list', async () => {
  const backend = await getBackend();
  const n = 500;
  const dim = 8;
  const items = clustered(n, dim, 5, 3);
  const q = clustered(1, dim, 5, 4);
  const ex = new ExactSearcher(backend, items, n, dim);
  const dots = Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (let t = 0; t < dim; t++) s += q[t] * items[j * dim + t];
    return s;
  });
  const ref = (ok: (j: number) => boolean, k: number) =>
    dots
      .map((s, j) => ({ s, j }))
      .filter((x) => ok(x.j))
      .sort((a, b) => b.s - a.s || a.j - b.j)
      .slice(0, k)
      .map((x) => x.j);
  const banned = new Set([ref(() => true, 1)[0], 7, 9]);
  assert.deepEqual(Array.from(ex.search(q, 10, (j) => j % 3 === 0, banned).ids), ref((j) => j % 3 !== 0 && !banned.has(j), 10));
  const allow = Int32Array.from([4, 40, 99, 123, 400]);
  assert.deepEqual(Array.from(ex.searchAmong(q, 3, allow).ids), ref((j) => allow.includes(j), 3));
  assert.equal(ex.search(q, 10, () => true).ids.length, 0, 'everything skipped: no results, no padding');
});

test('towerlab index build: writes the index, reports recall vs exact, loads back; errors are one line', () => {
  const dir = tmp('index-cli');
  makeModelDir(join(dir, 'model'), 1);
  const r = spawnSync(process.execPath, [BIN, 'index', 'build', '--model', join(dir, 'model'), '--out', join(dir, 'idx'), '--json', '--recall-queries', '100'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.items, 600);
  assert.ok(j.recall_at_10 >= 0.95, `recall ${j.recall_at_10}`);
  const { index, meta } = loadIndexDir(join(dir, 'idx'));
  assert.equal(index.size, 600);
  assert.equal(meta.recallAt10, j.recall_at_10);
  // A flipped byte is caught by the checksum.
  const f = join(dir, 'idx', 'items.usearch');
  const b = readFileSync(f);
  b[b.length - 5] ^= 0xff;
  writeFileSync(f, b);
  assert.throws(() => loadIndexDir(join(dir, 'idx')), /items\.usearch: checksum mismatch/);

  const bad = spawnSync(process.execPath, [BIN, 'index', 'build', '--model', join(dir, 'nope'), '--out', join(dir, 'x')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /nope: no model found/);
  assert.doesNotMatch(bad.stderr, /^\s+at /m);
  assert.ok(!existsSync(join(dir, 'x')));
  const opts = { metric: 'ip' as const, connectivity: '16', expansionAdd: '64', expansionSearch: '64', recallQueries: '10' };
  assert.throws(() => annConfigFrom({ ...opts, connectivity: 'lots' }), /--connectivity: must be a positive integer, got 'lots'/);
  assert.throws(() => annConfigFrom({ ...opts, recallQueries: '0' }), /--recall-queries: must be a positive integer, got '0'/);
});
