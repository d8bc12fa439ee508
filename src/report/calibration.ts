/**
 * Popularity calibration: where in the catalogue's popularity ranking a model's recommendations fall.
 * Items are ranked by training interactions (most popular first, ties by lower index, as the popularity
 * baseline ranks them) and cut into deciles of equal item count. A model that recommends like the
 * interaction log puts about the interactions' share into each decile; a uniform one 10% everywhere; a
 * popularity-biased one far more than the log into decile 1.
 */
import { popularityOrder } from '../eval/scorer.ts';

export const DECILES = 10;

/** Decile (0 = most popular) of every item. */
export function itemDeciles(itemCounts: Float64Array): Uint8Array {
  const n = itemCounts.length;
  const order = popularityOrder(itemCounts);
  const dec = new Uint8Array(n);
  for (let r = 0; r < n; r++) dec[order[r]] = Math.min(DECILES - 1, Math.floor((r * DECILES) / n));
  return dec;
}

/** Share of `weights` (summed per item) in each popularity decile; all zeros when the total is 0. */
export function decileShares(deciles: Uint8Array, weights: Float64Array): number[] {
  if (weights.length !== deciles.length) throw new RangeError(`decileShares: ${weights.length} weights for ${deciles.length} items`);
  const sums = new Array<number>(DECILES).fill(0);
  let total = 0;
  for (let j = 0; j < weights.length; j++) {
    sums[deciles[j]] += weights[j];
    total += weights[j];
  }
  return sums.map((s) => (total > 0 ? s / total : 0));
}

/** The catalogue side of the plot: items per decile and the share of training interactions per decile. */
export function catalogueDeciles(itemCounts: Float64Array): { items: number[]; interactionShare: number[] } {
  const dec = itemDeciles(itemCounts);
  return { items: decileShares(dec, new Float64Array(itemCounts.length).fill(1)).map((s) => Math.round(s * itemCounts.length)), interactionShare: decileShares(dec, itemCounts) };
}
