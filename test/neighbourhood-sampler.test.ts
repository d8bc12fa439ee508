/**
 * GNNO's hard-negative sampler, curriculum and the `neighbourhood` negative source: exclusions (the positive,
 * the items above the hardness cap, the top-k overlap), the distribution p(j|i) ∝ exp(J/τ), the expected
 * counts used by logQ, the schedule, and the recipe plumbing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csrFromPairs, type Csr } from '../src/data/csr.ts';
import { checkCurriculum, hardnessAt, officialCurriculum } from '../src/graph/curriculum.ts';
import { neighbourhoodOverlap, overlapScore } from '../src/graph/jaccard.ts';
import { NeighbourSampler } from '../src/graph/neighbour-sampler.ts';
import { buildTransitionGraph } from '../src/graph/transition.ts';
import { BatchAssembler } from '../src/sampling/assembler.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { NeighbourhoodSource } from '../src/sampling/neighbourhood.ts';
import { Rng } from '../src/util/rng.ts';

function seqs(lists: number[][]): Csr {
  const u: number[] = [];
  const it: number[] = [];
  lists.forEach((l, k) => l.forEach((j) => (u.push(k), it.push(j))));
  return csrFromPairs(lists.length, Int32Array.from(u), Int32Array.from(it));
}

// J(0,·): 1 → 1/4, 2 → 1/4, 3 → 1; J(1,·): 0 → 1/4, 2 → 1/2, 3 → 1/4; items 4, 5 unrelated.
const HAND = seqs([[0, 1, 2, 3], [1, 2], [4], [5]]);
const lists = neighbourhoodOverlap(buildTransitionGraph(HAND, 6, { window: 2 }), { weight: 'bool', maxCandidates: 0 });

function draws(s: NeighbourSampler, i: number, n: number, seed = 1): Map<number, number> {
  const rng = new Rng(seed);
  const m = new Map<number, number>();
  for (let k = 0; k < n; k++) {
    const j = s.sample(i, rng);
    m.set(j, (m.get(j) ?? 0) + 1);
  }
  return m;
}

test('the sampler never returns the positive, an item above the cap, or an excluded top-k neighbour', () => {
  const s = new NeighbourSampler(lists, { candidates: 'all', temperature: 1, excludeTop: 0 });
  s.setHardness(0.3);
  const m0 = draws(s, 0, 5000);
  assert.ok(!m0.has(0), 'never the positive');
  assert.ok(!m0.has(3), 'J(0,3) = 1 > 0.3: excluded as a likely false negative');
  for (const j of [1, 2, 4, 5]) assert.ok((m0.get(j) ?? 0) > 0, `item ${j} is eligible`);
  // Cap 0: only items with no overlap at all.
  s.setHardness(0);
  assert.deepEqual([...draws(s, 0, 2000).keys()].sort(), [4, 5]);
  // Top-1 exclusion: item 1's closest (J(1,2) = 1/2) is never drawn even under a high cap.
  const top = new NeighbourSampler(lists, { candidates: 'all', temperature: 1, excludeTop: 1 });
  top.setHardness(1);
  const m1 = draws(top, 1, 5000);
  assert.ok(!m1.has(2) && !m1.has(1), `drew ${[...m1.keys()]}`);
  assert.ok((m1.get(0) ?? 0) > 0 && (m1.get(3) ?? 0) > 0);
  // Overlap candidates only: two-hop items, none of the unrelated ones.
  const ov = new NeighbourSampler(lists, { candidates: 'overlap', temperature: 1, excludeTop: 0 });
  ov.setHardness(0.6);
  assert.deepEqual([...draws(ov, 1, 3000).keys()].sort(), [0, 2, 3]);
  // ... and, when nothing is eligible, uniform over the unrelated items (still never the positive or a neighbour above the cap).
  ov.setHardness(0.1);
  assert.deepEqual([...draws(ov, 1, 3000).keys()].sort(), [4, 5]);
});

test('p(j | i) ∝ exp(J/τ) over the eligible items: probabilities, empirical frequencies, normalisation', () => {
  for (const temperature of [1, 0.2]) {
    const s = new NeighbourSampler(lists, { candidates: 'all', temperature, excludeTop: 0 });
    s.setHardness(0.6);
    // Target 1: eligible 0 (1/4), 2 (1/2), 3 (1/4), 4 (0), 5 (0).
    const w = [Math.exp(0.25 / temperature), 0, Math.exp(0.5 / temperature), Math.exp(0.25 / temperature), 1, 1];
    const Z = w.reduce((a, b) => a + b, 0);
    let total = 0;
    for (let j = 0; j < 6; j++) {
      assert.ok(Math.abs(s.probability(1, j) - w[j] / Z) < 1e-9, `τ=${temperature} p(${j}|1) = ${s.probability(1, j)} vs ${w[j] / Z}`);
      total += s.probability(1, j);
    }
    assert.ok(Math.abs(total - 1) < 1e-9);
    const n = 40000;
    const m = draws(s, 1, n, 7);
    for (let j = 0; j < 6; j++) {
      const p = w[j] / Z;
      const sd = Math.sqrt((p * (1 - p)) / n);
      assert.ok(Math.abs((m.get(j) ?? 0) / n - p) < 5 * sd + 1e-9, `τ=${temperature} item ${j}: ${(m.get(j) ?? 0) / n} vs ${p}`);
    }
  }
  // The official setting is a mild tilt: the hardest eligible item is at most e^h times as likely as an unrelated one.
  const off = new NeighbourSampler(lists, { candidates: 'all', temperature: 1, excludeTop: 0 });
  off.setHardness(0.7);
  assert.ok(off.probability(1, 2) / off.probability(1, 4) <= Math.exp(0.7) + 1e-9);
});

test('expected counts for logQ: n · Σ_rows p(j | target_row), matching brute force', () => {
  const rng = new Rng(4);
  const n = 30;
  const l = Array.from({ length: 40 }, () => Array.from({ length: 2 + rng.int(6) }, () => rng.int(n)));
  const ov = neighbourhoodOverlap(buildTransitionGraph(seqs(l), n, { window: 3 }), { weight: 'bool', maxCandidates: 6 });
  for (const candidates of ['all', 'overlap'] as const) {
    const s = new NeighbourSampler(ov, { candidates, temperature: 0.5, excludeTop: 1 });
    s.setHardness(0.4);
    const targets = Int32Array.from([3, 7, 3, 12, 0]);
    const ids = Int32Array.from({ length: n }, (_, j) => j);
    const out = new Float32Array(n);
    s.logExpectedCounts(targets, 2, ids, out);
    for (let j = 0; j < n; j++) {
      let e = 0;
      for (const t of targets) e += 2 * s.probability(t, j);
      assert.ok(Math.abs(Math.exp(out[j]) - Math.max(e, 1e-30)) < 1e-5 * (1 + e), `${candidates} item ${j}: ${Math.exp(out[j])} vs ${e}`);
    }
    // Every draw is eligible under the cap and top-k exclusion.
    const r = new Rng(2);
    for (let k = 0; k < 2000; k++) {
      const t = rng.int(n);
      const j = s.sample(t, r);
      assert.ok(j !== t, 'never the positive');
      const J = overlapScore(ov, t, j);
      assert.ok(J <= 0.4 + 1e-7, `drew ${j} for ${t} with J = ${J} above the cap`);
      assert.ok(s.probability(t, j) > 0);
    }
  }
});

test('curriculum: official schedule, linear and step, clamped at the maximum', () => {
  const c = officialCurriculum;
  assert.equal(hardnessAt(c, 0), 0);
  assert.equal(hardnessAt(c, 5), 0);
  assert.ok(Math.abs(hardnessAt(c, 6) - 0.01) < 1e-12);
  assert.ok(Math.abs(hardnessAt(c, 30) - 0.25) < 1e-12);
  assert.equal(hardnessAt(c, 75), 0.7);
  assert.equal(hardnessAt(c, 500), 0.7);
  const step = { kind: 'step' as const, start: 0.1, warmup: 2, pace: 0.2, every: 3, max: 0.5 };
  assert.deepEqual([0, 2, 4, 5, 7, 8, 11, 40].map((e) => +hardnessAt(step, e).toFixed(6)), [0.1, 0.1, 0.1, 0.3, 0.3, 0.5, 0.5, 0.5]);
  const lin = { kind: 'linear' as const, start: 0.05, warmup: 1, pace: 0.1, every: 1, max: 0.5 };
  assert.ok(Math.abs(hardnessAt(lin, 2.5) - 0.2) < 1e-12, 'fractional epochs interpolate');
  assert.equal(hardnessAt({ ...lin, kind: 'constant' }, 0), 0.5);
  assert.throws(() => checkCurriculum({ ...lin, max: 2 }), /max/);
  assert.throws(() => checkCurriculum({ ...lin, every: 0 }), /every/);
});

test('neighbourhood source from a recipe: per-row draws, curriculum by epoch or by step, logQ, errors', () => {
  const recipe = parseRecipe({
    sources: [{ type: 'in-batch' }, { type: 'neighbourhood', n: 3, window: 2, curriculum: { kind: 'step', start: 0, warmup: 0, pace: 0.3, every: 1, max: 0.6 } }],
    corrections: { logQ: { estimator: 'train-frequency' } },
  });
  const train = Int32Array.from(HAND.cols);
  const set = buildSources(recipe, { numItems: 6, trainItems: train, trainSequences: HAND });
  const src = set.sources[1] as NeighbourhoodSource;
  assert.equal(src.name, 'neighbourhood');
  assert.ok(src.graph && src.graph.edges === 10 && src.graph.graphSeconds >= 0);
  const items = Int32Array.from([0, 1, 2, 3]);
  const rng = new Rng(9);
  src.epoch = 0; // cap 0: only unrelated items
  let c = src.sample({ users: Int32Array.from([0, 0, 0, 1]), items, step: 1, rng });
  assert.equal(c.ids.length, 12);
  for (const j of c.ids) assert.ok(j === 4 || j === 5, `cap 0 drew ${j}`);
  src.epoch = 5; // cap 0.6
  for (let k = 0; k < 50; k++) {
    c = src.sample({ users: Int32Array.from([0, 0, 0, 1]), items, step: 2, rng });
    for (let r = 0; r < 4; r++) for (let q = 0; q < 3; q++) {
      const j = c.ids[r * 3 + q];
      assert.notEqual(j, items[r], 'never the row positive');
      assert.ok(overlapScore(lists, items[r], j) <= 0.6, 'never above the cap');
    }
  }
  // Without an explicit epoch, the step gives it: (step − 1)·B / |train| epochs.
  src.epoch = null;
  src.sample({ users: items, items, step: 1 + 3 * 3, rng }); // 9 steps × 4 rows / 12 rows = 3 epochs → cap 0.6
  assert.equal(src.sampler.hardness, 0.6);
  // The column builder mixes it into logQ: finite everywhere.
  const cols = new BatchAssembler(set, recipe, 4).columns({ users: items, items, step: 3, rng });
  assert.equal(cols.N, 4 + 12);
  for (let j = 0; j < cols.N; j++) assert.ok(Number.isFinite(cols.logq[j]));
  assert.throws(() => buildSources(recipe, { numItems: 6, trainItems: train }), /ordered training items/);
  // trainUsers instead of sequences: rows grouped by user in row order.
  const u = Int32Array.from([0, 0, 0, 0, 1, 1, 2, 3]);
  const viaRows = buildSources(recipe, { numItems: 6, trainItems: train, trainUsers: u }).sources[1] as NeighbourhoodSource;
  assert.equal(viaRows.graph?.edges, 10);
  assert.throws(() => parseRecipe({ sources: [{ type: 'neighbourhood', n: 0 }] }), /sources\.0\.n/);
  assert.throws(() => parseRecipe({ sources: [{ type: 'neighbourhood', curriculum: { kind: 'cubic' } }] }), /curriculum\.kind/);
});
