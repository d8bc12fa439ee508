/**
 * Picks hard negatives from ranked candidates while filtering likely false negatives, with the semantics of
 * sentence-transformers' `mine_hard_negatives` (names there in brackets):
 *  - known positives of the row are skipped first; ranks are then counted over the remaining candidates,
 *    0-based, in list order (ST retrieves range_max + #positives and drops positives before the window);
 *  - rank window: keep ranks in [rankStart, rankEnd) ([range_min, range_max)); the top ranks of a strong
 *    retriever are the likeliest unlabelled positives (RocketQA);
 *  - maxScore (max_score): drop a candidate whose score > maxScore;
 *  - margin, absolute (absolute_margin): drop when score + margin > positive score, i.e. keep only
 *    score ≤ pos − margin; relative (relative_margin): drop when score > pos · (1 − margin), e.g. 0.05 keeps
 *    negatives at most 95 % as similar as the positive. A NaN positive score (unknown) disables the margin
 *    for that row. margin 0 (absolute) still drops candidates scoring above the positive.
 *  - of the survivors, 'top' takes the first n in rank order, 'random' n uniformly without replacement
 *    (kept in rank order) — ST's sampling_strategy.
 * The list order is never re-sorted by score, so a fused ranking can be filtered with other scores (e.g. the
 * members' mean cosine) as long as `lists.scores` and `positiveScores` are on the same scale.
 * Returns n columns per row, −1 padded when fewer survive.
 * It lives in sampling, not mine/, because it is pure list arithmetic and the online `mined` source
 * (sampling/mined.ts) runs it every step; offline mining (mine/mine.ts) and text rounds use the same code.
 */
import type { Rng } from '../util/rng.ts';
import type { RankedLists } from './ranked-lists.ts';

export interface FilterOptions {
  /** Negatives per row. */
  n: number;
  rankStart?: number;
  rankEnd?: number;
  margin?: number;
  maxScore?: number;
  /** Margin relative to the positive's score instead of absolute. */
  relative?: boolean;
  sample?: 'top' | 'random';
  rng?: Rng;
  /**
   * Filled per row when given (length rows): why the row got fewer than n negatives — SHORT_NONE when it got n,
   * SHORT_RANGE when the rank window held fewer than n candidates (window narrower than n, or too few unseen
   * items), else SHORT_MARGIN / SHORT_MAX_SCORE for the filter that dropped more of the window.
   */
  shortReasons?: Uint8Array;
}

export const SHORT_NONE = 0;
export const SHORT_RANGE = 1;
export const SHORT_MARGIN = 2;
export const SHORT_MAX_SCORE = 3;

export function selectHardNegatives(lists: RankedLists, positives: (row: number) => ArrayLike<number>, positiveScores: Float32Array | null, opts: FilterOptions): RankedLists {
  const { rows, k } = lists;
  const n = opts.n;
  const start = opts.rankStart ?? 0;
  const end = opts.rankEnd ?? Infinity;
  const margin = opts.margin;
  const maxScore = opts.maxScore ?? Infinity;
  const sample = opts.sample ?? 'top';
  if (margin !== undefined && !positiveScores) throw new Error('selectHardNegatives: a margin needs the positives\' scores');
  if (sample === 'random' && !opts.rng) throw new Error("selectHardNegatives: sample 'random' needs an rng");
  const ids = new Int32Array(rows * n).fill(-1);
  const scores = new Float32Array(rows * n);
  const keep: number[] = [];
  for (let r = 0; r < rows; r++) {
    const pos = new Set<number>(Array.from(positives(r)));
    const ps = positiveScores ? positiveScores[r] : NaN;
    const limit = margin === undefined || Number.isNaN(ps) ? Infinity : opts.relative ? ps * (1 - margin) : ps - margin;
    keep.length = 0;
    let rank = 0;
    let inWindow = 0;
    let byMax = 0;
    let byMargin = 0;
    for (let i = 0; i < k; i++) {
      const o = r * k + i;
      const id = lists.ids[o];
      if (id < 0 || pos.has(id)) continue;
      const rk = rank++;
      if (rk < start) continue;
      if (rk >= end) break;
      const s = lists.scores[o];
      inWindow++;
      if (s > maxScore) {
        byMax++;
        continue;
      }
      if (s > limit) {
        byMargin++;
        continue;
      }
      // Absolute margin is strict in ST (score + margin > pos is dropped): s === pos − margin survives.
      keep.push(o);
    }
    let chosen = keep;
    if (sample === 'random' && keep.length > n) {
      const rng = opts.rng!;
      // Partial Fisher–Yates over positions, then back to rank order.
      const idx = keep.map((_, i) => i);
      for (let i = 0; i < n; i++) {
        const j = i + rng.int(idx.length - i);
        [idx[i], idx[j]] = [idx[j], idx[i]];
      }
      chosen = idx.slice(0, n).sort((a, b) => a - b).map((i) => keep[i]);
    }
    const m = Math.min(n, chosen.length);
    if (opts.shortReasons) {
      opts.shortReasons[r] = m >= n ? SHORT_NONE : inWindow < n ? SHORT_RANGE : byMargin >= byMax ? SHORT_MARGIN : SHORT_MAX_SCORE;
    }
    for (let i = 0; i < m; i++) {
      ids[r * n + i] = lists.ids[chosen[i]];
      scores[r * n + i] = lists.scores[chosen[i]];
    }
  }
  return { rows, k: n, ids, scores };
}
