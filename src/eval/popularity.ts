/**
 * Item popularity statistics used by the beyond-accuracy metrics (popularity percentile, head/tail recall).
 * Popularity is the train interaction count of an item.
 */
import { popularityOrder } from './scorer.ts';

/** Per-item popularity statistics; see the field docs for the definitions. */
export interface PopularityStats {
  /**
   * Popularity percentile of each item: the empirical CDF of train counts,
   *   pct(j) = |{i : count_i ≤ count_j}| / numItems   ∈ (0, 1],
   * so the most popular item(s) get exactly 1 and tied items share a value (ties never depend on item index).
   * A recommender that only surfaces blockbusters scores near 1; one that reaches into the long tail lower.
   */
  percentile: Float64Array;
  /**
   * 1 for head items: the ⌈headFraction × numItems⌉ most popular items by train count, ties broken by the
   * lower item index (so the head has exactly that size). 0 for the tail (everything else).
   */
  head: Uint8Array;
  headSize: number;
}

export function popularityStats(itemCounts: Float64Array, headFraction = 0.2): PopularityStats {
  if (!(headFraction >= 0 && headFraction <= 1)) throw new RangeError(`headFraction must be in [0, 1], got ${headFraction}`);
  const n = itemCounts.length;
  const order = popularityOrder(itemCounts); // count descending, ties by index
  const percentile = new Float64Array(n);
  // A tie group occupying descending positions q..p has |{i : count_i ≤ count}| = n − q.
  for (let p = n - 1; p >= 0; ) {
    let q = p;
    while (q > 0 && itemCounts[order[q - 1]] === itemCounts[order[p]]) q--;
    const value = (n - q) / n;
    for (let i = q; i <= p; i++) percentile[order[i]] = value;
    p = q - 1;
  }
  // The epsilon keeps e.g. 0.2 × 15 = 3.0000000000000004 from rounding up to 4.
  const headSize = Math.min(n, Math.ceil(headFraction * n - 1e-9));
  const head = new Uint8Array(n);
  for (let i = 0; i < headSize; i++) head[order[i]] = 1;
  return { percentile, head, headSize };
}
