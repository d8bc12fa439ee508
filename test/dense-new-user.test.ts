/**
 * The library's new-user path: `encodeUsers([{ …features }])` and `recommend({ features })` embed a user who is
 * not in the training data from dense + categorical features. Checked against a float64 forward pass written
 * here from the tower's raw weights, against the exported bundle's `towerlab serve` (`/embed`, `/recommend`)
 * and ONNX query tower for the same features, on planted structure (a new user's taste vector alone decides its
 * cluster: the id row is the mean, the region is noise), and for bad input (one UserError line naming the feature,
 * the same line the server answers with a 400).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { train, load, UserError, type Model, type UserFeatures } from '../src/towerlab.ts';
import { startServer, type RunningServer } from '../src/serve/run.ts';
import { Rng } from '../src/util/rng.ts';

const C = 4; // clusters
const ITEMS = 30; // per cluster
const USERS = 240;
const W = 5; // taste width
const dir = mkdtempSync(join(tmpdir(), 'towerlab-dense-new-user-'));
const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

function plantedData() {
  const rng = new Rng(11);
  const userCentroids = Array.from({ length: C }, () => Array.from({ length: W }, () => rng.normal()));
  const itemFeatures = [];
  for (let c = 0; c < C; c++) for (let k = 0; k < ITEMS; k++) itemFeatures.push({ id: `i${c}_${k}`, genre: `g${c}` });
  const userFeatures = [];
  const rows = [];
  for (let u = 0; u < USERS; u++) {
    const c = u % C;
    // taste: near the user's cluster centroid; region and age: noise, unrelated to the cluster.
    userFeatures.push({ id: `u${u}`, taste: userCentroids[c].map((x) => x + 0.3 * rng.normal()), region: `r${rng.int(3)}`, age: rng.normal() });
    for (let j = 0; j < 12; j++) rows.push({ user: `u${u}`, item: `i${c}_${(u * 7 + j * 11) % ITEMS}` });
  }
  return { rows, itemFeatures, userFeatures, userCentroids, rng };
}

const data = plantedData();
const clusterOf = (item: string) => Number(item.slice(1, item.indexOf('_')));
let model: Model;
let modelDir: string;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The new user's embedding in float64 from the user tower's raw weights: x = [mean id row ‖ region row ‖
 * x_dense·W_k + b_k per dense feature] → MLP (ReLU between layers; W in×out row-major) → L2 normalisation.
 */
function reference(m: Model, f: { taste?: number[]; age?: number; region?: string }): Float64Array {
  const t = m.towers.user;
  const idDim = t.config.idDim;
  const users = m.userIds.length;
  const id = new Float64Array(idDim);
  for (let u = 0; u < users; u++) for (let j = 0; j < idDim; j++) id[j] += t.idTable.data[u * idDim + j] / users;
  let x: number[] = Array.from(id);
  t.config.features.forEach((spec, i) => {
    const vocab = m.artifacts.userFeatures[i].vocab;
    const given = spec.name === 'region' ? f.region : undefined;
    const v = given === undefined ? 0 : Math.max(0, vocab.indexOf(given));
    x.push(...Array.from(t.featTables[i].data.subarray(v * spec.dim, (v + 1) * spec.dim)));
  });
  t.dense.forEach((spec, k) => {
    const raw = spec.name === 'taste' ? (f.taste ?? new Array(W).fill(0)) : [f.age ?? 0];
    const { w, b } = t.projections[k];
    for (let o = 0; o < spec.dim; o++) {
      let s = b[o];
      for (let i = 0; i < spec.width; i++) s += raw[i] * w[i * spec.dim + o];
      x.push(s);
    }
  });
  t.layers.forEach((l, li) => {
    const y: number[] = [];
    for (let o = 0; o < l.outDim; o++) {
      let s = l.b[o];
      for (let i = 0; i < l.inDim; i++) s += x[i] * l.w[i * l.outDim + o];
      y.push(li < t.layers.length - 1 ? Math.max(0, s) : s);
    }
    x = y;
  });
  const n = Math.sqrt(x.reduce((s, v) => s + v * v, 0));
  return Float64Array.from(x, (v) => v / n);
}

before(async () => {
  model = await train({
    data: { rows: data.rows, itemFeatures: data.itemFeatures, userFeatures: data.userFeatures },
    train: { epochs: 5, batchSize: 256 },
    model: { dim: 16, mlp: [32, 16], featureDim: 8 },
  });
  modelDir = join(dir, 'model');
  model.save(modelDir);
});

after(() => rmSync(dir, { recursive: true, force: true }));

