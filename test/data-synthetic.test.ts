import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csrRow } from '../src/data/csr.ts';
import { itemPopularity, trainPositives } from '../src/data/positives.ts';
import { splitInteractions } from '../src/data/split.ts';
import { generateSynthetic, parseSyntheticSpec } from '../src/data/synthetic.ts';

const OPTS = { users: 2000, items: 3000, clusters: 20, zipf: 1.0, seed: 7 };

test('synthetic is deterministic by seed', () => {
  const a = generateSynthetic(OPTS);
  const b = generateSynthetic(OPTS);
  assert.deepEqual(a.users, b.users);
  assert.deepEqual(a.items, b.items);
  assert.deepEqual(a.times, b.times);
  assert.deepEqual(a.userFeatures[0].values, b.userFeatures[0].values);
  const c = generateSynthetic({ ...OPTS, seed: 8 });
  assert.notDeepEqual(c.items, a.items);
  assert.deepEqual(parseSyntheticSpec('synthetic:users=2000,items=3000,clusters=20,zipf=1.0,seed=7,noise=0.2'), {
    ...OPTS,
    perUser: 20,
    noise: 0.2,
  });
});

test('synthetic has the planted structure', () => {
  const d = generateSynthetic(OPTS);
  const n = d.users.length;
  const { userCluster, itemCluster } = d;
  // Per-user counts at least 5, around perUser; no repeated (user, item); times increase within a user.
  const counts = new Int32Array(OPTS.users);
  for (let r = 0; r < n; r++) counts[d.users[r]]++;
  assert.ok(Math.min(...counts) >= 5);
  assert.ok(Math.abs(n / OPTS.users - 20) < 3, `mean ${n / OPTS.users}`);
  const pos = trainPositives(d, Int32Array.from(d.users.keys()));
  assert.equal(pos.cols.length, n, 'no duplicate pairs');
  for (let r = 1; r < n; r++) if (d.users[r] === d.users[r - 1]) assert.ok(d.times![r] > d.times![r - 1]);
  // Users' time ranges overlap, so the global log interleaves them.
  const first = new Float64Array(OPTS.users).fill(Infinity);
  const last = new Float64Array(OPTS.users).fill(-Infinity);
  for (let r = 0; r < n; r++) {
    first[d.users[r]] = Math.min(first[d.users[r]], d.times![r]);
    last[d.users[r]] = Math.max(last[d.users[r]], d.times![r]);
  }
  let overlaps = 0;
  for (let u = 1; u < OPTS.users; u++) if (first[u] < last[u - 1] && first[u - 1] < last[u]) overlaps++;
  assert.ok(overlaps > OPTS.users / 4, `${overlaps} overlapping neighbours`);

  // Most of a user's items are in the user's cluster (1 - noise plus chance hits).
  let inCluster = 0;
  for (let r = 0; r < n; r++) if (itemCluster[d.items[r]] === userCluster[d.users[r]]) inCluster++;
  assert.ok(inCluster / n > 0.8 && inCluster / n < 0.95, `in-cluster share ${inCluster / n}`);

  // Popularity is Zipf-skewed: the top 1% of items take a large share; most items are rare.
  const pop = Array.from(itemPopularity(d, Int32Array.from(d.users.keys()))).sort((a, b) => b - a);
  const top = pop.slice(0, OPTS.items / 100).reduce((s, x) => s + x, 0);
  assert.ok(top / n > 0.1, `top-1% share ${top / n} (uniform would be 0.01)`);
  const median = pop[Math.floor(OPTS.items / 2)];
  assert.ok(pop[0] > 20 * median, `most popular ${pop[0]} vs median ${median}`);

  // Features agree with the cluster about 80% of the time; vocab index 0 is missing.
  const seg = d.userFeatures[0];
  const cat = d.itemFeatures[0];
  assert.equal(seg.name, 'user_segment');
  assert.equal(cat.name, 'item_category');
  assert.equal(seg.vocab.ids[0], '<missing>');
  const agree = (values: Int32Array, truth: Int32Array) => values.filter((v, e) => v - 1 === truth[e]).length / truth.length;
  assert.ok(Math.abs(agree(seg.values, userCluster) - 0.81) < 0.05);
  assert.ok(Math.abs(agree(cat.values, itemCluster) - 0.81) < 0.05);
});

test('knowing the clusters beats popularity by a wide margin; popularity beats chance', () => {
  const d = generateSynthetic(OPTS);
  const split = splitInteractions(d, { kind: 'loo' });
  const train = trainPositives(d, split.train);
  const globalPop = itemPopularity(d, split.train);
  const byCount = (items: number[]) => items.sort((a, b) => globalPop[b] - globalPop[a] || a - b);
  const globalTop = byCount(Array.from(globalPop.keys()));
  const clusterTop = Array.from({ length: OPTS.clusters }, (_, c) => byCount(Array.from(globalPop.keys()).filter((j) => d.itemCluster[j] === c)));
  const recallAt20 = (ranked: (u: number) => number[]) => {
    let hits = 0;
    for (const r of split.test) {
      const u = d.users[r];
      const seen = new Set(csrRow(train, u));
      const top = ranked(u).filter((j) => !seen.has(j)).slice(0, 20);
      if (top.includes(d.items[r])) hits++;
    }
    return hits / split.test.length;
  };
  const popRecall = recallAt20(() => globalTop.slice(0, 60));
  const oracleRecall = recallAt20((u) => clusterTop[d.userCluster[u]].slice(0, 60));
  assert.ok(popRecall > 2 * (20 / OPTS.items), `popularity ${popRecall} should beat chance`);
  assert.ok(oracleRecall > 2.5 * popRecall, `cluster oracle ${oracleRecall} vs popularity ${popRecall}`);
});

// Speed is a benchmark's business; this checks that a 1M-item catalogue generates at all (typed arrays, no per-row objects).
test('large catalogues generate (100k users x 1M items)', () => {
  const d = generateSynthetic({ users: 100_000, items: 1_000_000, clusters: 50, zipf: 1, seed: 1 });
  assert.equal(d.itemVocab.size, 1_000_000);
  assert.ok(d.users.length > 1_500_000);
});
