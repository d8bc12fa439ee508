/**
 * The IVF-Flat item index: scanning every list is exact search; recall on planted clusters at a small nprobe;
 * the native kernel and the JS path agree; save/load round trip and corrupted files; seen-item exclusion
 * and filters through the recommender on an IVF bundle; `towerlab index build --kind ivf` end to end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { readBundle } from '../src/bundle/read.ts';
import { getBackend } from '../src/compute/index.ts';
import { nativeIvfSearch } from '../src/compute/native.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { loadIndexDir } from '../src/index/item-index.ts';
import { IvfIndex, type IvfConfig } from '../src/index/ivf-index.ts';
import { indexRecall } from '../src/index/recall.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { Rng } from '../src/util/rng.ts';
import { skipWithoutNative } from './helpers/native-required.ts';
import { makeArtifacts, makeModelDir, tmp, ITEMS } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

/** n unit vectors around `clusters` random centres (the centres drawn from `centreSeed`). */
function clustered(n: number, dim: number, clusters: number, seed: number, centreSeed = 99, noise = 0.5): Float32Array {
  const cr = new Rng(centreSeed);
  const centres = Float32Array.from({ length: clusters * dim }, () => cr.normal());
  const rng = new Rng(seed);
  const v = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = rng.int(clusters);
    let s = 0;
    for (let t = 0; t < dim; t++) {
      const x = centres[c * dim + t] + noise * rng.normal();
      v[i * dim + t] = x;
      s += x * x;
    }
    for (let t = 0; t < dim; t++) v[i * dim + t] /= Math.sqrt(s);
  }
  return v;
}

const n = 4000;
const dim = 24; // not a multiple of 8 in the kernel's 16-wide loop: exercises the tails
const items = clustered(n, dim, 40, 1);
const queries = clustered(200, dim, 40, 2);

test('IVF with nprobe = lists is exact search (ids in order, scores to float rounding), for ip and cos', async () => {
  const backend = await getBackend();
  const exact = new ExactSearcher(backend, items, n, dim);
  // 'cos' on unnormalised vectors: the index normalises items and queries itself.
  const scaled = items.map((x, i) => x * (1 + (Math.floor(i / dim) % 7)));
  for (const metric of ['ip', 'cos'] as const) {
    const vecs = metric === 'ip' ? items : scaled;
    const ivf = IvfIndex.build(backend, vecs, n, dim, { kind: 'ivf', metric, lists: 50, nprobe: 50 });
    assert.equal(ivf.size, n);
    assert.equal(ivf.lists, 50);
    for (const portable of [false, true]) {
      const ix = ivf.withNprobe(50, portable);
      for (let i = 0; i < 50; i++) {
        const q = queries.subarray(i * dim, (i + 1) * dim);
        const want = exact.search(q, 10);
        const got = ix.search(q, 10);
        assert.deepEqual(Array.from(got.ids), Array.from(want.ids), `${metric} portable=${portable} query ${i}`);
        let qn = 0;
        for (let t = 0; t < dim; t++) qn += q[t] * q[t];
        for (let r = 0; r < 10; r++) assert.ok(Math.abs(got.scores[r] - want.scores[r] / (metric === 'cos' ? Math.sqrt(qn) : 1)) < 1e-5, `${metric} score ${got.scores[r]} vs ${want.scores[r]}`);
      }
    }
    // k beyond the item count returns every item once.
    assert.equal(new Set(ivf.search(queries.subarray(0, dim), n + 10).ids).size, n);
  }
});

