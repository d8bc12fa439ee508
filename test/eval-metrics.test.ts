import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import { csrFromPairs, type Csr } from '../src/data/csr.ts';
import { evaluateRanking, type RankingOptions } from '../src/eval/ranking.ts';
import { popularityBaseline } from '../src/eval/baselines.ts';
import { popularityScorer, type Scorer } from '../src/eval/scorer.ts';
import { popularityStats } from '../src/eval/popularity.ts';
import { formatMetricsTable } from '../src/eval/format.ts';
import { Rng } from '../src/util/rng.ts';

const backend = await createJsBackend({ wasm: false });

/** A scorer over a fixed users × items matrix (row-major). */
function matrixScorer(m: number[][] | Float32Array, numItems: number): Scorer {
  const flat = m instanceof Float32Array ? m : Float32Array.from(m.flat());
  return {
    numItems,
    scoreUsers(users, out) {
      users.forEach((u, r) => out.set(flat.subarray(u * numItems, (u + 1) * numItems), r * numItems));
    },
  };
}

function csr(rows: number[][]): Csr {
  const r: number[] = [];
  const c: number[] = [];
  rows.forEach((items, u) => items.forEach((j) => (r.push(u), c.push(j))));
  return csrFromPairs(rows.length, Int32Array.from(r), Int32Array.from(c));
}

function close(actual: Record<string, number>, expected: Record<string, number>): void {
  for (const [k, v] of Object.entries(expected)) {
    assert.ok(k in actual, `missing ${k}`);
    assert.ok(Math.abs(actual[k] - v) < 1e-9, `${k}: got ${actual[k]}, expected ${v}`);
  }
}

// 3 users × 6 items. Train counts [10, 8, 8, 5, 1, 0]:
//   percentile (ECDF) = [1, 5/6, 5/6, 3/6, 2/6, 1/6]; head (⌈0.2·6⌉ = 2 items, ties by index) = {0, 1}.
const SCORES = [
  [0.9, 0.6, 0.8, 0.3, 0.5, 0.2], // ranking 0 2 1 4 3 5
  [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], // ranking 5 4 3 2 1 0
  [0.5, 0.5, 0.4, 0.9, 0.0, 0.7], // ranking 3 5 0 1 2 4 (0 before 1: tie → lower index)
];
const POP = Float64Array.from([10, 8, 8, 5, 1, 0]);
const TEST = csr([[1, 2], [3], [3, 4, 5]]);
const L = 1 / Math.log2(3); // discount of rank 2

function base(extra: Partial<RankingOptions> = {}): RankingOptions {
  return { backend, scorer: matrixScorer(SCORES, 6), test: TEST, exclude: null, ks: [1, 3], itemPopularity: POP, ...extra };
}

test('popularity stats: ECDF percentile and head split', () => {
  const s = popularityStats(POP, 0.2);
  assert.deepEqual([...s.percentile], [1, 5 / 6, 5 / 6, 3 / 6, 2 / 6, 1 / 6]);
  assert.deepEqual([...s.head], [1, 1, 0, 0, 0, 0]);
  assert.equal(popularityStats(new Float64Array(15), 0.2).headSize, 3); // 0.2·15 is 3.0000000000000004 in floats
});

test('hand-computed metrics on a 3 × 6 score matrix', () => {
  const r = evaluateRanking(base());
  assert.equal(r.users, 3);
  // top-3: u0 [0 2 1] (hits 2@2, 1@3), u1 [5 4 3] (hit 3@3), u2 [3 5 0] (hits 3@1, 5@2).
  close(r.metrics, {
    'recall@1': (0 + 0 + 1 / 3) / 3,
    'ndcg@1': (0 + 0 + 1) / 3,
    'hr@1': 1 / 3,
    'mrr@1': 1 / 3,
    'precision@1': 1 / 3,
    'coverage@1': 3 / 6, // {0, 5, 3}
    'popPct@1': (1 + 1 / 6 + 3 / 6) / 3,
    'recallHead@1': 0 / 1, // head test items: u0's item 1 only
    'recallTail@1': 1 / 5, // tail test items: 2 | 3 | 3 4 5
    'recall@3': (1 + 1 + 2 / 3) / 3,
    'ndcg@3': ((L + 0.5) / (1 + L) + 0.5 / 1 + (1 + L) / (1 + L + 0.5)) / 3,
    'hr@3': 1,
    'mrr@3': (1 / 2 + 1 / 3 + 1) / 3,
    'precision@3': (2 / 3 + 1 / 3 + 2 / 3) / 3,
    'coverage@3': 1,
    'popPct@3': (1 + 5 / 6 + 5 / 6 + 1 / 6 + 2 / 6 + 3 / 6 + 3 / 6 + 1 / 6 + 1) / 9,
    'recallHead@3': 1,
    'recallTail@3': 4 / 5,
  });
});

