/**
 * Scorers: what full-corpus evaluation ranks with. A scorer fills a users × numItems block of scores
 * (row-major, one row per user, higher = better); the evaluator owns the block buffer, so memory stays
 * bounded by the block size the evaluator picks, whatever the catalogue size.
 */
import type { Backend } from '../compute/backend.ts';

export interface Scorer {
  /** Number of columns of every score row (the catalogue size). */
  readonly numItems: number;
  /**
   * Writes the scores of `users` into out[0 .. users.length × numItems): row r holds user users[r]'s score
   * for every item. `out` may be longer than needed; entries past the block are left alone.
   */
  scoreUsers(users: Int32Array, out: Float32Array): void;
}

/**
 * Produces the embeddings of a block of users into out[0 .. users.length × dim) (row-major). Lets towers with
 * features or sequences plug in without materialising every user's embedding at once.
 */
export type UserEmbeddingFn = (users: Int32Array, out: Float32Array) => void;

/**
 * Dot-product scorer: score(u, j) = ⟨userEmb_u, itemEmb_j⟩, one gemm per block (C = U · Iᵀ, transB).
 * Pass L2-normalised embeddings for cosine scoring. `userEmb` is either a numUsers × dim table or a
 * callback that computes a block of user embeddings on demand.
 */
export function embeddingScorer(
  backend: Pick<Backend, 'gemm'>,
  userEmb: Float32Array | UserEmbeddingFn,
  itemEmb: Float32Array,
  dim: number,
  numItems: number,
): Scorer {
  if (!Number.isInteger(dim) || dim <= 0) throw new RangeError(`embeddingScorer: dim must be a positive integer, got ${dim}`);
  if (itemEmb.length < numItems * dim) {
    throw new RangeError(`embeddingScorer: itemEmb has ${itemEmb.length} floats, need numItems × dim = ${numItems * dim}`);
  }
  if (userEmb instanceof Float32Array && userEmb.length % dim !== 0) {
    throw new RangeError(`embeddingScorer: userEmb length ${userEmb.length} is not a multiple of dim ${dim}`);
  }
  const items = itemEmb.subarray(0, numItems * dim);
  let block = new Float32Array(0);
  return {
    numItems,
    scoreUsers(users, out) {
      const m = users.length;
      if (m === 0) return;
      if (block.length < m * dim) block = new Float32Array(m * dim);
      const u = block.subarray(0, m * dim);
      if (userEmb instanceof Float32Array) {
        const numUsers = userEmb.length / dim;
        for (let r = 0; r < m; r++) {
          const id = users[r];
          if (id < 0 || id >= numUsers) throw new RangeError(`embeddingScorer: user ${id} outside 0..${numUsers - 1}`);
          u.set(userEmb.subarray(id * dim, (id + 1) * dim), r * dim);
        }
      } else {
        userEmb(users, u);
      }
      backend.gemm(false, true, m, numItems, dim, 1, u, items, 0, out.subarray(0, m * numItems));
    },
  };
}

/**
 * Most-popular scorer: every user gets the same row, ordered by train count (descending), ties broken by
 * the lower item index. The score written is numItems − rank under that order (not the raw count), so the
 * order is strict and exact in float32 even for counts above 2^24, and does not depend on the top-k tie rule.
 */
export function popularityScorer(itemCounts: Float64Array): Scorer {
  const numItems = itemCounts.length;
  const order = popularityOrder(itemCounts);
  const row = new Float32Array(numItems);
  for (let rank = 0; rank < numItems; rank++) row[order[rank]] = numItems - rank;
  return {
    numItems,
    scoreUsers(users, out) {
      for (let r = 0; r < users.length; r++) out.set(row, r * numItems);
    },
  };
}

/** Item indices sorted by count descending, ties by index ascending (deterministic). */
export function popularityOrder(itemCounts: Float64Array): Int32Array {
  const order = new Int32Array(itemCounts.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => itemCounts[b] - itemCounts[a] || a - b);
  return order;
}
