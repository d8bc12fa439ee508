/**
 * The logQ mixture, in one place: for every softmax column j,
 *   logQ_j = log Σ_s E_s[count of item j in one batch]   over every source s of the recipe,
 * which is log(B·p_j) with in-batch negatives alone (Yi et al. 2019) and the mixture proposal of Mixed Negative
 * Sampling (Yang et al. 2020) when random negatives are added. Columns flagged `fixedLogQ` (mined hard
 * negatives: chosen, not sampled) keep their own logq; a column no source samples gets 0 (no correction)
 * rather than an infinite bias. The loss subtracts logQ from the logits (colBias = −logQ).
 */
import type { NegativeSource } from './source.ts';

/** Writes the mixture log expected count of `ids` (a batch of `batchSize` rows) into `out`; `tmp` is scratch. */
export function mixtureLogQ(
  sources: NegativeSource[],
  ids: Int32Array,
  batchSize: number,
  out: Float32Array,
  tmp: Float32Array,
  fixed: Array<[at: number, logq: Float32Array, length: number]>,
): void {
  const N = ids.length;
  sources[0].logExpectedCount(ids, batchSize, out);
  for (let s = 1; s < sources.length; s++) {
    sources[s].logExpectedCount(ids, batchSize, tmp);
    for (let j = 0; j < N; j++) {
      const a = out[j];
      const b = tmp[j];
      const m = a > b ? a : b;
      out[j] = m === -Infinity ? -Infinity : m + Math.log(Math.exp(a - m) + Math.exp(b - m));
    }
  }
  for (let j = 0; j < N; j++) if (out[j] === -Infinity) out[j] = 0;
  // Mined columns are not sampled: they keep their own logq (0 = "present once, with certainty", no correction).
  for (const [at, lq, len] of fixed) out.set(lq.subarray(0, len), at);
}