test('excluding training items shifts rankings; a train item that is also a test item stays retrievable', () => {
  // u0 train {0}; u1 train {5, 3} where 3 is also u1's test item (re-consumption), u2 none.
  const r = evaluateRanking(base({ exclude: csr([[0], [5, 3], []]) }));
  // top-3: u0 [2 1 4] (hits @1 @2), u1 [4 3 2] (hit 3@2), u2 [3 5 0] unchanged.
  close(r.metrics, {
    'recall@1': (1 / 2 + 0 + 1 / 3) / 3,
    'ndcg@1': (1 + 0 + 1) / 3,
    'hr@1': 2 / 3,
    'mrr@1': 2 / 3,
    'coverage@1': 3 / 6, // {2, 4, 3}
    'recall@3': (1 + 1 + 2 / 3) / 3,
    'ndcg@3': (1 + L + (1 + L) / (1.5 + L)) / 3,
    'mrr@3': (1 + 1 / 2 + 1) / 3,
    'coverage@3': 1, // {2, 1, 4} ∪ {4, 3, 2} ∪ {3, 5, 0}
    'recallHead@1': 0, // u0's head item 1 is at rank 2
    'recallHead@3': 1,
    'recallTail@1': 2 / 5, // u0's 2, u2's 3
  });
  // Excluding everything but the test items makes every list start with them.
  const all = evaluateRanking(base({ exclude: csr([[0, 3, 4, 5], [0, 1, 2, 4, 5], [0, 1, 2]]) }));
  close(all.metrics, { 'recall@3': 1, 'ndcg@3': 1, 'hr@1': 1, 'mrr@3': 1 });
});

test('lists shorter than K (everything excluded) count as misses, precision still divides by K', () => {
  const r = evaluateRanking(base({ exclude: csr([[0, 3, 4, 5], [0, 1, 2, 4, 5], [0, 1, 2]]), ks: [10] }));
  close(r.metrics, { 'recall@10': 1, 'precision@10': (2 + 1 + 3) / 30, 'coverage@10': 5 / 6, 'ndcg@10': 1 });
});

test('explicit users: order, subset and users without test items', () => {
  const r = evaluateRanking(base({ users: Int32Array.from([2, 0]), keepPerUser: true }));
  assert.equal(r.users, 2);
  assert.deepEqual([...r.perUser!.users], [2, 0]);
  assert.deepEqual([...r.perUser!.values['recall@3']], [2 / 3, 1]);
  const empty = csr([[1, 2], [], [3, 4, 5]]);
  assert.equal(evaluateRanking(base({ test: empty })).users, 2);
  assert.equal(evaluateRanking(base({ test: empty, users: Int32Array.from([0, 1, 2]) })).users, 2);
});

test('blocked scoring gives identical metrics for any block size', () => {
  const rng = new Rng(3);
  const nu = 37;
  const ni = 53;
  const s = new Float32Array(nu * ni);
  for (let i = 0; i < s.length; i++) s[i] = Math.round(rng.next() * 20) / 20; // many ties
  const tests: number[][] = [];
  const train: number[][] = [];
  for (let u = 0; u < nu; u++) {
    tests.push(Array.from({ length: rng.int(4) }, () => rng.int(ni))); // some empty, some duplicates
    train.push(Array.from({ length: rng.int(8) }, () => rng.int(ni)));
  }
  const pop = Float64Array.from({ length: ni }, () => rng.int(5));
  const run = (blockSize?: number) =>
    evaluateRanking({ backend, scorer: matrixScorer(s, ni), test: csr(tests), exclude: csr(train), ks: [1, 5, 20], itemPopularity: pop, blockSize, keepPerUser: true });
  const ref = run(1);
  assert.ok(ref.users > 20 && ref.users < nu);
  for (const b of [2, 7, nu, undefined]) {
    const r = run(b);
    assert.deepEqual(r.metrics, ref.metrics, `blockSize ${b}`);
    assert.deepEqual(r.perUser, ref.perUser);
  }
  let calls = 0;
  run(2);
  evaluateRanking({ backend, scorer: matrixScorer(s, ni), test: csr(tests), exclude: null, ks: [5], itemPopularity: pop, blockSize: 10, onProgress: (d, t) => (calls++, assert.ok(d <= t)) });
  assert.equal(calls, Math.ceil(ref.users / 10));
});

