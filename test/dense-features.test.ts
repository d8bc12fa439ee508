/**
 * Dense (numeric / vector) tower features: the projection's gradients against finite differences, rows given by
 * their features (cold-start) against the same rows looked up by id, and — on generated data with planted
 * structure — a cold-start item (never in training) placed by its content vector next to the items it resembles.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/compute/backend.ts';
import { Tower } from '../src/model/tower.ts';
import { Rng } from '../src/util/rng.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBackends } from './helpers/backends.ts';

const backends = () => testBackends();

const V = 5;
const W = 3;

function makeTower(mlp: number[]): Tower {
  const rng = new Rng(11);
  const t = new Tower(
    'item',
    { vocabSize: V, idDim: 4, features: [{ name: 'seg', cardinality: 3, dim: 2 }], dense: [{ name: 'vec', width: W, dim: 3 }, { name: 'price', width: 1, dim: 2 }], mlp },
    { sparse: { kind: 'adagrad', lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-10 }, denseLr: 0.01 },
    [Int32Array.from([0, 1, 2, 1, 0])],
    [Float32Array.from({ length: V * W }, () => rng.normal()), Float32Array.from({ length: V }, () => rng.normal())],
  );
  t.init(new Rng(3), 0.5);
  return t;
}

/** L = Σ out ⊙ R, computed in float64 from the tower's inference output: dL/dout = R. */
function lossOf(b: Backend, t: Tower, ids: Int32Array, R: Float64Array): number {
  const out = new Float32Array(ids.length * t.outDim);
  t.embed(b, ids, out);
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i] * R[i];
  return s;
}

for (const mlp of [[8, 3], []]) {
  test(`dense-feature projections: gradients match finite differences (mlp [${mlp}])`, async () => {
    for (const b of await backends()) {
      const t = makeTower(mlp);
      const ids = Int32Array.from([1, 3, 1, 4]);
      const rng = new Rng(7);
      const R = Float64Array.from({ length: ids.length * t.outDim }, () => rng.normal());
      for (const tab of [t.idTable, ...t.featTables]) tab.applyGradients = () => {}; // keep tables fixed
      t.forward(b, ids);
      t.backward(b, Float32Array.from(R));
      const h = 1e-3;
      let nonZero = 0;
      const check = (arr: Float32Array, idx: number, analytic: number, what: string) => {
        const keep = arr[idx];
        arr[idx] = keep + h;
        const lp = lossOf(b, t, ids, R);
        arr[idx] = keep - h;
        const lm = lossOf(b, t, ids, R);
        arr[idx] = keep;
        const fd = (lp - lm) / (2 * h);
        if (Math.abs(fd) > 1e-3) nonZero++;
        assert.ok(Math.abs(fd - analytic) < 3e-3 * (1 + Math.abs(fd)), `${b.name} ${what}: analytic ${analytic} vs fd ${fd}`);
      };
      t.projections.forEach((p, k) => {
        for (let idx = 0; idx < p.w.length; idx++) check(p.w, idx, p.dw[idx], `projection ${k} w[${idx}]`);
        for (let idx = 0; idx < p.b.length; idx++) check(p.b, idx, p.db[idx], `projection ${k} b[${idx}]`);
      });
      t.layers.forEach((l, li) => {
        for (const idx of [0, 5, l.w.length - 1]) check(l.w, idx, l.dw[idx], `layer${li}.w[${idx}]`);
      });
      // The dense values themselves move the output (the feature is not ignored).
      const before = lossOf(b, t, ids, R);
      t.denseValues[0][3 * W + 1] += 0.5;
      assert.notEqual(lossOf(b, t, ids, R), before, `${b.name}: changing item 3's vector did not change its embedding`);
      assert.ok(nonZero > 10, `${b.name}: only ${nonZero} non-zero gradients — the projections look disconnected`);
    }
  });
}

