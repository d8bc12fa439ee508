/**
 * From an interaction log and a split to what training and evaluation consume: the training pairs, each
 * user's training items (excluded when ranking), validation and test targets per user, item popularity.
 */
import { csrFromPairs, type Csr } from './csr.ts';
import type { Interactions, Split } from './types.ts';

export interface Prepared {
  numUsers: number;
  numItems: number;
  trainUsers: Int32Array;
  trainItems: Int32Array;
  /** Training items per user (deduplicated). */
  seen: Csr;
  /** Training + validation items per user: what is excluded when ranking for the test set. */
  seenWithVal: Csr;
  val: Csr;
  test: Csr;
  /** Training interactions per item. */
  itemCounts: Float64Array;
}

function pick(a: Int32Array, rows: Int32Array): Int32Array {
  const out = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) out[i] = a[rows[i]];
  return out;
}

export function prepare(data: Interactions, split: Split): Prepared {
  const numUsers = data.userVocab.size;
  const numItems = data.itemVocab.size;
  const trainUsers = pick(data.users, split.train);
  const trainItems = pick(data.items, split.train);
  const valUsers = pick(data.users, split.val);
  const valItems = pick(data.items, split.val);
  const itemCounts = new Float64Array(numItems);
  for (let i = 0; i < trainItems.length; i++) itemCounts[trainItems[i]]++;
  const both = (a: Int32Array, b: Int32Array) => {
    const out = new Int32Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  return {
    numUsers,
    numItems,
    trainUsers,
    trainItems,
    seen: csrFromPairs(numUsers, trainUsers, trainItems, true),
    seenWithVal: csrFromPairs(numUsers, both(trainUsers, valUsers), both(trainItems, valItems), true),
    val: csrFromPairs(numUsers, valUsers, valItems, true),
    test: csrFromPairs(numUsers, pick(data.users, split.test), pick(data.items, split.test), true),
    itemCounts,
  };
}
