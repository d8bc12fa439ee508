/**
 * Batch composition (recipe.batchSampler): shuffle stays what the trainer always drew, no-duplicates never puts
 * an item twice in a batch, and BatchSampler's rwr composes cluster-homogeneous batches from a proximity graph
 * whose neighbours are the exact top-K of their candidates; runs resume deterministically.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/compute/index.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildBatchComposer } from '../src/sampling/batch-order/build.ts';
import type { BatchComposer, ComposerContext, EmbeddingSnapshot } from '../src/sampling/batch-order/composer.ts';
import { buildProximityGraph } from '../src/sampling/batch-order/proximity-graph.ts';
import { RwrComposer } from '../src/sampling/batch-order/rwr.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { Rng } from '../src/util/rng.ts';

const backend = await getBackend();

/** Planted clusters: users and items in C clusters; each user's items mostly from their own cluster. */
function planted(numUsers: number, numItems: number, C: number, perUser: number, seed: number) {
  const rng = new Rng(seed);
  const userCluster = Int32Array.from({ length: numUsers }, (_, u) => u % C);
  const itemCluster = Int32Array.from({ length: numItems }, (_, i) => i % C);
  const users: number[] = [];
  const items: number[] = [];
  for (let u = 0; u < numUsers; u++) {
    const seen = new Set<number>();
    while (seen.size < perUser) {
      const c = rng.next() < 0.9 ? userCluster[u] : rng.int(C);
      seen.add(c + C * rng.int(numItems / C));
    }
    for (const i of seen) users.push(u), items.push(i);
  }
  return { users: Int32Array.from(users), items: Int32Array.from(items), userCluster, itemCluster, numItems };
}

/** Embeddings that know the clusters: cluster centroid + noise, L2-normalised. */
function plantedEmbeddings(userCluster: Int32Array, itemCluster: Int32Array, C: number, dim: number, seed: number): EmbeddingSnapshot {
  const rng = new Rng(seed);
  const centroids = Float32Array.from({ length: C * dim }, () => rng.normal());
  const emb = (cl: Int32Array) => {
    const out = new Float32Array(cl.length * dim);
    for (let i = 0; i < cl.length; i++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += (out[i * dim + d] = centroids[cl[i] * dim + d] + 0.5 * rng.normal()) ** 2;
      for (let d = 0; d < dim; d++) out[i * dim + d] /= Math.sqrt(s);
    }
    return out;
  };
  return { users: emb(userCluster), items: emb(itemCluster), dim };
}

/** Mean over batches of the share of the batch's most common item cluster (1/C for random batches). */
function homogeneity(c: BatchComposer, epochs: number, steps: number, items: Int32Array, itemCluster: Int32Array, C: number, seed: number): number {
  let sum = 0;
  let count = 0;
  for (let e = 1; e <= epochs; e++) {
    c.beginEpoch(e, new Rng(seed * 1_000_003 + e));
    for (let s = 0; s < steps; s++) {
      const rows = c.batch(s);
      const h = new Int32Array(C);
      for (const r of rows) h[itemCluster[items[r]]]++;
      sum += Math.max(...h) / rows.length;
      count++;
    }
  }
  return sum / count;
}

function ctxFor(users: Int32Array, items: Int32Array, numItems: number, batchSize: number, embed?: () => EmbeddingSnapshot): ComposerContext {
  return { backend, trainUsers: users, trainItems: items, numItems, batchSize, stepsPerEpoch: Math.floor(users.length / batchSize), seed: 3, embed };
}

test('shuffle composer draws exactly what the trainer drew before composers (same batches, same generator state)', () => {
  const n = 1000;
  const B = 64;
  const c = buildBatchComposer({ type: 'shuffle' }, ctxFor(new Int32Array(n), new Int32Array(n), 1, B));
  for (const epoch of [1, 2, 7]) {
    const rng = new Rng(5 * 1_000_003 + epoch);
    const ref = new Rng(5 * 1_000_003 + epoch);
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    ref.shuffle(order);
    c.beginEpoch(epoch, rng);
    for (let s = 0; s < Math.floor(n / B); s++) assert.deepEqual(c.batch(s), order.subarray(s * B, (s + 1) * B));
    assert.equal(rng.u32(), ref.u32(), 'the step sampler continues from the same generator state');
  }
  assert.equal(parseRecipe({}).batchSampler.type, 'shuffle', 'shuffle is the default');
});

