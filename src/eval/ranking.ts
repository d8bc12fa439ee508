/**
 * Full-corpus ranking evaluation: every evaluated user is scored against the whole catalogue (no sampled
 * metrics, which are known to mis-rank models: Krichene & Rendle 2020). Users are scored in blocks whose
 * score buffer stays under a memory budget, the user's training items are masked to −∞, and the top-maxK
 * per row comes from backend.topkRows (never a full-row sort). Accumulation runs user by user in a fixed
 * order, so the metrics are bit-identical whatever the block size.
 *
 * Definitions, for a user u with test set T_u (test rows are treated as sets: duplicates count once) and
 * top-K list r_1..r_K (best first, training items removed):
 *   hits_K(u)      = |{i ≤ K : r_i ∈ T_u}|
 *   recall@K       = mean_u hits_K(u) / |T_u|
 *   precision@K    = mean_u hits_K(u) / K
 *   hr@K           = mean_u 1[hits_K(u) > 0]
 *   mrr@K          = mean_u 1 / (rank of the first hit), 0 when no hit within K
 *   ndcg@K         = mean_u DCG/IDCG, binary relevance: DCG = Σ_{i ≤ K, r_i ∈ T_u} 1/log2(i + 1),
 *                    IDCG = Σ_{i = 1}^{min(K, |T_u|)} 1/log2(i + 1)
 *   coverage@K     = |∪_u {r_1..r_K}| / numItems  (catalogue coverage)
 *   popPct@K       = mean over every filled slot (u, i ≤ K) of the popularity percentile of r_i
 *                    (empirical CDF of train counts, 1 = most popular; see popularity.ts)
 *   recallHead@K   = Σ_u |hits_K(u) ∩ H| / Σ_u |T_u ∩ H|, H = the top 20% items by train count
 *   recallTail@K   = the same over the tail (items not in H)
 * Head/tail recall is micro-averaged (total hits over total test items of the group) because most users
 * have few or no tail test items, which would make a per-user average noisy or undefined. It is NaN when
 * no evaluated user has a test item in that group.
 *
 * Exclusion: the user's `exclude` items (normally the training items) are set to −∞ before top-K, except
 * items that are also in the user's test set. The usual protocol (RecBole, LightGCN) dedupes so train and
 * test are disjoint; when they overlap (re-consumption), removing the item from the exclusion keeps it
 * retrievable, so a re-consumed item can still count as a hit instead of being an unreachable target.
 */
import type { Backend } from '../compute/backend.ts';
import type { Csr } from '../data/csr.ts';
import type { Scorer } from './scorer.ts';
import { popularityStats } from './popularity.ts';

/** Default cap on the block score buffer: 64 MiB of float32 (16 users per block at 1M items). */
export const DEFAULT_MEMORY_BUDGET_BYTES = 64 * 1024 * 1024;

export interface RankingOptions {
  backend: Pick<Backend, 'topkRows'>;
  scorer: Scorer;
  /** Held-out items per user (rows indexed by user id). */
  test: Csr;
  /** Items never to recommend per user (normally the training items), or null. Missing rows mean none. */
  exclude: Csr | null;
  /** Cut-offs, e.g. [10, 20, 50]. */
  ks: number[];
  /** Train interaction count per item (numItems entries): drives popPct and the head/tail split. */
  itemPopularity: Float64Array;
  /** Users to evaluate (default: all with ≥ 1 test item). Users without test items are skipped. */
  users?: Int32Array;
  /** Users scored per block (default: as many as fit in memoryBudgetBytes). An explicit value wins. */
  blockSize?: number;
  /** Budget for the block score buffer in bytes (default 64 MiB). */
  memoryBudgetBytes?: number;
  /** Fraction of items (by train popularity) forming the head (default 0.2). */
  headFraction?: number;
  /** Keep per-user recall@K and ndcg@K (in evaluation order) for paired significance tests. */
  keepPerUser?: boolean;
  /** Called after each block with (users done, users total). */
  onProgress?: (done: number, total: number) => void;
  /**
   * Count, per item, how many evaluated users get it in their top-K for this K (popularity-calibration
   * plots of `compare`). Off by default; K beyond the filled list counts what was filled.
   */
  countRecommendationsAt?: number;
}

export interface PerUserMetrics {
  /** The evaluated users, in the order of the value arrays. */
  users: Int32Array;
  /** Keys 'recall@K' and 'ndcg@K' for every K; one value per evaluated user. */
  values: Record<string, Float64Array>;
}

export interface EvalResult {
  /** Keys '<metric>@K' for metric in METRIC_NAMES and every K. */
  metrics: Record<string, number>;
  /** Number of users evaluated (those with ≥ 1 test item). */
  users: number;
  /** Wall time of the evaluation. */
  seconds: number;
  /** Users per block actually used. */
  blockSize: number;
  perUser?: PerUserMetrics;
  /** Per item: the number of evaluated users with it in their top-K; only with countRecommendationsAt. */
  recommendedCounts?: Float64Array;
}

