/**
 * The item transition graph (GNNO's WITG) and neighbourhood overlap (Jaccard / Tanimoto): hand-made sequences
 * with answers worked out by hand, and random sequences against a dense float64 reference of the official
 * formulas (build_witg.py + TopoCuri._construct_graph).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csrFromPairs, type Csr } from '../src/data/csr.ts';
import { neighbourhoodOverlap, overlapScore, kthLargest } from '../src/graph/jaccard.ts';
import { buildTransitionGraph, edgeWeight, neighbours } from '../src/graph/transition.ts';
import { Rng } from '../src/util/rng.ts';

function seqs(lists: number[][]): Csr {
  const u: number[] = [];
  const it: number[] = [];
  lists.forEach((l, k) => l.forEach((j) => (u.push(k), it.push(j))));
  return csrFromPairs(lists.length, Int32Array.from(u), Int32Array.from(it));
}

// 0 1 2 3 and 1 2 (window 2); item 4 only in a one-item sequence (no transitions).
const HAND = seqs([[0, 1, 2, 3], [1, 2], [4]]);

test('transition graph: distance weights 1/k within the window, both directions, per-row renormalisation', () => {
  const g = buildTransitionGraph(HAND, 5, { window: 2 });
  assert.deepEqual(Array.from(neighbours(g, 0)), [1, 2]);
  assert.deepEqual(Array.from(neighbours(g, 1)), [0, 2, 3]);
  assert.deepEqual(Array.from(neighbours(g, 2)), [0, 1, 3]);
  assert.deepEqual(Array.from(neighbours(g, 3)), [1, 2]);
  assert.deepEqual(Array.from(neighbours(g, 4)), []);
  const w = (a: number, b: number) => edgeWeight(g, a, b);
  assert.equal(w(0, 1), 1);
  assert.equal(w(0, 2), 0.5); // distance 2
  assert.equal(w(1, 2), 2); // adjacent in both sequences
  assert.equal(w(2, 1), 2);
  assert.equal(w(1, 3), 0.5);
  assert.equal(w(0, 3), 0); // distance 3 > window
  // ŵ(0,1) = w/Σ_row · (1/deg0 + 1/deg1) = (1/1.5)(1/2 + 1/3).
  assert.ok(Math.abs(edgeWeight(g, 0, 1, 'norm') - (1 / 1.5) * (1 / 2 + 1 / 3)) < 1e-6);
  assert.ok(Math.abs(edgeWeight(g, 1, 0, 'norm') - (1 / 3.5) * (1 / 3 + 1 / 2)) < 1e-6);
  // Window 1: only adjacent pairs.
  const g1 = buildTransitionGraph(HAND, 5, { window: 1 });
  assert.deepEqual(Array.from(neighbours(g1, 0)), [1]);
  assert.equal(edgeWeight(g1, 1, 2), 2);
});

test('Jaccard overlap of neighbourhoods: the hand-computed values', () => {
  const g = buildTransitionGraph(HAND, 5, { window: 2 });
  const o = neighbourhoodOverlap(g, { weight: 'bool', maxCandidates: 0 });
  const J = (i: number, j: number) => overlapScore(o, i, j);
  // N(0)={1,2}, N(1)={0,2,3}, N(2)={0,1,3}, N(3)={1,2}.
  assert.equal(J(0, 1), 1 / 4);
  assert.equal(J(0, 2), 1 / 4);
  assert.equal(J(0, 3), 1); // same neighbourhood, not adjacent: the likeliest false negative
  assert.equal(J(1, 2), 1 / 2);
  assert.equal(J(1, 3), 1 / 4);
  assert.equal(J(2, 3), 1 / 4);
  assert.equal(J(3, 0), 1, 'symmetric');
  assert.equal(J(0, 4), 0, 'no shared neighbour');
  assert.equal(J(0, 0), 0, 'an item is not its own candidate');
  assert.deepEqual(Array.from(o.ids.subarray(o.offsets[0], o.offsets[1])), [1, 2, 3], 'rows sorted by id');
  assert.equal(o.offsets[5] - o.offsets[4], 0);
  // Keeping one candidate per row keeps the highest overlap.
  const top = neighbourhoodOverlap(g, { weight: 'bool', maxCandidates: 1 });
  assert.deepEqual(Array.from(top.ids), [3, 2, 1, 0]);
  assert.equal(top.truncatedRows, 4);
});

/** Dense float64 reference: W from the official formulas, then CN = A Aᵀ and J = CN/(CN_ii + CN_jj − CN). */
function reference(lists: number[][], n: number, window: number, weight: 'bool' | 'weight'): Float64Array {
  const W = new Float64Array(n * n);
  for (const s of lists) for (let j = 0; j < s.length; j++) for (let k = 1; k <= window && j + k < s.length; k++) {
    const a = s[j];
    const b = s[j + k];
    if (a === b) continue;
    W[a * n + b] += 1 / k;
    W[b * n + a] += 1 / k;
  }
  const deg = new Float64Array(n);
  const rowSum = new Float64Array(n);
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) if (W[a * n + b] > 0) (deg[a]++, (rowSum[a] += W[a * n + b]));
  const A = new Float64Array(n * n);
  for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) {
    const w = W[a * n + b];
    if (w > 0) A[a * n + b] = weight === 'bool' ? 1 : (w / rowSum[a]) * (1 / deg[a] + 1 / deg[b]);
  }
  const CN = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += A[i * n + k] * A[j * n + k];
    CN[i * n + j] = s;
  }
  const J = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    const u = CN[i * n + i] + CN[j * n + j] - CN[i * n + j];
    J[i * n + j] = i === j || u === 0 ? 0 : CN[i * n + j] / u;
  }
  return J;
}

for (const weight of ['bool', 'weight'] as const) {
  test(`overlap matches the dense float64 reference on random sequences (${weight})`, () => {
    const rng = new Rng(5);
    const n = 40;
    const lists = Array.from({ length: 60 }, () => Array.from({ length: 2 + rng.int(8) }, () => rng.int(n)));
    const g = buildTransitionGraph(seqs(lists), n, { window: 3 });
    const o = neighbourhoodOverlap(g, { weight, maxCandidates: 0 });
    const J = reference(lists, n, 3, weight);
    let positive = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      const ref = J[i * n + j];
      if (ref > 0) positive++;
      assert.ok(Math.abs(overlapScore(o, i, j) - ref) < 1e-5, `J(${i},${j}) = ${overlapScore(o, i, j)}, reference ${ref}`);
    }
    assert.ok(positive > n, 'the random graph has overlaps to check');
    // Capped lists hold each row's largest scores.
    const capped = neighbourhoodOverlap(g, { weight, maxCandidates: 5 });
    for (let i = 0; i < n; i++) {
      const row = Array.from({ length: n }, (_, j) => J[i * n + j]).filter((x) => x > 0).sort((a, b) => b - a);
      const kept = Array.from(capped.score.subarray(capped.offsets[i], capped.offsets[i + 1])).sort((a, b) => b - a);
      assert.equal(kept.length, Math.min(5, row.length));
      kept.forEach((s, k) => assert.ok(Math.abs(s - row[k]) < 1e-5, `row ${i}: kept ${kept} vs best ${row.slice(0, 5)}`));
    }
  });
}

test('kthLargest selects order statistics', () => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 20; trial++) {
    const a = Float32Array.from({ length: 1 + rng.int(50) }, () => Math.round(rng.next() * 10) / 10);
    const sorted = Array.from(a).sort((x, y) => y - x);
    const k = 1 + rng.int(a.length);
    assert.equal(kthLargest(a.slice(), a.length, k), sorted[k - 1]);
  }
});
