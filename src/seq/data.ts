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

/**
 * The same data in another item index space (a saved model's vocabulary): items the model does not know are
 * dropped from the inputs, and a target it does not know becomes "no target" (−1). Returns the count dropped.
 */
export function remapItems(data: SeqData, dataItemIds: string[], modelItemIds: string[]): { data: SeqData; unknownTargets: number; unknownInputs: number } {
  const index = new Map(modelItemIds.map((id, i) => [id, i]));
  const map = Int32Array.from(dataItemIds, (id) => index.get(id) ?? -1);
  const identity = dataItemIds.length === modelItemIds.length && map.every((j, i) => j === i);
  if (identity) return { data, unknownTargets: 0, unknownInputs: 0 };
  let unknownInputs = 0;
  let unknownTargets = 0;
  // Inputs are counted on the test input (training + validation items) only.
  const csr = (m: Csr, count = false): Csr => {
    const offsets = new Int32Array(m.rows + 1);
    const cols: number[] = [];
    for (let u = 0; u < m.rows; u++) {
      for (let k = m.offsets[u]; k < m.offsets[u + 1]; k++) {
        const j = map[m.cols[k]];
        if (j >= 0) cols.push(j);
        else if (count) unknownInputs++;
      }
      offsets[u + 1] = cols.length;
    }
    return { rows: m.rows, offsets, cols: Int32Array.from(cols) };
  };
  const targets = (t: Int32Array, count = false) =>
    Int32Array.from(t, (j) => {
      if (j < 0) return -1;
      if (map[j] < 0 && count) unknownTargets++;
      return map[j];
    });
  const itemCounts = new Float64Array(modelItemIds.length);
  data.itemCounts.forEach((c, j) => map[j] >= 0 && (itemCounts[map[j]] += c));
  const train = csr(data.train);
  const trainVal = csr(data.trainVal, true);
  const out: SeqData = {
    ...data,
    numItems: modelItemIds.length,
    train,
    trainVal,
    valItem: targets(data.valItem),
    testItem: targets(data.testItem, true),
    trainSet: csr(data.trainSet),
    itemCounts,
  };
  return { data: out, unknownTargets, unknownInputs };
}