/** Metric families, in report order. */
export const METRIC_NAMES = ['recall', 'ndcg', 'hr', 'mrr', 'precision', 'coverage', 'popPct', 'recallHead', 'recallTail'] as const;

export function evaluateRanking(opts: RankingOptions): EvalResult {
  const t0 = performance.now();
  const { backend, scorer, test, exclude, itemPopularity } = opts;
  const numItems = scorer.numItems;
  if (!Number.isInteger(numItems) || numItems <= 0) throw new RangeError(`evaluateRanking: scorer.numItems must be a positive integer, got ${numItems}`);
  if (itemPopularity.length !== numItems) {
    throw new RangeError(`evaluateRanking: itemPopularity has ${itemPopularity.length} entries, scorer has ${numItems} items`);
  }
  const ks = [...new Set(opts.ks)].sort((a, b) => a - b);
  if (ks.length === 0 || ks.some((k) => !Number.isInteger(k) || k <= 0)) {
    throw new RangeError(`evaluateRanking: ks must be positive integers, got [${opts.ks.join(', ')}]`);
  }
  const nK = ks.length;
  const maxK = ks[nK - 1];
  const kTop = Math.min(maxK, numItems); // slots that topkRows can fill

  const users = selectUsers(test, opts.users);
  const nUsers = users.length;
  const budget = opts.memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_BYTES;
  if (opts.blockSize !== undefined && !(Number.isInteger(opts.blockSize) && opts.blockSize > 0)) {
    throw new RangeError(`evaluateRanking: blockSize must be a positive integer, got ${opts.blockSize}`);
  }
  const block = Math.max(1, Math.min(nUsers, opts.blockSize ?? Math.floor(budget / (numItems * 4))));

  const { percentile, head } = popularityStats(itemPopularity, opts.headFraction ?? 0.2);
  // idcg[n] = Σ_{i=1}^{n} 1/log2(i+1); disc[p] = discount of 0-based rank p.
  const disc = new Float64Array(maxK);
  const idcg = new Float64Array(maxK + 1);
  for (let p = 0; p < maxK; p++) {
    disc[p] = 1 / Math.log2(p + 2);
    idcg[p + 1] = idcg[p] + disc[p];
  }

  const scores = new Float32Array(block * numItems);
  const topIdx = new Int32Array(block * kTop);
  const topVal = new Float32Array(block * kTop);
  // stamp[j] === epoch ⇔ j is in the current user's test set (a fresh epoch per user avoids clearing).
  const stamp = new Int32Array(numItems);
  let epoch = 0;
  // bestRank[j] = best (lowest) 0-based rank at which j was recommended to anyone; coverage@K counts < K.
  const bestRank = new Int32Array(numItems).fill(kTop);
  const slotPct = new Float64Array(kTop); // Σ percentile of the item at rank p, over users
  const slotFilled = new Float64Array(kTop); // number of users with rank p filled

  const sum = { recall: new Float64Array(nK), ndcg: new Float64Array(nK), hr: new Float64Array(nK), mrr: new Float64Array(nK), precision: new Float64Array(nK) };
  const headHits = new Float64Array(nK);
  const tailHits = new Float64Array(nK);
  let headTotal = 0;
  let tailTotal = 0;
  if (opts.countRecommendationsAt !== undefined && !(Number.isInteger(opts.countRecommendationsAt) && opts.countRecommendationsAt > 0)) {
    throw new RangeError(`evaluateRanking: countRecommendationsAt must be a positive integer, got ${opts.countRecommendationsAt}`);
  }
  const recCounts = opts.countRecommendationsAt !== undefined ? new Float64Array(numItems) : undefined;
  const countK = Math.min(opts.countRecommendationsAt ?? 0, kTop);
  const perUser = opts.keepPerUser ? { users, values: {} as Record<string, Float64Array> } : undefined;
  const perRecall: Float64Array[] = [];
  const perNdcg: Float64Array[] = [];
  if (perUser) {
    for (const k of ks) {
      perRecall.push((perUser.values[`recall@${k}`] = new Float64Array(nUsers)));
      perNdcg.push((perUser.values[`ndcg@${k}`] = new Float64Array(nUsers)));
    }
  }

  /** Marks the test set of `u` under a fresh epoch; returns [|T_u|, |T_u ∩ head|]. */
  const markTest = (u: number): [number, number] => {
    epoch++;
    let n = 0;
    let nHead = 0;
    for (let q: number = test.offsets[u], end: number = test.offsets[u + 1]; q < end; q++) {
      const j = test.cols[q];
      if (j < 0 || j >= numItems) throw new RangeError(`evaluateRanking: test item ${j} of user ${u} outside 0..${numItems - 1}`);
      if (stamp[j] !== epoch) {
        stamp[j] = epoch;
        n++;
        nHead += head[j];
      }
    }
    return [n, nHead];
  };

  for (let b0 = 0; b0 < nUsers; b0 += block) {
    const bUsers = users.subarray(b0, Math.min(nUsers, b0 + block));
    const m = bUsers.length;
    scorer.scoreUsers(bUsers, scores);
    if (exclude) {
      for (let r = 0; r < m; r++) {
        const u = bUsers[r];
        if (u >= exclude.rows) continue;
        markTest(u);
        const row = r * numItems;
        for (let q: number = exclude.offsets[u], end: number = exclude.offsets[u + 1]; q < end; q++) {
          const j = exclude.cols[q];
          if (j < 0 || j >= numItems) throw new RangeError(`evaluateRanking: excluded item ${j} of user ${u} outside 0..${numItems - 1}`);
          if (stamp[j] !== epoch) scores[row + j] = -Infinity;
        }
      }
    }
    backend.topkRows(scores, m, numItems, kTop, topIdx, topVal);

    for (let r = 0; r < m; r++) {
      const ui = b0 + r;
      const [nTest, nHeadTest] = markTest(bUsers[r]);
      headTotal += nHeadTest;
      tailTotal += nTest - nHeadTest;
      let hits = 0;
      let hHits = 0;
      let dcg = 0;
      let firstHit = -1;
      let ki = 0;
      const record = (): void => {
        const k = ks[ki];
        const recall = hits / nTest;
        const ndcg = dcg / idcg[Math.min(k, nTest)];
        sum.recall[ki] += recall;
        sum.ndcg[ki] += ndcg;
        sum.precision[ki] += hits / k;
        sum.hr[ki] += hits > 0 ? 1 : 0;
        sum.mrr[ki] += firstHit >= 0 ? 1 / (firstHit + 1) : 0;
        headHits[ki] += hHits;
        tailHits[ki] += hits - hHits;
        if (perUser) {
          perRecall[ki][ui] = recall;
          perNdcg[ki][ui] = ndcg;
        }
      };
      const base = r * kTop;
      for (let p = 0; p < kTop; p++) {
        const j = topIdx[base + p];
        if (j < 0) break; // only −∞ left: the rest of the list is empty
        if (p < bestRank[j]) bestRank[j] = p;
        if (recCounts && p < countK) recCounts[j]++;
        slotPct[p] += percentile[j];
        slotFilled[p]++;
        if (stamp[j] === epoch) {
          hits++;
          hHits += head[j];
          dcg += disc[p];
          if (firstHit < 0) firstHit = p;
        }
        for (; ki < nK && ks[ki] === p + 1; ki++) record();
      }
      for (; ki < nK; ki++) record(); // cut-offs beyond the filled part of the list
    }
    opts.onProgress?.(b0 + m, nUsers);
  }

  // Coverage and popPct per K from the per-rank accumulators.
  const coveredAt = new Float64Array(kTop + 1); // coveredAt[p] = items whose best rank is p
  for (let j = 0; j < numItems; j++) coveredAt[bestRank[j]]++;
  const metrics: Record<string, number> = {};
  const fam: Record<string, number[]> = Object.fromEntries(METRIC_NAMES.map((n) => [n, []]));
  let covered = 0;
  let pctSum = 0;
  let filled = 0;
  let p = 0;
  for (let ki = 0; ki < nK; ki++) {
    const k = ks[ki];
    for (; p < Math.min(k, kTop); p++) {
      covered += coveredAt[p];
      pctSum += slotPct[p];
      filled += slotFilled[p];
    }
    fam.recall.push(sum.recall[ki] / nUsers);
    fam.ndcg.push(sum.ndcg[ki] / nUsers);
    fam.hr.push(sum.hr[ki] / nUsers);
    fam.mrr.push(sum.mrr[ki] / nUsers);
    fam.precision.push(sum.precision[ki] / nUsers);
    fam.coverage.push(covered / numItems);
    fam.popPct.push(filled > 0 ? pctSum / filled : NaN);
    fam.recallHead.push(headTotal > 0 ? headHits[ki] / headTotal : NaN);
    fam.recallTail.push(tailTotal > 0 ? tailHits[ki] / tailTotal : NaN);
  }
  for (const name of METRIC_NAMES) ks.forEach((k, ki) => (metrics[`${name}@${k}`] = nUsers > 0 ? fam[name][ki] : NaN));

  const result: EvalResult = { metrics, users: nUsers, seconds: (performance.now() - t0) / 1000, blockSize: block };
  if (perUser) result.perUser = perUser;
  if (recCounts) result.recommendedCounts = recCounts;
  return result;
}

/** The users to evaluate: the given ones (validated, minus those without test items) or all with test items. */
function selectUsers(test: Csr, given: Int32Array | undefined): Int32Array {
  const has = (u: number): boolean => test.offsets[u + 1] > test.offsets[u];
  if (given) {
    for (const u of given) if (u < 0 || u >= test.rows) throw new RangeError(`evaluateRanking: user ${u} outside 0..${test.rows - 1}`);
    return given.filter(has);
  }
  let n = 0;
  for (let u = 0; u < test.rows; u++) if (has(u)) n++;
  const out = new Int32Array(n);
  for (let u = 0, w = 0; u < test.rows; u++) if (has(u)) out[w++] = u;
  return out;
}
