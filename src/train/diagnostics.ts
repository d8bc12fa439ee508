/**
 * Negative-sampling diagnostics, computed at each validation on a few training batches with the exact
 * columns and masks the loss sees (TrainStep.inspect):
 *  - fnRate: share of the negatives actually used (not masked) that are known training positives of the
 *    row's user — false negatives the loss pushes away;
 *  - effectiveNegatives: exp of the entropy of the softmax restricted to the used negatives, averaged over
 *    rows (how many negatives effectively carry the gradient);
 *  - negSimMean / negSimMax: raw cosine similarity of the used negatives (hardness);
 *  - maskedPerRow: candidates removed per row by the masks;
 *  - negPopCorr: Pearson correlation, over items, between log(1 + train count) and log(1 + times the item
 *    was a softmax column so far in training) — how strongly popular items are over-sampled as negatives;
 *  - negMassPopCorr: the same with the softmax probability mass each item received as a negative in the
 *    diagnostic batches — what logQ is meant to flatten.
 */
import type { Csr } from '../data/csr.ts';
import type { Backend } from '../compute/backend.ts';
import { maskedLogits } from '../loss/masked-logits.ts';
import { Rng } from '../util/rng.ts';
import type { TrainStep } from './step.ts';

export interface Diagnostics {
  fnRate: number;
  effectiveNegatives: number;
  negSimMean: number;
  negSimMax: number;
  maskedPerRow: number;
  negPopCorr: number;
  negMassPopCorr: number;
}

export interface DiagnosticsInput {
  backend: Backend;
  step: TrainStep;
  trainUsers: Int32Array;
  trainItems: Int32Array;
  /** Training items per user, sorted within each row (as csrFromPairs(..., dedupe) builds them). */
  seen: Csr;
  itemCounts: Float64Array;
  /** Times each item has been a softmax column so far (accumulated by the step). */
  columnCounts: Float64Array;
  batchSize: number;
  batches: number;
  seed: number;
}

function hasItem(m: Csr, row: number, item: number): boolean {
  let lo = m.offsets[row];
  let hi = m.offsets[row + 1] - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = m.cols[mid];
    if (v === item) return true;
    if (v < item) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) (mx += x[i]), (my += y[i]);
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i] - mx;
    const b = y[i] - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : 0;
}

export function computeDiagnostics(inp: DiagnosticsInput): Diagnostics {
  const rng = new Rng(inp.seed);
  const n = inp.trainUsers.length;
  const B = Math.min(inp.batchSize, n);
  const numItems = inp.itemCounts.length;
  const mass = new Float64Array(numItems);
  let used = 0;
  let fn = 0;
  let simSum = 0;
  let simMax = -Infinity;
  let effSum = 0;
  let rows = 0;
  let masked = 0;
  for (let k = 0; k < inp.batches; k++) {
    const users = new Int32Array(B);
    const items = new Int32Array(B);
    for (let r = 0; r < B; r++) {
      const row = rng.int(n);
      users[r] = inp.trainUsers[row];
      items[r] = inp.trainItems[row];
    }
    const { args, cols } = inp.step.inspect(users, items, rng);
    const { z, sim } = maskedLogits(inp.backend, args);
    const N = args.N;
    for (let i = 0; i < B; i++) {
      const o = i * N;
      let m = -Infinity;
      for (let j = 0; j < N; j++) if (j !== i && z[o + j] > m) m = z[o + j];
      let s = 0;
      for (let j = 0; j < N; j++) if (j !== i && z[o + j] !== -Infinity) s += Math.exp(z[o + j] - m);
      let h = 0;
      for (let j = 0; j < N; j++) {
        if (j === i) continue;
        if (z[o + j] === -Infinity) {
          masked++;
          continue;
        }
        const p = Math.exp(z[o + j] - m) / s;
        if (p > 0) h -= p * Math.log(p);
        used++;
        simSum += sim[o + j];
        if (sim[o + j] > simMax) simMax = sim[o + j];
        // Item columns only (same-tower query columns are not items).
        if (j < cols.N) {
          if (hasItem(inp.seen, users[i], cols.ids[j])) fn++;
          mass[cols.ids[j]] += p;
        }
      }
      if (s > 0) {
        effSum += Math.exp(h);
        rows++;
      }
    }
  }
  const logPop = Float64Array.from(inp.itemCounts, (c) => Math.log1p(c));
  return {
    fnRate: used ? fn / used : 0,
    effectiveNegatives: rows ? effSum / rows : 0,
    negSimMean: used ? simSum / used : 0,
    negSimMax: used ? simMax : 0,
    maskedPerRow: (masked / Math.max(1, inp.batches * B)),
    negPopCorr: pearson(logPop, Float64Array.from(inp.columnCounts, (c) => Math.log1p(c))),
    negMassPopCorr: pearson(logPop, Float64Array.from(mass, (c) => Math.log1p(c * 1000))),
  };
}