test('IVF recall@10 on planted clusters is high at a small nprobe, and k-means is what makes it so', async () => {
  const backend = await getBackend();
  const exact = new ExactSearcher(backend, items, n, dim);
  const ivf = IvfIndex.build(backend, items, n, dim, { kind: 'ivf', metric: 'ip', lists: 40, nprobe: 3 });
  const r = indexRecall(ivf, exact, queries, 10);
  assert.ok(r.recall >= 0.95, `recall@10 at nprobe 3 of 40: ${r.recall}`);
  // Without clustering (items spread over lists at random) 3 of 40 lists hold ~7.5% of the neighbours.
  const one = indexRecall(ivf.withNprobe(1), exact, queries, 10);
  assert.ok(one.recall >= 0.7, `nprobe 1: ${one.recall}`);
  // A single iteration on an unclustered index is still a partition: nprobe 1 of 40 cannot be exact.
  const spread = IvfIndex.build(backend, clustered(n, dim, 1, 5, 7, 3), n, dim, { kind: 'ivf', metric: 'ip', lists: 40, nprobe: 1 });
  const ex2 = new ExactSearcher(backend, clustered(n, dim, 1, 5, 7, 3), n, dim);
  assert.ok(indexRecall(spread, ex2, queries, 10).recall < 0.9, 'nprobe 1 on structureless data scans a fraction of the items');
});

test('native kernel and JS path agree (ids and scores) at every nprobe', async (t) => {
  if (skipWithoutNative(t, !!nativeIvfSearch())) return;
  const backend = await getBackend();
  const ivf = IvfIndex.build(backend, items, n, dim, { kind: 'ivf', metric: 'ip', lists: 64, nprobe: 4 });
  assert.ok(ivf.isNative);
  for (const np of [1, 4, 17, 64]) {
    const a = ivf.withNprobe(np, false);
    const b = ivf.withNprobe(np, true);
    assert.ok(!b.isNative);
    for (let i = 0; i < 100; i++) {
      const q = queries.subarray(i * dim, (i + 1) * dim);
      const x = a.search(q, 25);
      const y = b.search(q, 25);
      assert.deepEqual(Array.from(x.ids), Array.from(y.ids), `nprobe ${np} query ${i}`);
      for (let r = 0; r < x.scores.length; r++) assert.ok(Math.abs(x.scores[r] - y.scores[r]) < 1e-5);
    }
  }
});

test('IVF save/load: same answers; corrupted or mismatched files are one-line errors', async () => {
  const backend = await getBackend();
  const cfg: IvfConfig = { kind: 'ivf', metric: 'ip', lists: 30, nprobe: 5 };
  const ivf = IvfIndex.build(backend, items, n, dim, cfg);
  const bytes = ivf.toBytes();
  const back = IvfIndex.fromBytes(bytes, 'x.ivf', { dim, items: n });
  assert.deepEqual(back.config, { ...cfg, lists: 30 });
  for (let i = 0; i < 20; i++) {
    const q = queries.subarray(i * dim, (i + 1) * dim);
    assert.deepEqual(Array.from(back.search(q, 10).ids), Array.from(ivf.search(q, 10).ids));
  }
  // An unaligned copy (as a file read may give) still loads.
  const un = new Uint8Array(bytes.length + 1).subarray(1);
  un.set(bytes);
  assert.equal(IvfIndex.fromBytes(un, 'x.ivf', { dim, items: n }).size, n);
  assert.equal(IvfIndex.fromBytes(bytes, 'x.ivf', { dim, items: n, nprobe: 9 }).config.nprobe, 9);
  assert.throws(() => IvfIndex.fromBytes(bytes, 'x.ivf', { dim, items: n + 1 }), /x\.ivf: index holds 4000 vectors, the model has 4001 items/);
  assert.throws(() => IvfIndex.fromBytes(bytes, 'x.ivf', { dim: 8, items: n }), /x\.ivf: index has 24 dimensions, the model 8/);
  assert.throws(() => IvfIndex.fromBytes(bytes.subarray(0, bytes.length - 4), 'x.ivf', { dim, items: n }), /x\.ivf: not a valid IVF index: .* bytes, expected/);
  const bad = Buffer.from(bytes);
  // The first id (after header, centroids and offsets) made a duplicate of the second.
  const idsAt = 32 + 4 * (30 * dim + 31);
  bad.writeInt32LE(bad.readInt32LE(idsAt + 4), idsAt);
  assert.throws(() => IvfIndex.fromBytes(bad, 'x.ivf', { dim, items: n }), /stored twice/);
  const junk = Buffer.from(bytes);
  junk.write('NOTANIVF', 0, 'latin1');
  assert.throws(() => IvfIndex.fromBytes(junk, 'x.ivf', { dim, items: n }), /not a valid IVF index: bad header/);
});

