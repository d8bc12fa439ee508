import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { evaluateRanking, DEFAULT_MEMORY_BUDGET_BYTES } from '../src/eval/ranking.ts';
import { embeddingScorer } from '../src/eval/scorer.ts';
import { Rng } from '../src/util/rng.ts';

const backend = await createJsBackend();

/**
 * Planted clusters: item j belongs to cluster j % C, user u to cluster u % C; embeddings are the cluster's
 * basis vector plus small noise. Each user has `nTrain` train and `nTest` test items in its own cluster.
 */
function planted(seed: number, nu: number, ni: number, C: number, dim: number, nTrain: number, nTest: number) {
  const rng = new Rng(seed);
  const emb = (n: number) => {
    const e = new Float32Array(n * dim);
    for (let r = 0; r < n; r++) {
      for (let d = 0; d < dim; d++) e[r * dim + d] = 0.05 * rng.normal();
      e[r * dim + (r % C)] += 1;
    }
    return e;
  };
  const userEmb = emb(nu);
  const itemEmb = emb(ni);
  const perCluster = Math.floor(ni / C);
  const tr: number[][] = [[], []];
  const te: number[][] = [[], []];
  for (let u = 0; u < nu; u++) {
    const picks = new Set<number>();
    while (picks.size < nTrain + nTest) picks.add((u % C) + C * rng.int(perCluster));
    [...picks].forEach((j, i) => {
      const [r, c] = i < nTrain ? tr : te;
      r.push(u);
      c.push(j);
    });
  }
  const train = csrFromPairs(nu, Int32Array.from(tr[0]), Int32Array.from(tr[1]), true);
  const testCsr = csrFromPairs(nu, Int32Array.from(te[0]), Int32Array.from(te[1]), true);
  const pop = new Float64Array(ni);
  for (const j of train.cols) pop[j]++;
  return { userEmb, itemEmb, train, test: testCsr, pop };
}

test('planted clusters: true embeddings retrieve nearly everything, random ones do not', () => {
  const [nu, ni, C, dim] = [120, 400, 8, 16];
  const d = planted(5, nu, ni, C, dim, 5, 5);
  // Own cluster has 50 items, 5 excluded: all 45 candidates fit in the top 50.
  const run = (userEmb: Float32Array | ((u: Int32Array, out: Float32Array) => void), itemEmb: Float32Array) =>
    evaluateRanking({
      backend,
      scorer: embeddingScorer(backend, userEmb, itemEmb, dim, ni),
      test: d.test,
      exclude: d.train,
      ks: [10, 50],
      itemPopularity: d.pop,
      blockSize: 32,
    });
  const good = run(d.userEmb, d.itemEmb);
  assert.equal(good.users, nu);
  assert.ok(good.metrics['recall@50'] > 0.99, `true embeddings: recall@50 ${good.metrics['recall@50']}`);

  // The callback path gives the same result as the table.
  const viaCallback = run((users, out) => users.forEach((u, r) => out.set(d.userEmb.subarray(u * dim, (u + 1) * dim), r * dim)), d.itemEmb);
  assert.deepEqual(viaCallback.metrics, good.metrics);

  const rng = new Rng(99);
  const rand = (n: number) => Float32Array.from({ length: n * dim }, () => rng.normal());
  const bad = run(rand(nu), rand(ni));
  assert.ok(bad.metrics['recall@50'] < 0.3, `random embeddings: recall@50 ${bad.metrics['recall@50']}`);
});

test('scale smoke: 200 users × 200,000 items × dim 32 in bounded blocks', () => {
  const [nu, ni, dim] = [200, 200_000, 32];
  const d = planted(8, nu, ni, 16, dim, 20, 5);
  const rssBefore = process.memoryUsage().rss;
  let progress = 0;
  const r = evaluateRanking({
    backend,
    scorer: embeddingScorer(backend, d.userEmb, d.itemEmb, dim, ni),
    test: d.test,
    exclude: d.train,
    ks: [20, 100],
    itemPopularity: d.pop,
    onProgress: (done) => (progress = done),
  });
  assert.equal(r.users, nu);
  assert.equal(progress, nu);
  assert.ok(r.blockSize * ni * 4 <= DEFAULT_MEMORY_BUDGET_BYTES);
  assert.ok(r.blockSize < nu); // really blocked
  for (const v of Object.values(r.metrics)) assert.ok(Number.isFinite(v));
  const grew = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
  assert.ok(grew < 1024, `RSS grew by ${grew.toFixed(0)} MiB`);
});