test('rows given by their features embed exactly as the same rows looked up by id; an unknown id has a zero id row', async () => {
  for (const b of await backends()) {
    const t = makeTower([8, 3]);
    const ids = Int32Array.from([2, 0, 4]);
    const byId = new Float32Array(ids.length * t.outDim);
    t.embed(b, ids, byId);
    const cat = [Int32Array.from(ids, (i) => t.featureValues[0][i])];
    const dense = t.dense.map((f, k) => {
      const out = new Float32Array(ids.length * f.width);
      ids.forEach((i, r) => out.set(t.denseValues[k].subarray(i * f.width, (i + 1) * f.width), r * f.width));
      return out;
    });
    const given = new Float32Array(ids.length * t.outDim);
    t.embedRows(b, ids, { categorical: cat, dense }, given);
    for (let i = 0; i < given.length; i++) assert.ok(Math.abs(given[i] - byId[i]) < 1e-6, `${b.name}: row value ${i}: ${given[i]} vs ${byId[i]}`);
    // Unknown id (−1) equals a known id whose id row is zeroed.
    const cold = new Float32Array(t.outDim);
    t.embedRows(b, Int32Array.of(-1), { categorical: [cat[0].subarray(0, 1)], dense: dense.map((d, k) => d.subarray(0, t.dense[k].width)) }, cold);
    t.idTable.data.fill(0, 2 * 4, 3 * 4);
    const zeroed = new Float32Array(t.outDim);
    t.embed(b, Int32Array.of(2), zeroed);
    for (let j = 0; j < t.outDim; j++) assert.ok(Math.abs(cold[j] - zeroed[j]) < 1e-6, `${b.name}: cold row ${j}`);
  }
});

test('a cold-start item (never in training) is placed by its content vector next to the items it resembles', async () => {
  const { train } = await import('../src/api/train.ts');
  const { load } = await import('../src/api/model.ts');
  const C = 5;
  const perCluster = 40;
  const W8 = 8;
  const rng = new Rng(5);
  const centroids = Array.from({ length: C }, () => Array.from({ length: W8 }, () => rng.normal()));
  const vectorOf = (c: number) => centroids[c].map((x) => x + 0.3 * rng.normal());
  // Items 0..29 of each cluster are warm (interactions + vectors); 30..39 are cold: no interaction, no row at all.
  const warm = (k: number) => k < 30;
  const itemFeatures = [];
  for (let c = 0; c < C; c++) for (let k = 0; k < perCluster; k++) if (warm(k)) itemFeatures.push({ id: `i${c}_${k}`, embedding: vectorOf(c) });
  const rows = [];
  for (let u = 0; u < 400; u++) {
    const c = u % C;
    for (let j = 0; j < 15; j++) rows.push({ user: `u${u}`, item: `i${c}_${(u * 7 + j * 11) % 30}` });
  }
  const model = await train({ data: { rows, itemFeatures }, train: { epochs: 6, batchSize: 256 }, model: { dim: 16, mlp: [32, 16], featureDim: 8 } });
  assert.ok(model.towers.item.dense.length === 1, 'the embedding field should be a dense item feature');
  const d = model.dim;
  // Mean embedding of each cluster's warm items.
  const warmIds = (c: number) => Array.from({ length: 30 }, (_, k) => `i${c}_${k}`);
  const means = Array.from({ length: C }, (_, c) => {
    const e = model.encodeItems(warmIds(c));
    const m = new Float64Array(d);
    for (let r = 0; r < 30; r++) for (let j = 0; j < d; j++) m[j] += e[r * d + j] / 30;
    return m;
  });
  let right = 0;
  let total = 0;
  for (let c = 0; c < C; c++) {
    for (let k = 30; k < perCluster; k++) {
      const e = model.encodeItems([{ id: `i${c}_${k}`, embedding: vectorOf(c) }]);
      const sims = means.map((m) => m.reduce((s, x, j) => s + x * e[j], 0));
      if (sims.indexOf(Math.max(...sims)) === c) right++;
      total++;
    }
  }
  assert.ok(right / total >= 0.9, `cold items nearest their own cluster: ${right}/${total}`);
  // And a cluster's users score its cold items above other clusters' cold items.
  const q = model.encodeQueries(['u0', 'u1']); // clusters 0 and 1
  const cold0 = model.encodeItems([{ embedding: vectorOf(0) }]);
  const cold1 = model.encodeItems([{ embedding: vectorOf(1) }]);
  const dot = (a: Float32Array, off: number, b: Float32Array) => b.reduce((s, x, j) => s + x * a[off + j], 0);
  assert.ok(dot(q, 0, cold0) > dot(q, 0, cold1), 'user of cluster 0 prefers the cluster-0 cold item');
  assert.ok(dot(q, d, cold1) > dot(q, d, cold0), 'user of cluster 1 prefers the cluster-1 cold item');
  // Saved and loaded, the dense feature's values and projection come back: same embeddings.
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-dense-'));
  try {
    model.save(dir);
    const again = await load(dir);
    assert.deepEqual(Array.from(again.encodeItems(['i0_3'])), Array.from(model.encodeItems(['i0_3'])));
    const c = again.encodeItems([{ embedding: centroids[2] }]);
    const c0 = model.encodeItems([{ embedding: centroids[2] }]);
    assert.deepEqual(Array.from(c), Array.from(c0));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