test('an IVF bundle: written, verified, read back; the recommender excludes seen items and applies filters', async () => {
  const backend = await getBackend();
  const dir = join(tmp('ivf-bundle'), 'b');
  const draft = createBundle(backend, makeArtifacts(1), { index: { kind: 'ivf', metric: 'ip', lists: 24, nprobe: 24 }, recallQueries: 100, source: 'fixture:ivf' });
  assert.equal(draft.manifest.index?.kind, 'ivf');
  assert.equal(draft.manifest.index?.recallAt10, 1, 'all lists scanned: recall 1');
  writeBundle(dir, draft);
  const bundle = await readBundle(dir, { nprobe: 24 });
  assert.ok(bundle.index instanceof IvfIndex);
  const r = new Recommender(bundle, backend, 'ann', 0);
  for (const user of ['u3', 'u7', 'u42']) {
    const ann = r.recommend({ user, k: 10, excludeSeen: true });
    const ex = r.recommend({ user, k: 10, excludeSeen: true, search: 'exact' });
    assert.equal(ann.search, 'ivf');
    assert.deepEqual(ann.items.map((x) => x.item), ex.items.map((x) => x.item), 'nprobe = lists: the exact answer');
    const u = bundle.userIndex.get(user)!;
    const seen = new Set(Array.from(bundle.seen.cols.subarray(bundle.seen.offsets[u], bundle.seen.offsets[u + 1]), (j) => bundle.itemIds[j]));
    assert.ok(seen.size > 0);
    assert.ok(!ann.items.some((x) => seen.has(x.item)), 'seen items excluded');
    const cat = r.recommend({ user, k: 10, excludeSeen: true, filter: { features: { category: ['c1', 'c3'] } } });
    assert.equal(cat.search, 'ivf');
    for (const it of cat.items) assert.ok([0, 2].includes(Number(it.item.slice(1)) % 5), `${it.item} has category c1 or c3`);
    const top2 = ann.items.slice(0, 2).map((x) => x.item);
    const without = r.recommend({ user, k: 10, excludeSeen: true, filter: { exclude: top2 } });
    assert.ok(!without.items.some((x) => top2.includes(x.item)));
  }
  // A flipped byte in the index file is caught by the bundle checksum.
  const f = join(dir, 'index', 'items.ivf');
  const b = readFileSync(f);
  b[100] ^= 0xff;
  writeFileSync(f, b);
  await assert.rejects(readBundle(dir, { attempts: 1 }), /items\.ivf: checksum mismatch/);
  assert.equal(ITEMS, bundle.manifest.model.items);
});

test('towerlab index build --kind ivf: writes items.ivf, reports recall vs exact, loads back', () => {
  const dir = tmp('ivf-cli');
  makeModelDir(join(dir, 'model'), 1);
  const r = spawnSync(process.execPath, [BIN, 'index', 'build', '--kind', 'ivf', '--lists', '20', '--nprobe', '20', '--model', join(dir, 'model'), '--out', join(dir, 'idx'), '--json', '--recall-queries', '100'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.items, 600);
  assert.equal(j.kind, 'ivf');
  assert.equal(j.recall_at_10, 1, 'every list scanned');
  const { index, meta } = loadIndexDir(join(dir, 'idx'));
  assert.ok(index instanceof IvfIndex);
  assert.equal(index.size, 600);
  assert.equal(meta.recallAt10, 1);
  const bad = spawnSync(process.execPath, [BIN, 'index', 'build', '--kind', 'ivf', '--nprobe', '0', '--model', join(dir, 'model'), '--out', join(dir, 'x')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--nprobe: must be a positive integer, got '0'/);
});