test('no-duplicates: no item twice in a batch; every instance exactly once per epoch when item counts allow it', () => {
  // 64 items × 16 instances each, batch 64 → 16 steps: a perfect cover exists, and the greedy must find all rows.
  const numItems = 64;
  const items = new Int32Array(1024);
  for (let i = 0; i < items.length; i++) items[i] = i % numItems;
  const users = Int32Array.from(items, (_, i) => i);
  const B = 64;
  const c = buildBatchComposer({ type: 'no-duplicates' }, ctxFor(users, items, numItems, B));
  for (let e = 1; e <= 3; e++) {
    c.beginEpoch(e, new Rng(e));
    const used = new Int32Array(items.length);
    for (let s = 0; s < 16; s++) {
      const rows = c.batch(s);
      assert.equal(new Set(Array.from(rows, (r) => items[r])).size, B, `epoch ${e} step ${s}: an item repeats`);
      for (const r of rows) used[r]++;
    }
    // Greedy deferral may need refills at the very end; with this data it must not.
    assert.ok(used.every((x) => x === 1), `epoch ${e}: some instance used ${Math.max(...used)} or 0 times`);
  }
  assert.equal(c.stats().refillRows, 0);
  assert.equal(c.stats().skippedRows, 0);

  // Skewed popularity: still never a repeat; the head item's extra instances are skipped and counted.
  const data = generateSynthetic({ users: 400, items: 300, clusters: 5, zipf: 1.2, seed: 2 });
  const B2 = 128;
  const steps = Math.floor(data.items.length / B2);
  const c2 = buildBatchComposer({ type: 'no-duplicates' }, ctxFor(data.users, data.items, data.itemVocab.size, B2));
  const counts = new Int32Array(data.itemVocab.size);
  for (const i of data.items) counts[i]++;
  const overflow = Array.from(counts).reduce((a, x) => a + Math.max(0, x - steps), 0);
  c2.beginEpoch(1, new Rng(9));
  const seen = new Set<number>();
  for (let s = 0; s < steps; s++) {
    const rows = c2.batch(s);
    assert.equal(new Set(Array.from(rows, (r) => data.items[r])).size, B2);
    for (const r of rows) seen.add(r);
  }
  const st = c2.stats();
  assert.ok(overflow > 0, 'the data has items more frequent than steps per epoch');
  assert.ok(st.skippedRows >= overflow - (data.items.length - steps * B2), `skipped ${st.skippedRows}, overflow ${overflow}`);
  assert.equal(seen.size + st.skippedRows, data.items.length, 'every instance is used once or counted as skipped');
});

test('proximity graph: neighbours are exactly the top-K of each chunk’s candidates, masked rows excluded', () => {
  const rng = new Rng(11);
  const n = 700;
  const D = 12;
  const users = Int32Array.from({ length: n }, () => rng.int(60));
  const items = Int32Array.from({ length: n }, () => rng.int(90));
  const A = Float32Array.from({ length: n * D }, () => rng.normal());
  const Cv = Float32Array.from({ length: n * D }, () => rng.normal());
  const A2 = Float32Array.from({ length: n * 3 }, () => rng.normal());
  const C2 = Float32Array.from({ length: n * 3 }, () => rng.normal());
  const ids = Int32Array.from({ length: n }, (_, i) => i);
  const K = 7;
  const dot = (i: number, j: number) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += A[i * D + d] * Cv[j * D + d];
    for (let d = 0; d < 3; d++) s += A2[i * 3 + d] * C2[j * 3 + d];
    return s;
  };
  for (const center of [false, true]) {
    const g = buildProximityGraph({
      backend,
      users,
      items,
      // Two parts, as the 'cross' similarity uses: score = A_i·C_j + A2_i·C2_j with per-row (identity-id) tables.
      parts: [
        { dim: D, anchorTable: A, anchorIds: ids, candTable: Cv, candIds: ids },
        { dim: 3, anchorTable: A2, anchorIds: ids, candTable: C2, candIds: ids },
      ],
      candidates: 50,
      neighbours: K,
      rng: new Rng(4),
      chunk: 64,
      keepCandidates: true,
      centerCandidates: center,
    });
    const chunkOf = new Int32Array(n);
    g.order.forEach((row, pos) => (chunkOf[row] = Math.floor(pos / g.chunk)));
    // Hubness correction: minus the candidate's mean score over the chunk's anchors (all of them, masked or not).
    const colMean = (chunk: number, j: number) => {
      const anchors = g.order.subarray(chunk * g.chunk, (chunk + 1) * g.chunk);
      return anchors.reduce((a, r) => a + dot(r, j), 0) / anchors.length;
    };
    const timesCandidate = new Int32Array(n);
    for (const cs of g.candidates!) for (const j of cs) timesCandidate[j]++;
    assert.ok(Math.max(...timesCandidate) - Math.min(...timesCandidate) <= 1, 'every instance is a candidate equally often');
    let checked = 0;
    for (let i = 0; i < n; i++) {
      const cand = g.candidates![chunkOf[i]];
      assert.equal(new Set(cand).size, 50, 'candidates are distinct');
      const scored: Array<[number, number]> = [];
      for (const j of cand) {
        if (j === i || users[j] === users[i] || items[j] === items[i]) continue;
        scored.push([j, dot(i, j) - (center ? colMean(chunkOf[i], j) : 0)]);
      }
      scored.sort((a, b) => b[1] - a[1]);
      const want = scored.slice(0, K).map((x) => x[0]);
      const got = Array.from(g.nbr.subarray(i * K, i * K + g.deg[i]));
      assert.equal(g.deg[i], Math.min(K, scored.length));
      // Ties within float32 rounding could swap the last place; compare scores there, ids elsewhere.
      const kth = scored[Math.min(K, scored.length) - 1]?.[1] ?? 0;
      for (const j of got) {
        assert.ok(!(j === i || users[j] === users[i] || items[j] === items[i]), 'masked candidate became a neighbour');
        const s = scored.find((x) => x[0] === j)![1];
        assert.ok(s >= kth - 1e-4, `row ${i}: neighbour ${j} (score ${s}) is not among the top ${K} (kth ${kth}), center ${center}`);
      }
      if (new Set(got).size === want.length && want.every((j) => got.includes(j))) checked++;
    }
    assert.ok(checked >= n - 2, `exact top-K sets for ${checked}/${n} rows (center ${center})`);
  }
});

