/**
 * LanceDB as the item index (src/index/lance-index.ts): `export --to lancedb:DIR` writes the item table,
 * `serve --index lancedb:DIR` answers /recommend from it, `mine --search lancedb:DIR` retrieves through it.
 * A small table has no IVF-PQ index (too few rows to train one): LanceDB scans it exactly, so its answers must
 * equal exact search. A table with an IVF-PQ index (forced partitions on 3000 rows) must find most of the exact
 * top 10 with every partition probed and refinement on. Tables from another model are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { modelEmbeddings } from '../src/bundle/embeddings-parquet.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { defaultLanceConfig, LanceIndex, writeLanceDir } from '../src/index/lance-index.ts';
import { ModelRetriever } from '../src/mine/model-retriever.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { ModelHolder } from '../src/serve/model-holder.ts';
import { buildServer, defaultServerOptions } from '../src/serve/server.ts';
import { UserError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';
import { makeArtifacts, makeBundle, makeModelDir, tmp, ITEMS, USERS } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

test('a small table is scanned exactly: LanceDB answers = exact search, scores = inner products', async () => {
  const backend = await getBackend();
  const a = makeArtifacts(2);
  const e = modelEmbeddings(backend, a);
  const dim = e.dim;
  const dir = join(tmp('lance'), 'items');
  const cfg = defaultLanceConfig(ITEMS, dim);
  assert.equal(cfg.partitions, 0, 'no IVF-PQ index under 5000 rows');
  const meta = await writeLanceDir(dir, { itemIds: a.itemIds, vectors: e.items, dim, config: cfg, model: 'fixture' });
  assert.equal(meta.items, ITEMS);
  const ix = LanceIndex.open(dir, { itemIds: a.itemIds, dim });
  try {
    const exact = new ExactSearcher(backend, e.items, ITEMS, dim);
    for (const u of [0, 7, 123, 299]) {
      const q = e.users.subarray(u * dim, (u + 1) * dim);
      const want = exact.search(q, 10);
      const got = ix.search(q, 10);
      assert.deepEqual(Array.from(got.ids), Array.from(want.ids), `user ${u}`);
      for (let i = 0; i < 10; i++) {
        // float64 inner product from the vectors themselves
        let s = 0;
        for (let t = 0; t < dim; t++) s += q[t] * e.items[got.ids[i] * dim + t];
        assert.ok(Math.abs(got.scores[i] - s) < 1e-5, `score ${got.scores[i]} vs ${s}`);
      }
    }
    assert.equal(ix.search(e.users.subarray(0, dim), 5000).ids.length, ITEMS, 'k above the table size returns every item');
  } finally {
    ix.close();
  }
  // Another model's items, or a directory that is not a table: one-line refusals.
  const other = makeArtifacts(2);
  other.itemIds[3] = 'zzz';
  assert.throws(() => LanceIndex.open(dir, { itemIds: other.itemIds }), (err: Error) => err instanceof UserError && /item ids differ/.test(err.message));
  assert.throws(() => LanceIndex.open(dir, { dim: dim + 1 }), UserError);
  assert.throws(() => LanceIndex.open(tmp('lance-empty')), (err: Error) => err instanceof UserError && /not a Towerlab LanceDB directory/.test(err.message));
});

test('an IVF-PQ table finds the exact top 10 with every partition probed and refinement', async () => {
  const backend = await getBackend();
  const rng = new Rng(4);
  const n = 3000;
  const dim = 16;
  const v = Float32Array.from({ length: n * dim }, () => rng.normal());
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let t = 0; t < dim; t++) s += v[r * dim + t] ** 2;
    for (let t = 0; t < dim; t++) v[r * dim + t] /= Math.sqrt(s);
  }
  const ids = Array.from({ length: n }, (_, j) => `x${j}`);
  const dir = join(tmp('lance-pq'), 'items');
  const cfg = { ...defaultLanceConfig(n, dim), partitions: 8, subVectors: 4, nprobe: 8, refineFactor: 20 };
  const meta = await writeLanceDir(dir, { itemIds: ids, vectors: v, dim, config: cfg, model: 'random' });
  assert.equal(meta.config.partitions, 8);
  const ix = LanceIndex.open(dir, { itemIds: ids });
  const coarse = ix.with({ nprobe: 1, refineFactor: 0 });
  try {
    const exact = new ExactSearcher(backend, v, n, dim);
    let hit = 0;
    let hitCoarse = 0;
    for (let i = 0; i < 40; i++) {
      const q = v.subarray(i * 7 * dim, (i * 7 + 1) * dim);
      const want = new Set(exact.search(q, 10).ids);
      hit += Array.from(ix.search(q, 10).ids).filter((j) => want.has(j)).length;
      hitCoarse += Array.from(coarse.search(q, 10).ids).filter((j) => want.has(j)).length;
    }
    assert.ok(hit / 400 >= 0.95, `recall@10 ${hit / 400}`);
    assert.ok(hitCoarse < hit, `one partition without refinement should find less (${hitCoarse} vs ${hit})`);
  } finally {
    ix.close();
    coarse.close();
  }
});

test('serve --index lancedb:DIR answers /recommend from the table; mine --search lancedb:DIR retrieves through it', async () => {
  const backend = await getBackend();
  const dir = tmp('lance-serve');
  const bundleDir = join(dir, 'bundle');
  await makeBundle(bundleDir, 1);
  const model = join(dir, 'model');
  const a = makeModelDir(model, 1);
  const table = join(dir, 'lance');
  const r = spawnSync(process.execPath, [BIN, 'export', '--model', model, '--to', `lancedb:${table}`, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.lancedb.items, ITEMS);
  assert.equal(j.lancedb.recallAt10, 1, 'flat scan: recall 1');
  assert.doesNotMatch(r.stderr, /WARN/, 'LanceDB warnings kept off stderr');

  const holder = new ModelHolder(bundleDir, backend, 'ann', () => {}, () => {}, undefined, undefined, { dir: table });
  await holder.reload();
  const app = buildServer(holder, new ServerMetrics({ defaults: false }), defaultServerOptions);
  try {
    for (const user of ['u3', 'u150']) {
      const viaLance = (await app.inject({ method: 'POST', url: '/recommend', payload: { user, k: 10 } })).json();
      const viaExact = (await app.inject({ method: 'POST', url: '/recommend', payload: { user, k: 10, search: 'exact' } })).json();
      assert.equal(viaLance.search, 'lancedb');
      assert.deepEqual(viaLance.items.map((x: any) => x.item), viaExact.items.map((x: any) => x.item));
    }
    const h = (await app.inject({ url: '/health' })).json();
    assert.equal(h.index.kind, 'lancedb');
  } finally {
    await app.close();
    (holder.current!.bundle.index as LanceIndex).close();
  }

  // The miner's retriever: lists through the table = exact lists (seen items excluded in both).
  const lance = LanceIndex.open(table, { itemIds: a.itemIds });
  try {
    const users = Int32Array.from({ length: 20 }, (_, i) => (i * 13) % USERS);
    const viaLance = new ModelRetriever(backend, a.model, { search: 'index', index: lance, exclude: a.seen }).retrieve(users, 15);
    const viaExact = new ModelRetriever(backend, a.model, { search: 'exact', exclude: a.seen }).retrieve(users, 15);
    assert.deepEqual(Array.from(viaLance.ids), Array.from(viaExact.ids));
  } finally {
    lance.close();
  }

  const bad = spawnSync(process.execPath, [BIN, 'serve', '--model', bundleDir, '--index', 'lance:x', '--port', '0'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--index: 'lance:x'/);
});
