/**
 * LCE training and reranking over PRECOMPUTED candidate features (text/rerank-features.ts): the target
 * retriever's top-k per query with one feature row per candidate. A group is one positive found in the list
 * ("localized": positives below the top-k are not used) plus G − 1 negatives drawn uniformly from the list's
 * non-positives, redrawn every epoch — the same recipe as rerank/pipeline.ts on the recommender side.
 * Features are z-scored with the training candidates' mean and std (kept with the model).
 */
import type { RankedLists } from '../mine/types.ts';
import type { Rng } from '../util/rng.ts';
import type { CandidateFeatures } from './candidate-features.ts';
import type { LceReranker } from './lce.ts';

export interface Standardizer {
  mean: Float32Array;
  std: Float32Array;
}

/** Mean/std per feature over the filled slots (std floored at 1e-6). */
export function fitStandardizer(cf: CandidateFeatures): Standardizer {
  const { F } = cf;
  const mean = new Float64Array(F);
  const sq = new Float64Array(F);
  let n = 0;
  for (let s = 0; s < cf.lists.ids.length; s++) {
    if (cf.lists.ids[s] < 0) continue;
    n++;
    for (let f = 0; f < F; f++) {
      const v = cf.x[s * F + f];
      mean[f] += v;
      sq[f] += v * v;
    }
  }
  const m = Float32Array.from(mean, (v) => v / Math.max(1, n));
  const sd = Float32Array.from(sq, (v, f) => Math.max(1e-6, Math.sqrt(Math.max(0, v / Math.max(1, n) - m[f] * m[f]))));
  return { mean: m, std: sd };
}

/** A standardized copy of cf's features. */
export function standardize(cf: CandidateFeatures, st: Standardizer): CandidateFeatures {
  const x = new Float32Array(cf.x.length);
  for (let s = 0; s < cf.lists.ids.length; s++) for (let f = 0; f < cf.F; f++) x[s * cf.F + f] = (cf.x[s * cf.F + f] - st.mean[f]) / st.std[f];
  return { ...cf, x };
}

export interface FeatureGroups {
  Q: number;
  G: number;
  x: Float32Array;
}

/** Groups (positive first) for every positive of a row inside its list; rows with < G − 1 negatives are skipped. */
export function drawFeatureGroups(cf: CandidateFeatures, positives: (row: number) => Set<number>, G: number, rng: Rng): FeatureGroups {
  const { F } = cf;
  const { k, ids } = cf.lists;
  const slots: number[] = [];
  const neg: number[] = [];
  for (let r = 0; r < cf.lists.rows; r++) {
    const pos = positives(r);
    if (!pos.size) continue;
    neg.length = 0;
    const posSlots: number[] = [];
    for (let i = 0; i < k; i++) {
      const d = ids[r * k + i];
      if (d < 0) continue;
      (pos.has(d) ? posSlots : neg).push(r * k + i);
    }
    if (neg.length < G - 1) continue;
    for (const p of posSlots) {
      slots.push(p);
      for (let g = 0; g < G - 1; g++) {
        const j = g + rng.int(neg.length - g);
        [neg[g], neg[j]] = [neg[j], neg[g]];
        slots.push(neg[g]);
      }
    }
  }
  const x = new Float32Array(slots.length * F);
  slots.forEach((s, i) => x.set(cf.x.subarray(s * F, (s + 1) * F), i * F));
  return { Q: slots.length / G, G, x };
}

export interface FeatureTrainOptions {
  epochs: number;
  /** Groups per update. */
  batch: number;
  G: number;
  rng: Rng;
}

/** Trains on groups redrawn every epoch; returns the mean loss per epoch. */
export function trainOnFeatures(model: LceReranker, cf: CandidateFeatures, positives: (row: number) => Set<number>, o: FeatureTrainOptions): number[] {
  const { F } = cf;
  const losses: number[] = [];
  for (let e = 0; e < o.epochs; e++) {
    const g = drawFeatureGroups(cf, positives, o.G, o.rng);
    const order = Array.from({ length: g.Q }, (_, i) => i);
    o.rng.shuffle(order);
    let sum = 0;
    let nb = 0;
    for (let s = 0; s < g.Q; s += o.batch) {
      const qs = order.slice(s, s + o.batch);
      const x = new Float32Array(qs.length * o.G * F);
      qs.forEach((q, i) => x.set(g.x.subarray(q * o.G * F, (q + 1) * o.G * F), i * o.G * F));
      sum += model.trainGroups(x, qs.length, o.G);
      nb++;
    }
    losses.push(nb ? sum / nb : NaN);
  }
  return losses;
}

/** Each row's list re-ordered by the reranker's scores (ties keep list order); scores are the reranker's. */
export function rerankLists(model: LceReranker, cf: CandidateFeatures): RankedLists {
  const { rows, k } = cf.lists;
  const ids = new Int32Array(rows * k).fill(-1);
  const scores = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    let n = 0;
    while (n < k && cf.lists.ids[r * k + n] >= 0) n++;
    if (!n) continue;
    const s = model.forward(cf.x.subarray(r * k * cf.F, (r * k + n) * cf.F), n);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
    order.forEach((i, j) => {
      ids[r * k + j] = cf.lists.ids[r * k + i];
      scores[r * k + j] = s[i];
    });
  }
  return { rows, k, ids, scores };
}