test('rwr batches on planted clusters are far more homogeneous than shuffled ones; restart=1 is random starts', () => {
  const C = 8;
  const d = planted(400, 320, C, 20, 1);
  const B = 64;
  const steps = Math.floor(d.users.length / B);
  const emb = plantedEmbeddings(d.userCluster, d.itemCluster, C, 16, 2);
  const ctx = ctxFor(d.users, d.items, d.numItems, B, () => emb);
  const rwrSpec = (over: object) =>
    parseRecipe({ batchSampler: { type: 'rwr', candidates: 128, neighbours: 8, refreshEvery: 20, warmupEpochs: 0, ...over } }).batchSampler;
  const shuffled = homogeneity(buildBatchComposer({ type: 'shuffle' }, ctx), 2, steps, d.items, d.itemCluster, C, 1);
  const model = buildBatchComposer(rwrSpec({ restart: 0.2 }), ctx);
  const rwrModel = homogeneity(model, 2, steps, d.items, d.itemCluster, C, 1);
  const itemSim = homogeneity(buildBatchComposer(rwrSpec({ similarity: 'item' }), ctx), 2, steps, d.items, d.itemCluster, C, 1);
  // Warm-up: the co-occurrence graph alone (no model) must already find the clusters.
  const warm = homogeneity(buildBatchComposer(rwrSpec({ warmupEpochs: 5 }), ctx), 2, steps, d.items, d.itemCluster, C, 1);
  const restart1 = buildBatchComposer(rwrSpec({ restart: 1 }), ctx);
  const random = homogeneity(restart1, 2, steps, d.items, d.itemCluster, C, 1);
  const msg = `shuffle ${shuffled.toFixed(3)}, rwr ${rwrModel.toFixed(3)}, item ${itemSim.toFixed(3)}, warm-up ${warm.toFixed(3)}, restart=1 ${random.toFixed(3)}`;
  console.log(msg, JSON.stringify(model.stats()));
  assert.ok(shuffled < 0.3, msg);
  assert.ok(rwrModel > 2.5 * shuffled, msg);
  assert.ok(itemSim > 2.5 * shuffled, msg);
  assert.ok(warm > 1.7 * shuffled, msg);
  assert.ok(Math.abs(random - shuffled) < 0.05, msg);
  assert.equal(restart1.stats().walkRows, 0, 'restart=1 never leaves its start');
  assert.ok(model.stats().walkFraction > 0.5, `walk fraction ${model.stats().walkFraction}`);
  assert.ok(model.stats().graphBuilds >= 2 * Math.ceil(steps / 20), 'graph rebuilt at epoch starts and every refreshEvery steps');

  const r0 = buildBatchComposer(rwrSpec({ restart: 0 }), ctx);
  const r9 = buildBatchComposer(rwrSpec({ restart: 0.9 }), ctx);
  const h0 = homogeneity(r0, 2, steps, d.items, d.itemCluster, C, 1);
  const h9 = homogeneity(r9, 2, steps, d.items, d.itemCluster, C, 1);
  // Restarts change the walk: with p = 0.9 walks keep returning to their start and stall sooner, so batches need
  // more starts and mix clusters more (measured: starts 3447 vs 1349, homogeneity 0.32 vs 0.76).
  assert.ok(r9.stats().startRows > 2 * r0.stats().startRows, `starts: restart 0.9 ${r9.stats().startRows}, restart 0 ${r0.stats().startRows}`);
  assert.ok(h9 < h0 - 0.2, `homogeneity: restart 0.9 ${h9.toFixed(3)}, restart 0 ${h0.toFixed(3)}`);
  // Every batch has distinct rows, and no row is used twice in an epoch.
  model.beginEpoch(3, new Rng(3));
  const used = new Uint8Array(d.users.length);
  for (let s = 0; s < steps; s++) for (const r of model.batch(s)) assert.equal(used[r]++, 0, `row ${r} used twice`);
  // Shorter walks: a batch of B rows needs at least B / walkLength starts.
  const short = buildBatchComposer(rwrSpec({ walkLength: 8 }), ctx);
  const shortH = homogeneity(short, 1, steps, d.items, d.itemCluster, C, 1);
  assert.ok(short.stats().startRows >= (steps * B) / 8, JSON.stringify(short.stats()));
  assert.ok(shortH > 1.5 * shuffled && shortH < rwrModel, `walkLength 8: ${shortH.toFixed(3)}`);
  // Shuffled warm-up (the official random_epochs): no graph and random batches until the warm-up ends.
  const warmShuffle = buildBatchComposer(rwrSpec({ warmup: 'shuffle', warmupEpochs: 2 }), ctx);
  const wsH = homogeneity(warmShuffle, 2, steps, d.items, d.itemCluster, C, 1);
  assert.equal(warmShuffle.stats().graphBuilds, 0);
  assert.ok(Math.abs(wsH - shuffled) < 0.05, `shuffled warm-up ${wsH.toFixed(3)}`);
  warmShuffle.beginEpoch(3, new Rng(3));
  assert.equal(warmShuffle.stats().graphBuilds, 1, 'the model graph is built once the warm-up ends');
  // rebuildEpochs: the model graph is rebuilt at every third epoch start only, and still composes rwr batches between.
  const sparse = buildBatchComposer(rwrSpec({ rebuildEpochs: 3 }), ctx);
  const sparseH = homogeneity(sparse, 6, steps, d.items, d.itemCluster, C, 1);
  assert.equal(sparse.stats().graphBuilds, 2, 'epochs 1 and 4 rebuild; refreshEvery is off between');
  assert.ok(sparseH > 2.5 * shuffled, `rebuildEpochs 3: ${sparseH.toFixed(3)}`);
  // Restart decays per epoch down to the floor.
  const decaying = new RwrComposer({ ...(rwrSpec({ restart: 0.3, restartDecay: 0.1 }) as any) }, ctx);
  decaying.beginEpoch(1, new Rng(1));
  assert.equal(decaying.stats().restart, 0.3);
  decaying.beginEpoch(3, new Rng(1));
  assert.ok(Math.abs(decaying.stats().restart - 0.1) < 1e-12);
  decaying.beginEpoch(9, new Rng(1));
  assert.equal(decaying.stats().restart, 0.05);
});

