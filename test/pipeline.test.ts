/**
 * The experiment pipeline end to end (src/data/prepare.ts → src/train/experiment.ts → src/eval) on planted data:
 *  - leakage: items a user has in train and in validation are never recommended in that user's test ranking,
 *    although the trained model scores them at the top (checked here first, so the test cannot pass vacuously);
 *  - early stopping: with patience > 0 on data where validation peaks early, training stops `patience`
 *    validations after the best epoch, which is the argmax of a validation recall computed here in float64 from
 *    each epoch's weights, and the saved and returned weights equal that epoch's bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vocab, type Interactions } from '../src/data/types.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import { loadModel } from '../src/model/saved-model.ts';
import type { TwoTowerModel } from '../src/model/two-tower.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { runExperiment, type ExperimentOptions } from '../src/train/experiment.ts';
import { Rng } from '../src/util/rng.ts';

/** Interactions from per-user time-ordered item lists (time = position), for a leave-last-one-out split. */
function interactions(lists: number[][], numItems: number): Interactions {
  const users: number[] = [];
  const items: number[] = [];
  const times: number[] = [];
  lists.forEach((l, u) => l.forEach((j, t) => (users.push(u), items.push(j), times.push(t))));
  return {
    source: 'planted',
    users: Int32Array.from(users),
    items: Int32Array.from(items),
    times: Float64Array.from(times),
    ratings: null,
    userVocab: Vocab.from(lists.map((_, u) => `u${u}`)),
    itemVocab: Vocab.from(Array.from({ length: numItems }, (_, j) => `i${j}`)),
    userFeatures: [],
    itemFeatures: [],
  };
}

function options(data: Interactions, recipe: object, train: Partial<ExperimentOptions['train']>, out: string | null, countAt?: number): ExperimentOptions {
  return {
    data: { path: 'planted' },
    loaded: data,
    split: { kind: 'loo' },
    recipe: parseRecipe(recipe),
    model: { ...defaultModelOptions, dim: 16, mlp: [], useFeatures: false, sparseOptimizer: 'adagrad', sparseLr: 0.2, seed: 1 },
    train: { epochs: 4, batchSize: 32, seed: 3, evalEvery: 0, patience: 0, valMetric: 'recall@10', valMaxUsers: 1000, resume: false, progress: 'none', logEvery: 0, diagnosticBatches: 0, ...train },
    ks: [10],
    out,
    countRecommendationsAt: countAt,
  };
}

/** Float64 rank (0 = best) of item j for user u among all items, by cosine of the model's embeddings. */
function ranks(model: TwoTowerModel, u: number, numItems: number): Float64Array {
  const d = model.dim;
  const emb = (t: Float32Array, r: number) => {
    const v = Float64Array.from(t.subarray(r * d, r * d + d));
    const n = Math.hypot(...v);
    return v.map((x) => x / n);
  };
  const q = emb(model.user.idTable.data, u);
  const s = Array.from({ length: numItems }, (_, j) => {
    const c = emb(model.item.idTable.data, j);
    return q.reduce((a, x, k) => a + x * c[k], 0);
  });
  const order = s.map((_, j) => j).sort((a, b) => s[b] - s[a] || a - b);
  const rank = new Float64Array(numItems);
  order.forEach((j, p) => (rank[j] = p));
  return rank;
}