test('memory budget picks the block size', () => {
  const r = evaluateRanking(base({ memoryBudgetBytes: 2 * 6 * 4 }));
  assert.equal(r.blockSize, 2);
  assert.equal(evaluateRanking(base({ memoryBudgetBytes: 1 })).blockSize, 1);
  assert.deepEqual(r.metrics, evaluateRanking(base()).metrics);
});

test('popularity baseline gets recall 1 when the test items are the most popular unseen ones', () => {
  const rng = new Rng(11);
  const ni = 30;
  const nu = 25;
  const pop = Float64Array.from({ length: ni }, (_, j) => (j * 7) % ni); // a permutation of 0..29
  const order = Array.from({ length: ni }, (_, j) => j).sort((a, b) => pop[b] - pop[a]);
  const train: number[][] = [];
  const tests: number[][] = [];
  for (let u = 0; u < nu; u++) {
    const seen = new Set([order[0], order[1], ...Array.from({ length: 4 }, () => order[rng.int(10)])]); // popular items
    train.push([...seen]);
    tests.push(order.filter((j) => !seen.has(j)).slice(0, 3));
  }
  const r = popularityBaseline({ backend, test: csr(tests), exclude: csr(train), ks: [3, 10], itemPopularity: pop });
  close(r.metrics, { 'recall@3': 1, 'ndcg@3': 1, 'precision@3': 1, 'recall@10': 1 });
  // Without the exclusion the seen popular items crowd the top-3 out.
  const noExcl = popularityBaseline({ backend, test: csr(tests), exclude: null, ks: [3], itemPopularity: pop });
  assert.ok(noExcl.metrics['recall@3'] <= 1 / 3);
});

test('popularity scorer: ties broken by lower index, exact for huge counts', () => {
  const sc = popularityScorer(Float64Array.from([3, 5, 5, 2 ** 30 + 1, 2 ** 30]));
  const out = new Float32Array(5);
  sc.scoreUsers(Int32Array.from([0]), out);
  const idx = new Int32Array(5);
  backend.topkRows(out, 1, 5, 5, idx, new Float32Array(5));
  assert.deepEqual([...idx], [3, 4, 1, 2, 0]);
});

test('input validation', () => {
  assert.throws(() => evaluateRanking(base({ ks: [0] })), RangeError);
  assert.throws(() => evaluateRanking(base({ itemPopularity: new Float64Array(5) })), RangeError);
  assert.throws(() => evaluateRanking(base({ test: csr([[7], [], []]) })), RangeError);
  assert.throws(() => evaluateRanking(base({ blockSize: 0 })), RangeError);
  assert.throws(() => evaluateRanking(base({ users: Int32Array.from([3]) })), RangeError);
});

test('format: table with model and baseline columns', () => {
  const model = evaluateRanking(base());
  const pop = popularityBaseline({ ...base(), scorer: undefined } as never);
  const s = formatMetricsTable([
    { name: 'model', result: model },
    { name: 'popularity', result: pop },
  ]);
  const lines = s.split('\n');
  assert.match(lines[0], /^metric\s+model\s+popularity\s+Δ$/);
  assert.equal(lines.length, 1 + 18);
  assert.match(lines[1], /^recall@1\s+0\.1111\s+/);
  assert.ok(lines.every((l) => l.length === lines[0].length));
  assert.match(formatMetricsTable([{ name: 'm', result: { 'recall@5': NaN } }]), /recall@5\s+–/);
});