test('training with rwr batches reports graph time (resume: test/train-resume.test.ts)', async () => {
  const data = generateSynthetic({ users: 300, items: 200, clusters: 6, zipf: 1, seed: 4 });
  const recipe = parseRecipe({
    sources: [{ type: 'in-batch' }],
    batchSampler: { type: 'rwr', candidates: 64, neighbours: 8, refreshEvery: 5, warmupEpochs: 1 },
  });
  const full = await runExperiment({
    data: { path: 'synthetic' },
    loaded: data,
    split: { kind: 'random', val: 0.1, test: 0.1, seed: 1 },
    recipe,
    model: { ...defaultModelOptions, dim: 16, mlp: [16], seed: 1 },
    train: { epochs: 3, batchSize: 128, seed: 2, evalEvery: 0, patience: 0, valMetric: 'recall@20', valMaxUsers: 100, resume: false, progress: 'none', logEvery: 0 },
    ks: [20],
    out: null,
  });
  const bs = full.train.batchSampler!;
  assert.equal(bs.type, 'rwr');
  assert.ok(Number(bs.graphBuilds) >= 3 && bs.graphSeconds > 0 && bs.graphFraction > 0 && bs.graphFraction < 1, JSON.stringify(bs));
});

test('no-duplicates counts distinct items exactly, however many instances an item has', () => {
  // 10 items × 300 instances: only 10 distinct items, so a batch of 12 distinct items cannot exist (composing
  // one would loop forever in the refill); a per-item counter that wraps at 256 would count 20.
  const items = Int32Array.from({ length: 3000 }, (_, i) => i % 10);
  const users = Int32Array.from(items, (_, i) => i);
  assert.throws(() => buildBatchComposer({ type: 'no-duplicates' }, ctxFor(users, items, 10, 12)), /needs at least batch-size \(12\) distinct training items, the data has 10/);
  const ok = buildBatchComposer({ type: 'no-duplicates' }, ctxFor(users, items, 10, 10));
  ok.beginEpoch(1, new Rng(1));
  assert.equal(new Set(Array.from(ok.batch(0), (r) => items[r])).size, 10);
});
