/**
 * From an interaction log and a leave-last-one-out split to what sequential training consumes: each user's
 * training items in time order (by (time, row): the line order of a `user item item …` file), the validation
 * item (second-last) and test item (last) per user, and the inputs each is predicted from — the training
 * sequence for validation, training + validation for test (as SASRec).
 */
import { csrFromPairs, type Csr } from '../data/csr.ts';
import type { Interactions, Split } from '../data/types.ts';

export interface SeqData {
  numUsers: number;
  numItems: number;
  /** Training items per user, in time order. */
  train: Csr;
  /** Training + validation items per user, in time order (the test input). */
  trainVal: Csr;
  /** Validation / test target per user (−1 when the user has none). */
  valItem: Int32Array;
  testItem: Int32Array;
  /** Training items per user, sorted and deduplicated (for negative exclusion). */
  trainSet: Csr;
  /** Training interactions per item. */
  itemCounts: Float64Array;
  /** Training interactions in all. */
  trainSize: number;
}

export function seqDataFrom(data: Interactions, split: Split): SeqData {
  const numUsers = data.userVocab.size;
  const numItems = data.itemVocab.size;
  const times = data.times;
  const byTime = (rows: Int32Array): Int32Array =>
    times ? Int32Array.from(rows).sort((a, b) => times[a] - times[b] || a - b) : rows;
  const pick = (rows: Int32Array, a: Int32Array) => Int32Array.from(rows, (r) => a[r]);
  const trainRows = byTime(split.train);
  const tvRows = byTime(Int32Array.from([...split.train, ...split.val]));
  const train = csrFromPairs(numUsers, pick(trainRows, data.users), pick(trainRows, data.items));
  const trainVal = csrFromPairs(numUsers, pick(tvRows, data.users), pick(tvRows, data.items));
  const valItem = new Int32Array(numUsers).fill(-1);
  const testItem = new Int32Array(numUsers).fill(-1);
  for (const r of split.val) valItem[data.users[r]] = data.items[r];
  for (const r of split.test) testItem[data.users[r]] = data.items[r];
  const itemCounts = new Float64Array(numItems);
  for (const r of split.train) itemCounts[data.items[r]]++;
  return {
    numUsers,
    numItems,
    train,
    trainVal,
    valItem,
    testItem,
    trainSet: csrFromPairs(numUsers, pick(split.train, data.users), pick(split.train, data.items), true),
    itemCounts,
    trainSize: split.train.length,
  };
}

/** Per-user targets as a CSR (one item per user that has one), for evaluateRanking. */
export function targetsCsr(items: Int32Array): Csr {
  const users: number[] = [];
  const cols: number[] = [];
  items.forEach((j, u) => {
    if (j >= 0) {
      users.push(u);
      cols.push(j);
    }
  });
  return csrFromPairs(items.length, Int32Array.from(users), Int32Array.from(cols));
}
