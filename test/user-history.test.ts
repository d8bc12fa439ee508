/**
 * User-history aggregation in the user tower (src/model/user-history.ts):
 *   x_u = g·e_u + (1 − g)·mean_{i ∈ H(u)} E[i],  q_u = [x_u ; features] / ‖·‖,
 * H(u) capped at maxLen items picked at positions ⌊k·len/maxLen⌋. Forward checked against a float64 reference
 * written here from that definition; the gradients the tower hands to its tables (captured where they are
 * applied) checked by central finite differences of the float64 reference loss Σ W·q — for the shared item table
 * and the tower's own table, with and without a categorical feature. Then end to end: the history is training
 * rows only, it is saved with the model, and a serving bundle computes the same user embeddings.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { createBundle } from '../src/bundle/write.ts';
import { QueryTower } from '../src/bundle/query-tower.ts';
import { createJsBackend } from '../src/compute/js.ts';
import { csrFromPairs, type Csr } from '../src/data/csr.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import { loadModel } from '../src/model/saved-model.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import type { UserHistoryConfig } from '../src/model/user-history.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { modelOptionsFrom } from '../src/cli/options.ts';
import { asRunOptions, trainOptionDefaults } from '../src/cli/run-options.ts';

const backend = await createJsBackend();
const U = 5;
const I = 9;
const D = 4;
const FD = 3; // feature dim
// user 0: 2 items, user 1: 1 item, user 2: 5 items (capped to 3 → positions 0, 1, 3), user 3: none, user 4: 4 items
const HIST: number[][] = [[1, 4], [7], [0, 2, 3, 5, 8], [], [4, 6, 7, 8]];
const history: Csr = csrFromPairs(U, Int32Array.from(HIST.flatMap((h, u) => h.map(() => u))), Int32Array.from(HIST.flat()));

function picked(u: number, maxLen: number): number[] {
  const h = HIST[u];
  if (maxLen <= 0 || h.length <= maxLen) return h;
  return Array.from({ length: maxLen }, (_, k) => h[Math.floor((k * h.length) / maxLen)]);
}

interface Params {
  userId: Float64Array;
  hist: Float64Array;
  feat: Float64Array | null;
}

/** float64 reference of the user tower (no MLP): rows of q for `ids`. */
function reference(p: Params, h: UserHistoryConfig, ids: number[], featVals: Int32Array | null): number[][] {
  return ids.map((u) => {
    const x: number[] = [];
    for (let j = 0; j < D; j++) x.push(h.gate * p.userId[u * D + j]);
    const items = picked(u, h.maxLen);
    for (const i of items) for (let j = 0; j < D; j++) x[j] += ((1 - h.gate) / items.length) * p.hist[i * D + j];
    if (p.feat && featVals) for (let j = 0; j < FD; j++) x.push(p.feat[featVals[u] * FD + j]);
    const n = Math.sqrt(x.reduce((a, v) => a + v * v, 0));
    return x.map((v) => v / n);
  });
}

function makeModel(h: UserHistoryConfig, withFeature: boolean): { model: TwoTowerModel; featVals: Int32Array | null } {
  const featVals = withFeature ? Int32Array.from([1, 2, 1, 0, 2]) : null;
  const features = withFeature ? [{ name: 'f', cardinality: 3, dim: FD }] : [];
  const model = new TwoTowerModel(
    {
      user: { vocabSize: U, idDim: D, features, mlp: [], history: h },
      item: { vocabSize: I, idDim: withFeature ? D + FD : D, features: [], mlp: [] },
      sparseOptimizer: 'lazyadam',
      sparseLr: 0.01,
      denseLr: 0.01,
      seed: 3,
    },
    featVals ? [featVals] : [],
  );
  model.init();
  model.setUserHistory(history);
  return { model, featVals };
}

const CASES: Array<[string, UserHistoryConfig, boolean]> = [
  ['shared item table, cap 3', { pooling: 'mean', gate: 0.3, maxLen: 3, table: 'item' }, false],
  ['own table, no cap, with a categorical feature', { pooling: 'mean', gate: 0.6, maxLen: 0, table: 'own' }, true],
];