test('leakage: a user’s train and validation items are never recommended in their test ranking, however high they score', async () => {
  // Items 0 (A) and 1 (V) are the most popular by far. A is in every user's train; V is the validation item
  // (second to last) of every fourth user and a train item of the others. Other items: 2..39, each user's
  // random picks, and the test item last.
  const I = 40;
  const rng = new Rng(5);
  const lists: number[][] = [];
  for (let u = 0; u < 80; u++) {
    const own = Array.from({ length: 3 }, () => 2 + rng.int(I - 2));
    const test = 2 + rng.int(I - 2);
    lists.push(u % 4 === 0 ? [0, ...own, 1, test] : [0, 1, ...own, test]);
  }
  const data = interactions(lists, I);
  const res = await runExperiment(options(data, { sources: [{ type: 'uniform', n: 20 }] }, { epochs: 4 }, null, 10));
  // The model learned to put A and V on top: without the exclusion they would be recommended.
  let aTop = 0;
  let vTop = 0;
  for (let u = 0; u < lists.length; u += 4) {
    const r = ranks(res.model, u, I);
    if (r[0] < 10) aTop++;
    if (r[1] < 10) vTop++;
  }
  assert.ok(aTop >= 15 && vTop >= 15, `planted items are not scored high enough to test anything (A in top-10 of ${aTop}/20 users, V of ${vTop}/20)`);
  assert.equal(res.data.testUsers, 80);
  assert.equal(res.recommendedCounts![0], 0, 'A (a train item of every user) was recommended to a test user');
  assert.equal(res.recommendedCounts![1], 0, 'V (a validation item of a quarter of the users, a train item of the others) was recommended to a test user');
});

test('early stopping: stops patience validations after the best epoch and keeps that epoch’s weights bit for bit', async () => {
  // Two clusters of users and items. Train and test items come from the user's own cluster, the validation item
  // of every third user from the other one: validation recall first rises (own-cluster validation items) and then
  // falls as training separates the clusters (the other users'), peaking at epoch 3 here.
  const I = 60;
  const rng = new Rng(11);
  const lists: number[][] = [];
  for (let u = 0; u < 240; u++) {
    const c = u % 2;
    const pick = (cl: number) => cl * 30 + rng.int(30);
    const valCluster = u % 3 === 0 ? 1 - c : c;
    lists.push([...Array.from({ length: 6 }, () => pick(c)), pick(valCluster), pick(c)]);
  }
  const data = interactions(lists, I);
  const recipe = { sources: [{ type: 'in-batch' }], temperature: 0.2 };
  const patience = 2;
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-early-'));
  try {
    const run = await runExperiment(options(data, recipe, { epochs: 12, evalEvery: 1, patience }, join(dir, 'run')));
    // Each epoch's weights, from runs without validation (training draws do not depend on validation).
    const weights: Array<Array<[string, Float32Array]>> = [];
    const recall: number[] = [];
    for (let k = 1; k <= run.train.epochs; k++) {
      const m = (await runExperiment(options(data, recipe, { epochs: k }, null))).model;
      weights[k] = m.tensors(false);
      // Validation recall@10 computed here: rank of the validation item (list index 6) among unseen items.
      let hits = 0;
      lists.forEach((l, u) => {
        const r = ranks(m, u, I);
        const seen = new Set(l.slice(0, 6));
        let better = 0;
        for (let j = 0; j < I; j++) if (!seen.has(j) && r[j] < r[l[6]]) better++;
        if (better < 10) hits++;
      });
      recall[k] = hits / lists.length;
    }
    let best = 1;
    for (let k = 2; k <= run.train.epochs; k++) if (recall[k] > recall[best]) best = k;
    assert.equal(run.train.bestEpoch, best, `best epoch ${run.train.bestEpoch}, float64 recall says ${best} (${recall.slice(1).map((x) => x.toFixed(3))})`);
    assert.ok(best > 1, `the planted peak moved to epoch ${best}: first-epoch bests cannot tell a restore from "keep the first"`);
    assert.ok(run.train.stoppedEarly, 'training did not stop early');
    assert.equal(run.train.epochs, best + patience, 'stopped at the wrong epoch');
    const saved = loadModel(join(dir, 'run', 'model')).model.tensors(false);
    const returned = run.model.tensors(false);
    const last = weights[run.train.epochs];
    let differsFromLast = false;
    weights[best].forEach(([name, w], i) => {
      assert.deepEqual(returned[i][1], w, `returned ${name} is not epoch ${best}'s`);
      assert.deepEqual(saved[i][1], w, `saved ${name} is not epoch ${best}'s`);
      if (!last[i][1].every((x, k) => x === w[k])) differsFromLast = true;
    });
    assert.ok(differsFromLast, 'the last epoch has the best epoch’s weights: the test cannot tell a restore from none');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
