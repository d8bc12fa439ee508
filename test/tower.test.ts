/**
 * Tower gradients (embeddings → features → MLP → L2 norm) against finite differences, and the sparse
 * optimizers' updates against hand-computed values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/compute/backend.ts';
import { EmbeddingTable } from '../src/model/embedding-table.ts';
import { Tower } from '../src/model/tower.ts';
import { Rng } from '../src/util/rng.ts';
import { testBackends } from './helpers/backends.ts';

const backends = () => testBackends();

function makeTower(mlp: number[]): Tower {
  const t = new Tower(
    'user',
    { vocabSize: 6, idDim: 4, features: [{ name: 'seg', cardinality: 3, dim: 2 }], mlp },
    { sparse: { kind: 'adagrad', lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-10 }, denseLr: 0.01 },
    [Int32Array.from([0, 1, 2, 1, 0, 2])],
  );
  t.init(new Rng(3), 0.5);
  return t;
}

/** L = Σ out ⊙ R for a fixed random R: dL/dout = R. */
function lossOf(b: Backend, t: Tower, ids: Int32Array, R: Float64Array): number {
  const out = new Float32Array(ids.length * t.outDim);
  t.embed(b, ids, out);
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i] * R[i];
  return s;
}

for (const mlp of [[8, 3], []]) {
  test(`tower gradients match finite differences (mlp [${mlp}])`, async () => {
    for (const b of await backends()) {
      const t = makeTower(mlp);
      const ids = Int32Array.from([1, 3, 1, 5]); // id 1 twice: its gradient must be the sum
      const rng = new Rng(7);
      const R = Float64Array.from({ length: ids.length * t.outDim }, () => rng.normal());
      const captured = new Map<string, Map<number, Float64Array>>();
      for (const tab of [t.idTable, ...t.featTables]) {
        const m = new Map<number, Float64Array>();
        captured.set(tab.name, m);
        tab.applyGradients = (_b, gids, g) => {
          for (let r = 0; r < gids.length; r++) {
            const acc = m.get(gids[r]) ?? new Float64Array(tab.dim);
            for (let k = 0; k < tab.dim; k++) acc[k] += g[r * tab.dim + k];
            m.set(gids[r], acc);
          }
        };
      }
      t.forward(b, ids);
      t.backward(b, Float32Array.from(R));
      const h = 1e-3;
      const check = (arr: Float32Array, idx: number, analytic: number, what: string) => {
        const keep = arr[idx];
        arr[idx] = keep + h;
        const lp = lossOf(b, t, ids, R);
        arr[idx] = keep - h;
        const lm = lossOf(b, t, ids, R);
        arr[idx] = keep;
        const fd = (lp - lm) / (2 * h);
        assert.ok(Math.abs(fd - analytic) < 3e-3 * (1 + Math.abs(fd)), `${b.name} ${what}: analytic ${analytic} vs fd ${fd}`);
      };
      // Id table rows 1 (used twice) and 3; feature table row 1 (shared by ids 1 and 3).
      for (const [row, k] of [[1, 0], [1, 3], [3, 2]]) check(t.idTable.data, row * 4 + k, captured.get('user.id')!.get(row)![k], `id[${row}][${k}]`);
      check(t.featTables[0].data, 1 * 2 + 1, captured.get('user.seg')!.get(1)![1], 'feature[1][1]');
      t.layers.forEach((l, li) => {
        for (const idx of [0, 5, l.w.length - 1]) check(l.w, idx, l.dw[idx], `layer${li}.w[${idx}]`);
        check(l.b, 0, l.db[0], `layer${li}.b[0]`);
      });
    }
  });
}

test('row-wise Adagrad and lazy Adam touch only the given rows, summing duplicates', async () => {
  for (const b of await backends()) {
    const ada = new EmbeddingTable('t', 4, 2, { kind: 'adagrad', lr: 0.5, beta1: 0.9, beta2: 0.999, eps: 0 });
    ada.data.fill(1);
    ada.applyGradients(b, Int32Array.from([2, 2]), Float32Array.from([1, 2, 1, 2]));
    // summed g = (2, 4); acc = 0.1 + mean(g²) = 0.1 + 10; row −= 0.5·g/√acc.
    const f = 0.5 / Math.sqrt(10.1);
    assert.deepEqual(Array.from(ada.data.slice(0, 4)), [1, 1, 1, 1], `${b.name}: untouched rows`);
    assert.ok(Math.abs(ada.data[4] - (1 - 2 * f)) < 1e-6 && Math.abs(ada.data[5] - (1 - 4 * f)) < 1e-6, `${b.name}: adagrad row`);
    const lazy = new EmbeddingTable('t', 4, 2, { kind: 'lazyadam', lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    lazy.applyGradients(b, Int32Array.from([1]), Float32Array.from([3, -0.5]));
    // First Adam step moves each coordinate by ≈ lr·sign(g).
    assert.ok(Math.abs(lazy.data[2] + 0.1) < 1e-5 && Math.abs(lazy.data[3] - 0.1) < 1e-5, `${b.name}: lazy adam first step`);
    assert.equal(lazy.state1[0], 0, 'untouched moment stays 0');
  }
});

test('duplicate summing: runs of first occurrences and repeats in any order give each row the sum of its gradients', async () => {
  const b = (await backends())[0];
  // Adagrad with eps 0 and a huge accumulator start is linear enough to read the summed gradient back exactly:
  // use a recording backend instead, comparing the (ids, summed) it receives with a reference sum.
  const ids = Int32Array.from([3, 1, 3, 0, 2, 1, 4, 5, 3]);
  const dim = 3;
  const grads = Float32Array.from({ length: ids.length * dim }, (_, i) => (i % 7) - 2.5);
  const want = new Map<number, number[]>();
  ids.forEach((id, r) => {
    const row = want.get(id) ?? [0, 0, 0];
    for (let j = 0; j < dim; j++) row[j] += grads[r * dim + j];
    want.set(id, row);
  });
  const tab = new EmbeddingTable('t', 6, dim, { kind: 'adagrad', lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0 });
  let got: Map<number, number[]> | null = null;
  const rec = { ...b, sparseUpdate: (_k: string, _t: Float32Array, _s1: Float32Array, _s2: Float32Array | null, u: Int32Array, g: Float32Array, n: number) => {
    got = new Map();
    for (let s = 0; s < n; s++) got.set(u[s], Array.from(g.subarray(s * dim, (s + 1) * dim)));
  } } as typeof b;
  tab.applyGradients(rec, ids, grads);
  assert.deepEqual(got, want);
});
