/**
 * Hard-negative pools for a further training round of a text dual encoder (ANCE / RocketQA style): the
 * training queries' top lists of one or more retrievers (BM25, the previous round's dense model), fused with
 * src/mine/fusion.ts when there are several, minus the known positives, optionally filtered for likely false
 * negatives by src/sampling/hard-negative-filter.ts:
 *  - rank window [rankStart, rankEnd) over the fused ranking (its very top are the likeliest unlabelled
 *    positives, RocketQA);
 *  - margin against the positive on a COMMON scale — the filter scores are the dense model's cosines of the
 *    fused candidates (`filterScores`, rows × numDocs), and the positive's score is its weakest positive's
 *    cosine; relative 0.05 keeps negatives at most 95 % as similar as the positive (NV-Retriever's
 *    TopK-PercPos).
 */
import { selectHardNegatives } from '../sampling/hard-negative-filter.ts';
import { fuseRankedLists } from '../mine/fusion.ts';
import type { RankedLists } from '../mine/types.ts';

export interface PoolOptions {
  /** Negatives kept per query. */
  pool: number;
  fusion: 'rrf' | 'soft-vote';
  rankStart?: number;
  rankEnd?: number;
  margin?: number;
  relative?: boolean;
}

export interface MinedPools {
  pools: Map<number, Int32Array>;
  /** Mean pool size (fewer than `pool` when the filter leaves too few candidates). */
  meanPool: number;
  /** Candidates that were positives (skipped) per query, on average. */
  meanPositivesSkipped: number;
}

/**
 * members: top lists for `queries` (same row order), one per retriever; rel: query → positive docs.
 * filterScores (rows × numDocs) is required when a margin is set.
 */
export function mineTextPools(members: RankedLists[], queries: Int32Array, rel: Map<number, Map<number, number>>, o: PoolOptions, filterScores: Float32Array | null = null, numDocs = 0): MinedPools {
  const depth = Math.max(...members.map((m) => m.k));
  const fused = members.length === 1 ? members[0] : fuseRankedLists(members, { method: o.fusion, k: depth });
  let lists = fused;
  let posScores: Float32Array | null = null;
  if (o.margin !== undefined) {
    if (!filterScores) throw new Error('mineTextPools: a margin needs filterScores');
    const scores = new Float32Array(fused.scores.length);
    for (let r = 0; r < fused.rows; r++) for (let i = 0; i < fused.k; i++) {
      const d = fused.ids[r * fused.k + i];
      scores[r * fused.k + i] = d >= 0 ? filterScores[r * numDocs + d] : -Infinity;
    }
    lists = { ...fused, scores };
    posScores = Float32Array.from(queries, (q, r) => {
      let m = Infinity;
      for (const d of rel.get(q)?.keys() ?? []) m = Math.min(m, filterScores[r * numDocs + d]);
      return Number.isFinite(m) ? m : NaN;
    });
  }
  const positives = (r: number) => Array.from(rel.get(queries[r])?.keys() ?? []);
  const neg = selectHardNegatives(lists, positives, posScores, { n: o.pool, rankStart: o.rankStart, rankEnd: o.rankEnd, margin: o.margin, relative: o.relative });
  const pools = new Map<number, Int32Array>();
  let total = 0;
  let skipped = 0;
  for (let r = 0; r < queries.length; r++) {
    const row = Int32Array.from(Array.from(neg.ids.subarray(r * o.pool, (r + 1) * o.pool)).filter((d) => d >= 0));
    pools.set(queries[r], row);
    total += row.length;
    const pos = new Set(positives(r));
    for (let i = 0; i < fused.k; i++) if (pos.has(fused.ids[r * fused.k + i])) skipped++;
  }
  const n = Math.max(1, queries.length);
  return { pools, meanPool: total / n, meanPositivesSkipped: skipped / n };
}
