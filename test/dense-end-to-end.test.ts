/**
 * A model trained with dense (numeric / vector) features, through the rest of the product: the library API
 * (encode, recommend, save/load, cold-start items by their vectors), `towerlab export` (bundle, ONNX query tower,
 * Parquet embeddings), `towerlab serve` (/recommend, /embed, a new user by features), each checked against the
 * in-process model. Generated data with planted structure: items of cluster c carry a content vector near
 * centroid c, users of cluster c a taste vector near their own centroid; cold items (in the catalogue, never in
 * an interaction) are reachable only through their vectors, so a model without the dense feature cannot rank them.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { train, load, type Model } from '../src/towerlab.ts';
import { QueryTower } from '../src/bundle/query-tower.ts';
import { readBundle, type Bundle } from '../src/bundle/read.ts';
import { readEmbeddingsParquet } from '../src/bundle/embeddings-parquet.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { startServer, type RunningServer } from '../src/serve/run.ts';
import { Rng } from '../src/util/rng.ts';
import { reseal, tamperFile } from './helpers/tamper.ts';

const C = 4; // clusters
const WARM = 30; // items per cluster with interactions
const COLD = 10; // items per cluster in the catalogue only
const USERS = 240;
const W_ITEM = 8;
const W_USER = 5;
const dir = mkdtempSync(join(tmpdir(), 'towerlab-dense-e2e-'));
const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function plantedData() {
  const rng = new Rng(5);
  const centre = (w: number) => Array.from({ length: C }, () => Array.from({ length: w }, () => rng.normal()));
  const itemCentroids = centre(W_ITEM);
  const userCentroids = centre(W_USER);
  const near = (c: number[]) => c.map((x) => x + 0.3 * rng.normal());
  const itemFeatures = [];
  for (let c = 0; c < C; c++) for (let k = 0; k < WARM + COLD; k++) itemFeatures.push({ id: `i${c}_${k}`, content: near(itemCentroids[c]) });
  const userFeatures = [];
  const rows = [];
  for (let u = 0; u < USERS; u++) {
    const c = u % C;
    userFeatures.push({ id: `u${u}`, taste: near(userCentroids[c]), region: `r${rng.int(3)}` });
    for (let j = 0; j < 12; j++) rows.push({ user: `u${u}`, item: `i${c}_${(u * 7 + j * 11) % WARM}` });
  }
  return { rows, itemFeatures, userFeatures, itemCentroids, userCentroids };
}

const data = plantedData();
const coldIds = Array.from({ length: C * COLD }, (_, n) => `i${Math.floor(n / COLD)}_${WARM + (n % COLD)}`);
const clusterOf = (item: string) => Number(item.slice(1, item.indexOf('_')));
const modelOptions = { dim: 16, mlp: [32, 16], featureDim: 8 };
let model: Model;
let modelDir: string;

/** Share of each user's top-5 cold items (by the model's scores) that are in the user's cluster. */
function coldPrecision(m: Model, users: number): number {
  const d = m.dim;
  const items = m.encodeItems(coldIds);
  const q = m.encodeQueries(Array.from({ length: users }, (_, u) => `u${u}`));
  let hit = 0;
  for (let u = 0; u < users; u++) {
    const scores = coldIds.map((_, r) => items.subarray(r * d, (r + 1) * d).reduce((s, x, j) => s + x * q[u * d + j], 0));
    const top = scores.map((s, r) => [s, r]).sort((a, b) => b[0] - a[0]).slice(0, 5);
    hit += top.filter(([, r]) => clusterOf(coldIds[r]) === u % C).length;
  }
  return hit / (5 * users);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

before(async () => {
  model = await train({ data: { rows: data.rows, itemFeatures: data.itemFeatures, userFeatures: data.userFeatures }, train: { epochs: 5, batchSize: 256 }, model: modelOptions });
  modelDir = join(dir, 'model');
  model.save(modelDir);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('planted structure: cold items reachable only by their content vector are ranked by it; without the dense feature they are not', async (t) => {
  assert.deepEqual(model.towers.item.dense.map((f) => [f.name, f.width]), [['content', W_ITEM]]);
  assert.deepEqual(model.towers.user.dense.map((f) => [f.name, f.width]), [['taste', W_USER]]);
  const withDense = coldPrecision(model, 60);
  const without = await train({ data: { rows: data.rows, itemFeatures: data.itemFeatures, userFeatures: data.userFeatures }, train: { epochs: 5, batchSize: 256 }, model: { ...modelOptions, useFeatures: false } });
  const withoutDense = coldPrecision(without, 60);
  t.diagnostic(`cold-item precision@5 (own cluster), 60 users: with dense ${withDense.toFixed(3)}, without ${withoutDense.toFixed(3)}`);
  assert.ok(withDense >= 0.8, `with the dense feature, ${withDense} of top-5 cold items in the user's cluster`);
  assert.ok(withoutDense < 0.5, `without it ${withoutDense} (chance = ${1 / C})`);
  // Recommendations over the whole catalogue stay in the user's cluster.
  const recs = model.recommend('u5', 10);
  assert.ok(recs.filter((r) => clusterOf(r.item) === 5 % C).length >= 9, JSON.stringify(recs));
});

test('library API: encode, recommend, save and load; a new item embedded from its features', async () => {
  const again = await load(modelDir);
  const users = ['u0', 'u7', 'u33'];
  assert.ok(maxAbsDiff(again.encodeQueries(users), model.encodeQueries(users)) === 0, 'query embeddings after load');
  assert.ok(maxAbsDiff(again.encodeItems(['i0_1', 'i3_35']), model.encodeItems(['i0_1', 'i3_35'])) === 0, 'item embeddings after load');
  assert.deepEqual(again.recommend('u7', 10), model.recommend('u7', 10));
  // A catalogue item given by id and given by its own stored features: the same embedding.
  const stored = data.itemFeatures.find((f) => f.id === 'i2_33')!;
  assert.ok(maxAbsDiff(model.encodeItems([{ id: 'i2_33', content: stored.content }]), model.encodeItems(['i2_33'])) < 1e-6);
  // An item never seen anywhere: its id row is zero, its content vector places it in its cluster.
  const d = model.dim;
  const q = model.encodeQueries(Array.from({ length: C }, (_, c) => `u${c}`));
  for (let c = 0; c < C; c++) {
    const e = again.encodeItems([{ id: `new-${c}`, content: data.itemCentroids[c] }]);
    const scores = Array.from({ length: C }, (_, u) => e.reduce((s, x, j) => s + x * q[u * d + j], 0));
    assert.equal(scores.indexOf(Math.max(...scores)), c, `new item of cluster ${c} scores ${scores}`);
  }
  // Bad feature values: one line naming the feature.
  assert.throws(() => model.encodeItems([{ content: [1, 2] }]), /item feature 'content': expected 8 numbers, got 2/);
  assert.throws(() => model.encodeItems([{ content: [1, 2, 3, 4, 5, 6, 7, Number.NaN] }]), /item feature 'content'\[7\]: not a finite number/);
  assert.throws(() => model.encodeItems([{ colour: 'red' }]), /item feature 'colour': the model has no such item feature/);
});

test('towerlab export: bundle, ONNX and Parquet of a dense-feature model equal the model; serve answers as the model', async (t) => {
  const bundleDir = join(dir, 'bundle');
  const parquet = join(dir, 'emb.parquet');
  const r = cli(['export', '--model', modelDir, '--out', bundleDir, '--onnx', '--embeddings', parquet, '--no-index', '--json']);
  assert.equal(r.code, 0, r.err);
  const allUsers = model.userIds as string[];
  const allItems = model.itemIds as string[];
  const userEmb = model.encodeQueries(allUsers);
  const itemEmb = model.encodeItems(allItems);
  const d = model.dim;

  // The bundle: stored item embeddings (dense feature baked in) and the query tower with the taste projection.
  const b: Bundle = await readBundle(bundleDir);
  assert.ok(maxAbsDiff(b.itemEmb, itemEmb) < 1e-6, 'bundle item embeddings');
  const tower = new QueryTower(b.query);
  const fromBundle = new Float32Array(allUsers.length * d);
  allUsers.forEach((_, u) => tower.embedUser(model.backend, u, fromBundle.subarray(u * d, (u + 1) * d)));
  const bundleDiff = maxAbsDiff(fromBundle, userEmb);
  assert.ok(bundleDiff < 1e-5, `bundle query tower vs model: ${bundleDiff}`);

  // Parquet: both sides re-encoded by the model.
  const e = await readEmbeddingsParquet(parquet);
  assert.deepEqual(e.userIds, allUsers);
  assert.ok(maxAbsDiff(e.users, userEmb) < 1e-6 && maxAbsDiff(e.items, itemEmb) < 1e-6, 'parquet embeddings');

  // ONNX: inputs user_index, feature_0 (region), dense_0 (taste, float32 [batch, 5]).
  const spec = JSON.parse(readFileSync(join(bundleDir, 'query-tower.json'), 'utf8'));
  assert.deepEqual(spec.dense, [{ input: 'dense_0', name: 'taste', width: W_USER }]);
  const s = await ort.InferenceSession.create(readFileSync(join(bundleDir, 'query-tower.onnx')));
  const n = allUsers.length;
  const i64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v, BigInt), [v.length]);
  const f32 = (v: Float32Array, rows: number) => new ort.Tensor('float32', v, [rows, v.length / rows]);
  const stored = await s.run({ user_index: i64(allUsers.map((_, u) => u)), feature_0: i64(Array(n).fill(-1)), dense_0: f32(new Float32Array(n * W_USER).fill(Number.NaN), n) });
  const onnxDiff = maxAbsDiff(stored.embedding.data as Float32Array, userEmb);
  t.diagnostic(`max abs diff vs the model's encodeQueries, ${n} users: bundle query tower ${bundleDiff.toExponential(1)}, ONNX ${onnxDiff.toExponential(1)}`);
  assert.ok(onnxDiff < 1e-5, `ONNX (stored values) vs model: ${onnxDiff}`);
  // A known user with a new taste vector: the TS tower given the same row.
  const taste = Float32Array.from(data.userCentroids[2]);
  const given = await s.run({ user_index: i64([3]), feature_0: i64([-1]), dense_0: f32(taste, 1) });
  const ts = new Float32Array(d);
  const u3 = allUsers.indexOf('u3');
  model.towers.user.embedRows(model.backend, Int32Array.of(u3), { categorical: [Int32Array.of(model.towers.user.featureValues[0][u3])], dense: [taste] }, ts);
  assert.ok(maxAbsDiff(given.embedding.data as Float32Array, ts) < 1e-5, 'ONNX with given dense values vs the TS tower');
  // A new user (index -1) known by region and taste: the served query tower's answer.
  const region = b.userFeatures[0].index.get('r1')!;
  const fresh = await s.run({ user_index: i64([-1]), feature_0: i64([region]), dense_0: f32(taste, 1) });
  const served = new Float32Array(d);
  tower.embedFeatures(model.backend, [region], served, [taste]);
  assert.ok(maxAbsDiff(fresh.embedding.data as Float32Array, served) < 1e-5, 'ONNX new user vs bundle query tower');

  // towerlab serve: /recommend for known users = the model's recommend; a new user by taste lands in its cluster.
  const server: RunningServer = await startServer({ source: bundleDir, port: 0 });
  try {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as any };
    };
    for (const user of ['u0', 'u1', 'u42', 'u239']) {
      const got = await post('/recommend', { user, k: 10 });
      assert.equal(got.status, 200, JSON.stringify(got.body));
      const want = model.recommend(user, 10);
      assert.deepEqual(got.body.items.map((it: { item: string }) => it.item), want.map((w) => w.item), `top-10 of ${user}`);
      assert.ok(maxAbsDiff(got.body.items.map((it: { score: number }) => it.score), want.map((w) => w.score)) < 1e-5);
    }
    const byTaste = await post('/recommend', { features: { taste: Array.from(taste), region: 'r1' }, k: 10 });
    assert.equal(byTaste.status, 200, JSON.stringify(byTaste.body));
    assert.equal(byTaste.body.source, 'model');
    const ex = new ExactSearcher(model.backend, b.itemEmb, allItems.length, d);
    assert.deepEqual(byTaste.body.items.map((it: { item: string }) => it.item), Array.from(ex.search(served, 10, null, []).ids, (j) => allItems[j]));
    assert.ok(byTaste.body.items.filter((it: { item: string }) => clusterOf(it.item) === 2).length >= 9, JSON.stringify(byTaste.body.items));
    const emb = await post('/embed', { features: { taste: Array.from(taste), region: 'r1' } });
    assert.ok(maxAbsDiff(emb.body.embedding, fresh.embedding.data as Float32Array) < 1e-5, '/embed vs ONNX for a new user');
    // Bad dense values: 400 with one line naming the field.
    const bad = await post('/recommend', { features: { taste: [1, 2] } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /features\.taste: a dense feature of 5 numbers, got 2 numbers/);
    const nan = await post('/recommend', { features: { taste: 'x' } });
    assert.equal(nan.status, 400);
  } finally {
    await server.close();
  }

  // A crafted bundle (checksums and id recomputed): a NaN among the stored values, or a width that disagrees
  // with the arrays, is refused in one line.
  const nanDir = join(dir, 'bundle-nan');
  cpSync(bundleDir, nanDir, { recursive: true });
  tamperFile(nanDir, 'data/user.dense0.values.bin', (buf) => void buf.writeFloatLE(Number.NaN, 4 * (5 * W_USER + 2)));
  await assert.rejects(readBundle(nanDir), /user dense feature 'taste' of row 5 holds NaN, not a finite number/);
  const wideDir = join(dir, 'bundle-wide');
  cpSync(bundleDir, wideDir, { recursive: true });
  reseal(wideDir, (m) => (m.model.user.dense[0].width = W_USER + 1));
  await assert.rejects(readBundle(wideDir), /array 'user\.dense0\.w' has \d+ values, the model implies \d+/);
});