test('planted structure: a new user whose taste points at a cluster gets that cluster\'s items', (t) => {
  assert.deepEqual(model.towers.user.dense.map((f) => [f.name, f.width]), [['taste', W], ['age', 1]]);
  let hits = 0;
  const tops: number[][] = [];
  for (let c = 0; c < C; c++) {
    // The centroid itself, and 10 new tastes near it, each with a random region and age (noise).
    const tastes = [data.userCentroids[c], ...Array.from({ length: 10 }, () => data.userCentroids[c].map((x) => x + 0.3 * data.rng.normal()))];
    for (const taste of tastes) {
      const recs = model.recommend({ features: { taste, region: `r${data.rng.int(3)}`, age: data.rng.normal() } }, 10);
      const own = recs.filter((r) => clusterOf(r.item) === c).length;
      hits += own;
      if (taste === tastes[0]) tops.push([c, own]);
    }
  }
  const precision = hits / (C * 11 * 10);
  t.diagnostic(`new users by taste: ${(precision * 100).toFixed(1)}% of top-10 in the taste's cluster (chance 25%); centroids: ${JSON.stringify(tops)}`);
  assert.ok(precision >= 0.9, `precision ${precision}`);
  for (const [c, own] of tops) assert.ok(own >= 9, `centroid of cluster ${c}: ${own} of top 10 in it`);
  // Without the taste (zeros) every cluster's new user is the same query: the taste is what separates them.
  const none = model.encodeUsers([{ region: 'r0' }, { region: 'r0', taste: [0, 0, 0, 0, 0] }]);
  assert.equal(maxAbsDiff(none.subarray(0, model.dim), none.subarray(model.dim)), 0, 'a dense feature not given = zeros');
});

test('encodeUsers equals a float64 forward pass from the raw weights, encodeQueries({ features }) and a reloaded model', async (t) => {
  const d = model.dim;
  const cases: Array<{ taste?: number[]; age?: number; region?: string }> = [
    { taste: data.userCentroids[1], region: 'r2', age: 0.5 },
    { taste: data.userCentroids[3].map((x) => -x) },
    { region: 'r1' },
    { age: -1.25 },
  ];
  const got = model.encodeUsers(cases);
  let worst = 0;
  cases.forEach((f, r) => (worst = Math.max(worst, maxAbsDiff(got.subarray(r * d, (r + 1) * d), reference(model, f)))));
  t.diagnostic(`max abs diff vs float64 reference, ${cases.length} new users: ${worst.toExponential(1)}`);
  assert.ok(worst < 1e-5, `vs float64 reference: ${worst}`);
  assert.equal(maxAbsDiff(model.encodeQueries(cases.map((features) => ({ features }))), got), 0);
  // Float32Array values read as arrays do.
  assert.equal(maxAbsDiff(model.encodeUsers([{ ...cases[0], taste: Float32Array.from(cases[0].taste!) }]), got.subarray(0, d)), 0);
  const again = await load(modelDir);
  assert.ok(maxAbsDiff(again.encodeUsers(cases), got) < 1e-6, 'after save / load');
  assert.deepEqual(again.recommend({ features: cases[0] }, 10), model.recommend({ features: cases[0] }, 10));
});

