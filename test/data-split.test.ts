import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csrRow } from '../src/data/csr.ts';
import { allRows, historiesByUser, itemPopularity, itemsByUser, nonEmptyRows, trainPositives } from '../src/data/positives.ts';
import { splitInteractions } from '../src/data/split.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { Vocab, type Interactions, type Split } from '../src/data/types.ts';
import { Rng } from '../src/util/rng.ts';

/** A log from (user, item, time) triples; ids are the numbers as strings. */
function log(triples: [number, number, number][]): Interactions {
  return {
    source: 'test',
    users: Int32Array.from(triples, (t) => t[0]),
    items: Int32Array.from(triples, (t) => t[1]),
    times: Float64Array.from(triples, (t) => t[2]),
    ratings: null,
    userVocab: Vocab.from(Array.from({ length: 1 + Math.max(...triples.map((t) => t[0])) }, (_, k) => String(k))),
    itemVocab: Vocab.from(Array.from({ length: 1 + Math.max(...triples.map((t) => t[1])) }, (_, k) => String(k))),
    userFeatures: [],
    itemFeatures: [],
  };
}

/** Rows shuffled so that file order is not time order. */
function shuffledSynthetic(seed: number): Interactions {
  const d = generateSynthetic({ users: 300, items: 500, clusters: 6, zipf: 1, seed });
  const perm = new Rng(seed + 1).shuffle(Int32Array.from(d.users.keys()));
  return { ...d, users: perm.map((r) => d.users[r]), items: perm.map((r) => d.items[r]), times: Float64Array.from(perm, (r) => d.times![r]) };
}

function assertPartition(s: Split, n: number): void {
  const seen = new Uint8Array(n);
  for (const part of [s.train, s.val, s.test]) {
    for (let k = 0; k < part.length; k++) {
      assert.equal(seen[part[k]], 0, `row ${part[k]} in two parts`);
      seen[part[k]] = 1;
      if (k > 0) assert.ok(part[k] > part[k - 1], 'ascending');
    }
  }
  assert.equal(s.train.length + s.val.length + s.test.length, n, 'covers all rows');
}

test('random split: seeded, disjoint, covering, with the requested sizes', () => {
  const d = shuffledSynthetic(1);
  const n = d.users.length;
  const a = splitInteractions(d, { kind: 'random', val: 0.1, test: 0.2, seed: 5 });
  assertPartition(a, n);
  assert.equal(a.test.length, Math.round(n * 0.2));
  assert.equal(a.val.length, Math.round(n * 0.1));
  assert.deepEqual(splitInteractions(d, { kind: 'random', val: 0.1, test: 0.2, seed: 5 }), a);
  assert.notDeepEqual(splitInteractions(d, { kind: 'random', val: 0.1, test: 0.2, seed: 6 }).test, a.test);
  assert.match(a.description, /^random\(val=0.1,test=0.2,seed=5\)$/);
});

test('temporal split: a global time cut, ties kept on one side', () => {
  const d = shuffledSynthetic(2);
  const s = splitInteractions(d, { kind: 'temporal', val: 0.1, test: 0.1 });
  assertPartition(s, d.users.length);
  const t = d.times!;
  const max = (rows: Int32Array) => Math.max(...Array.from(rows, (r) => t[r]));
  const min = (rows: Int32Array) => Math.min(...Array.from(rows, (r) => t[r]));
  assert.ok(max(s.train) < min(s.val) && max(s.val) < min(s.test));
  assert.ok(Math.abs(s.test.length - d.users.length * 0.1) < 0.02 * d.users.length);
  // Ten events at times 0..4, two per time: a 30% test cut (at 7) lands inside the tie group 6..7; equally near
  // both edges, it moves to the later one, so only the two time-4 events are test.
  const ties = log(Array.from({ length: 10 }, (_, k) => [k % 3, k, Math.floor(k / 2)] as [number, number, number]));
  const c = splitInteractions(ties, { kind: 'temporal', val: 0, test: 0.3 });
  assertPartition(c, 10);
  const testTimes = new Set(Array.from(c.test, (r) => ties.times![r]));
  const trainTimes = new Set(Array.from(c.train, (r) => ties.times![r]));
  for (const x of testTimes) assert.ok(!trainTimes.has(x), `time ${x} on both sides`);
  assert.equal(c.test.length, 2);
  // 40% (cut at 6) falls on a group boundary and stays.
  assert.equal(splitInteractions(ties, { kind: 'temporal', val: 0, test: 0.4 }).test.length, 4);
});

test('leave-one-out: last by time is test, second last val, short histories stay in train', () => {
  // User 0: times out of row order; user 1 has only two events; user 2 has a tie at its last time.
  const d = log([
    [0, 1, 30],
    [0, 2, 10],
    [1, 3, 5],
    [0, 3, 20],
    [1, 4, 6],
    [0, 4, 5],
    [2, 1, 1],
    [2, 2, 9],
    [2, 3, 9],
  ]);
  const s = splitInteractions(d, { kind: 'loo' });
  assertPartition(s, 9);
  assert.deepEqual(Array.from(s.test), [0, 8]); // user 0's time-30 row; user 2's later row of the tie
  assert.deepEqual(Array.from(s.val), [3, 7]);
  assert.ok(s.train.includes(2) && s.train.includes(4), 'user 1 keeps both rows in train');

  const big = shuffledSynthetic(3);
  const l = splitInteractions(big, { kind: 'loo' });
  assertPartition(l, big.users.length);
  const t = big.times!;
  const lastTime = new Float64Array(big.userVocab.size).fill(-Infinity);
  for (let r = 0; r < t.length; r++) lastTime[big.users[r]] = Math.max(lastTime[big.users[r]], t[r]);
  assert.equal(l.test.length, big.userVocab.size, 'every synthetic user has >= 5 events');
  for (const r of l.test) assert.equal(t[r], lastTime[big.users[r]]);
  for (const r of l.train) assert.ok(t[r] < lastTime[big.users[r]]);
});

test('CSR helpers: deduplicated positives, held-out targets, histories, popularity', () => {
  const d = log([
    [0, 2, 3],
    [0, 1, 1],
    [0, 2, 2],
    [2, 0, 0],
  ]);
  const rows = allRows(d);
  const pos = trainPositives(d, rows);
  assert.equal(pos.rows, 3);
  assert.deepEqual(Array.from(csrRow(pos, 0)), [1, 2]);
  assert.deepEqual(Array.from(csrRow(pos, 1)), []);
  assert.deepEqual(Array.from(nonEmptyRows(pos)), [0, 2]);
  assert.deepEqual(Array.from(csrRow(itemsByUser(d, Int32Array.of(3)), 2)), [0]);
  assert.deepEqual(Array.from(csrRow(historiesByUser(d, rows), 0)), [1, 2, 2], 'time order, repeats kept');
  assert.deepEqual(Array.from(itemPopularity(d, rows)), [1, 1, 2]);
});
