/**
 * Uncertainty over test users for `compare`: a 95 % bootstrap confidence interval of each recipe's mean
 * metric, and a paired bootstrap test of each recipe against the first (the same users, the same split, so
 * per-user differences cancel the users' own difficulty). Users are the resampling unit; with several seeds a
 * user's value is its mean over the seeds, so the interval covers user sampling, not seed-to-seed variation
 * (the ± std over seeds reports that). Fixed seed: the same results give the same intervals.
 */
import { Rng } from '../util/rng.ts';

export const BOOTSTRAP_RESAMPLES = 1000;
export const BOOTSTRAP_SEED = 20240607;

export interface Interval {
  mean: number;
  lo: number;
  hi: number;
}

export interface PairedTest extends Interval {
  /** Two-sided bootstrap p-value of "mean difference = 0" (≥ 1/resamples unless every difference is 0). */
  p: number;
}

/** Percentile of sorted values (linear interpolation, the R-7 / numpy default). */
function quantile(sorted: Float64Array, q: number): number {
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** Means of `resamples` bootstrap samples of x (users drawn with replacement); the draws depend only on seed and n. */
function bootMeans(x: Float64Array, resamples: number, seed: number): Float64Array {
  const n = x.length;
  const rng = new Rng(seed);
  const out = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[rng.int(n)];
    out[b] = s / n;
  }
  return out;
}

const mean = (x: Float64Array) => x.reduce((a, b) => a + b, 0) / x.length;

/** 95 % percentile-bootstrap interval of the mean of per-user values. */
export function bootstrapMean(x: Float64Array, resamples = BOOTSTRAP_RESAMPLES, seed = BOOTSTRAP_SEED): Interval {
  if (!x.length) return { mean: NaN, lo: NaN, hi: NaN };
  const m = bootMeans(x, resamples, seed).sort();
  return { mean: mean(x), lo: quantile(m, 0.025), hi: quantile(m, 0.975) };
}

/**
 * Paired bootstrap of mean(b − a) over the same users: 95 % interval of the difference and a two-sided
 * p-value, twice the share of resampled mean differences on the other side of zero from the observed one.
 */
export function pairedBootstrap(a: Float64Array, b: Float64Array, resamples = BOOTSTRAP_RESAMPLES, seed = BOOTSTRAP_SEED): PairedTest {
  if (a.length !== b.length) throw new RangeError(`pairedBootstrap: ${a.length} vs ${b.length} users`);
  if (!a.length) return { mean: NaN, lo: NaN, hi: NaN, p: NaN };
  const d = Float64Array.from(a, (x, i) => b[i] - x);
  const obs = mean(d);
  const m = bootMeans(d, resamples, seed).sort();
  let below = 0;
  let above = 0;
  for (const x of m) {
    if (x <= 0) below++;
    if (x >= 0) above++;
  }
  const allZero = d.every((x) => x === 0);
  const side = obs > 0 ? below : obs < 0 ? above : resamples;
  const p = allZero ? 1 : Math.min(1, Math.max(1 / resamples, (2 * side) / resamples));
  return { mean: obs, lo: quantile(m, 0.025), hi: quantile(m, 0.975), p };
}

/** Per-user mean over seeds of runs evaluated on the same users in the same order. */
export function meanOverSeeds(runs: Float64Array[]): Float64Array {
  const out = new Float64Array(runs[0]?.length ?? 0);
  for (const r of runs) {
    if (r.length !== out.length) throw new RangeError('meanOverSeeds: runs evaluated different users');
    for (let i = 0; i < r.length; i++) out[i] += r[i] / runs.length;
  }
  return out;
}