test('the exported bundle serves the same new-user embedding and top-k (/embed, /recommend) and ONNX computes it too', async (t) => {
  const bundleDir = join(dir, 'bundle');
  const r = spawnSync(process.execPath, [BIN, 'export', '--model', modelDir, '--out', bundleDir, '--onnx', '--no-index', '--json'], { encoding: 'utf8', env: { ...process.env, TOWERLAB_DEBUG: '' } });
  assert.equal(r.status, 0, r.stderr);
  const cases: UserFeatures[] = [
    { taste: data.userCentroids[0], region: 'r1', age: 0.3 },
    { taste: data.userCentroids[2] },
    { region: 'r2', age: -0.7 },
    { taste: data.userCentroids[3].map((x) => 0.5 * x), region: 'nowhere' }, // unknown region = missing
  ];
  const lib = model.encodeUsers(cases);
  const d = model.dim;

  // ONNX: user_index −1 (a new user: the mean id row), feature_0 = region's vocab index (0 = missing), dense_k =
  // the values (all NaN = not given: 0 for a new user).
  const spec = JSON.parse(readFileSync(join(bundleDir, 'query-tower.json'), 'utf8'));
  const s = await ort.InferenceSession.create(readFileSync(join(bundleDir, 'query-tower.onnx')));
  const n = cases.length;
  const vocab: string[] = model.artifacts.userFeatures[0].vocab;
  const feeds: Record<string, ort.Tensor> = {
    user_index: new ort.Tensor('int64', BigInt64Array.from(cases, () => -1n), [n]),
    feature_0: new ort.Tensor('int64', BigInt64Array.from(cases, (f) => BigInt(Math.max(0, vocab.indexOf(String(f.region))))), [n]),
  };
  for (const { input, name, width } of spec.dense as Array<{ input: string; name: string; width: number }>) {
    const v = new Float32Array(n * width).fill(Number.NaN);
    cases.forEach((f, r) => {
      const x = f[name];
      if (x !== undefined) v.set(typeof x === 'number' ? [x] : (x as number[]), r * width);
    });
    feeds[input] = new ort.Tensor('float32', v, [n, width]);
  }
  const onnx = (await s.run(feeds)).embedding.data as Float32Array;
  const onnxDiff = maxAbsDiff(onnx, lib);
  assert.ok(onnxDiff < 1e-5, `ONNX vs encodeUsers: ${onnxDiff}`);

  const server: RunningServer = await startServer({ source: bundleDir, port: 0 });
  try {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as any };
    };
    let serveDiff = 0;
    for (const [r, features] of cases.entries()) {
      const emb = await post('/embed', { features });
      assert.equal(emb.status, 200, JSON.stringify(emb.body));
      serveDiff = Math.max(serveDiff, maxAbsDiff(emb.body.embedding, lib.subarray(r * d, (r + 1) * d)));
      const rec = await post('/recommend', { features, k: 10, search: 'exact' });
      assert.equal(rec.body.source, 'model', JSON.stringify(rec.body));
      const want = model.recommend({ features }, 10);
      assert.deepEqual(rec.body.items.map((it: { item: string }) => it.item), want.map((w) => w.item), `top-10 of case ${r}`);
      assert.ok(maxAbsDiff(rec.body.items.map((it: { score: number }) => it.score), want.map((w) => w.score)) < 1e-5);
    }
    t.diagnostic(`max abs diff vs encodeUsers, ${n} new users: served /embed ${serveDiff.toExponential(1)}, ONNX ${onnxDiff.toExponential(1)}`);
    assert.ok(serveDiff < 1e-6, `/embed vs encodeUsers: ${serveDiff}`);
    // Bad input: the server's 400 says what the library's UserError says.
    const bad: UserFeatures[] = [{ taste: [1, 2] }, { colour: 'red' }, { taste: 'x' }, { region: 3 }, { age: [1, 2] }];
    for (const features of bad) {
      const res = await post('/recommend', { features });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.throws(() => model.recommend({ features }), (e: Error) => e instanceof UserError && e.message === res.body.message, `library vs server message for ${JSON.stringify(features)}: ${res.body.message}`);
    }
  } finally {
    await server.close();
  }
});

test('bad input: one UserError line naming the feature and why', async () => {
  const bad = (features: unknown, re: RegExp) =>
    assert.throws(() => model.encodeUsers([features as UserFeatures]), (e: Error) => e instanceof UserError && re.test(e.message) && !e.message.includes('\n'), `${JSON.stringify(features)} → ${re}`);
  bad({ taste: [1, 2] }, /^features\.taste: a dense feature of 5 numbers, got 2 numbers$/);
  bad({ taste: 0.5 }, /^features\.taste: a dense feature of 5 numbers, got a number$/);
  bad({ taste: [1, 2, 3, Number.NaN, 5] }, /^features\.taste\[3\]: not a finite number \(got NaN\)$/);
  bad({ taste: [1, 2, 3, 4, Number.POSITIVE_INFINITY] }, /^features\.taste\[4\]: not a finite number \(got Infinity\)$/);
  bad({ taste: [1, 2, '3', 4, 5] }, /^features\.taste\[2\]: not a finite number \(got 3\)$/);
  bad({ age: Number.NaN }, /^features\.age: not a finite number \(got NaN\)$/);
  bad({ taste: 'high' }, /^features\.taste: a dense feature of 5 numbers, got a string$/);
  bad({ colour: 'red' }, /^features\.colour: unknown user feature \(the model has 'region', 'taste', 'age'\)$/);
  bad({ id: 'u1', region: 'r1' }, /^features\.id: unknown user feature/);
  bad({ region: 7 }, /^features\.region: a categorical feature takes a string value$/);
  bad({ region: 'nowhere' }, /^features: none of the given feature values is known to the model \(features\.region: unknown value 'nowhere', treated as missing\)$/);
  bad({}, /^features: none of the given feature values is known to the model$/);
  bad([1, 2], /^features: expected an object of feature values by name, got 2 numbers$/);
  assert.throws(() => model.recommend({ features: { taste: [1] } }, 5), /features\.taste: a dense feature of 5 numbers, got 1 number$/);
  // A model without user features says so.
  const plain = await train({ data: data.rows.slice(0, 600), train: { epochs: 1, batchSize: 256 }, model: { dim: 8, mlp: [] } });
  assert.throws(() => plain.encodeUsers([{ taste: [1, 2, 3, 4, 5] }]), /^UserError: features: this model has no user features; query by user or history instead$|features: this model has no user features/);
});