for (const [what, h, withFeature] of CASES) {
  test(`user history (${what}): forward and table gradients match a float64 reference and finite differences`, () => {
    if (withFeature && h.table === 'item') throw new Error('fixture: the shared table needs equal id sizes');
    const { model, featVals } = makeModel(h, withFeature);
    const ids = [0, 2, 0, 1, 3, 4];
    const histTable = model.userHistory!.table;
    assert.equal(histTable === model.item.idTable, h.table === 'item');
    const p: Params = {
      userId: Float64Array.from(model.user.idTable.data),
      hist: Float64Array.from(histTable.data),
      feat: withFeature ? Float64Array.from(model.user.featTables[0].data) : null,
    };
    const outDim = D + (withFeature ? FD : 0);
    const q = model.user.forward(backend, Int32Array.from(ids));
    const ref = reference(p, h, ids, featVals);
    ids.forEach((_, r) => ref[r].forEach((v, j) => assert.ok(Math.abs(q[r * outDim + j] - v) < 1e-6, `q[${r}][${j}] ${q[r * outDim + j]} vs ${v}`)));
    // The history is used: without it (gate 1) user 2's output differs.
    const noHist = reference(p, { ...h, gate: 1 }, [2], featVals)[0];
    assert.ok(noHist.some((v, j) => Math.abs(v - ref[1][j]) > 1e-3), 'history changes the output');

    // Loss Σ W·q; capture the gradients where the tables apply them.
    const W = Float32Array.from({ length: ids.length * outDim }, (_, k) => Math.sin(k * 1.7 + 0.3));
    const got = { user: new Float64Array(U * D), hist: new Float64Array(I * D) };
    const capture = (into: Float64Array) => (_b: unknown, rows: Int32Array, grads: Float32Array) => {
      for (let r = 0; r < rows.length; r++) for (let j = 0; j < D; j++) into[rows[r] * D + j] += grads[r * D + j];
    };
    model.user.idTable.applyGradients = capture(got.user);
    if (h.table === 'own') histTable.applyGradients = capture(got.hist);
    model.user.featTables.forEach((t) => (t.applyGradients = () => {}));
    model.user.backward(backend, W.slice());
    if (h.table === 'item') {
      assert.equal(histTable.pending.length, 1, 'history gradients queued on the shared item table');
      for (const part of histTable.pending) capture(got.hist)(null, part.ids, part.grads);
    }
    const loss = (pp: Params) => reference(pp, h, ids, featVals).reduce((a, row, r) => a + row.reduce((s, v, j) => s + v * W[r * outDim + j], 0), 0);
    const eps = 1e-6;
    for (const [name, arr, g] of [['user id', p.userId, got.user], ['history', p.hist, got.hist]] as const) {
      let nonzero = 0;
      for (let k = 0; k < arr.length; k++) {
        const keep = arr[k];
        arr[k] = keep + eps;
        const lp = loss(p);
        arr[k] = keep - eps;
        const lm = loss(p);
        arr[k] = keep;
        const fd = (lp - lm) / (2 * eps);
        if (Math.abs(fd) > 1e-4) nonzero++;
        assert.ok(Math.abs(g[k] - fd) < 1e-4 + 1e-3 * Math.abs(fd), `${name} grad [${Math.floor(k / D)}][${k % D}]: ${g[k]} vs finite difference ${fd}`);
      }
      assert.ok(nonzero > 0, `${name}: some gradient is non-zero`);
    }
    // Items 3 and 8 lie beyond the cap (user 2: positions 0, 1, 3 → items 0, 2, 5; user 4: items 4, 6, 7): no gradient.
    if (h.maxLen === 3) for (const i of [3, 8]) for (let j = 0; j < D; j++) assert.equal(got.hist[i * D + j], 0);
  });
}

test('the shared item table takes one update per step with the history gradients merged in', () => {
  const { model } = makeModel({ pooling: 'mean', gate: 0.5, maxLen: 0, table: 'item' }, false);
  const before = model.item.idTable.data.slice();
  model.user.forward(backend, Int32Array.of(0));
  model.user.backward(backend, Float32Array.from({ length: D }, (_, j) => j + 1));
  model.item.idTable.applyGradients(backend, new Int32Array(0), new Float32Array(0));
  assert.equal(model.item.idTable.step, 1);
  assert.equal(model.item.idTable.pending.length, 0);
  const moved = (i: number) => before.subarray(i * D, (i + 1) * D).some((v, j) => v !== model.item.idTable.data[i * D + j]);
  assert.ok(moved(1) && moved(4), "user 0's history items moved");
  assert.ok(!moved(0) && !moved(7), 'other items did not');
});

test('--user-history options: parsed, defaults, one-line errors', () => {
  const o = (extra: Record<string, unknown>) => modelOptionsFrom(asRunOptions({ ...trainOptionDefaults(), ...extra }));
  assert.equal(o({}).userHistory, null);
  assert.deepEqual(o({ userHistory: 'mean' }).userHistory, { pooling: 'mean', gate: 0.5, maxLen: 100, table: 'item' });
  assert.deepEqual(o({ userHistory: 'mean', historyGate: 0.2, historyMax: 0, historyTable: 'own' }).userHistory, { pooling: 'mean', gate: 0.2, maxLen: 0, table: 'own' });
  assert.throws(() => o({ userHistory: 'mean', historyGate: 1.5 }), /--history-gate: must be in \[0, 1\]/);
  assert.throws(() => o({ userHistory: 'mean', historyMax: 2.5 }), /--history-max/);
  assert.throws(() => o({ userHistory: 'sum' }), /--user-history/);
});

test('end to end: history = training rows only, saved with the model, served identically by a bundle', async () => {
  const data = generateSynthetic({ users: 200, items: 150, clusters: 5, zipf: 1, seed: 6 });
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-history-'));
  try {
    const r = await runExperiment({
      data: { path: 'synthetic' },
      loaded: data,
      split: { kind: 'random', val: 0.2, test: 0.1, seed: 1 },
      recipe: parseRecipe({ sources: [{ type: 'in-batch' }], corrections: { logQ: {} } }),
      model: { ...defaultModelOptions, dim: 16, mlp: [], seed: 1, userHistory: { pooling: 'mean', gate: 0.5, maxLen: 20, table: 'item' } },
      train: { epochs: 2, batchSize: 128, seed: 2, evalEvery: 1, patience: 0, valMetric: 'recall@20', valMaxUsers: 100, resume: false, progress: 'none', logEvery: 0 },
      ks: [20],
      out: dir,
    });
    assert.ok(r.metrics['recall@20'] > r.baselines.popularity['recall@20'], `trains: ${r.metrics['recall@20']} vs popularity ${r.baselines.popularity['recall@20']}`);
    const a = loadModel(join(dir, 'model'));
    const h = a.model.userHistory!.history;
    // Training rows only: the saved exclusion list holds train + validation items, the history fewer.
    assert.ok(h.cols.length < a.seen.cols.length, `history ${h.cols.length} entries, train+val ${a.seen.cols.length}`);
    const trainPairs = new Set<string>();
    const seenPairs = new Set<string>();
    for (let u = 0; u < h.rows; u++) {
      for (let k = h.offsets[u]; k < h.offsets[u + 1]; k++) trainPairs.add(`${u}:${h.cols[k]}`);
      for (let k = a.seen.offsets[u]; k < a.seen.offsets[u + 1]; k++) seenPairs.add(`${u}:${a.seen.cols[k]}`);
    }
    for (const p of trainPairs) assert.ok(seenPairs.has(p));
    assert.deepEqual(a.model.userHistory!.history.cols, r.model.userHistory!.history.cols);
    const draft = createBundle(backend, a, { index: null, recallQueries: 10, source: 'test' });
    const tower = new QueryTower(draft.query);
    const dim = a.model.dim;
    const got = new Float32Array(dim);
    const want = new Float32Array(dim);
    const orig = new Float32Array(dim);
    for (const u of [0, 7, 150]) {
      a.model.user.embed(backend, Int32Array.of(u), want);
      r.model.user.embed(backend, Int32Array.of(u), orig);
      tower.embedUser(backend, u, got);
      for (let j = 0; j < dim; j++) {
        assert.ok(Math.abs(want[j] - orig[j]) < 1e-6, 'loaded model embeds as the trained one');
        assert.ok(Math.abs(got[j] - want[j]) < 1e-5, `bundle user ${u} dim ${j}: ${got[j]} vs ${want[j]}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
