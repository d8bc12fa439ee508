/**
 * Retrieval metrics over ranked lists, as BEIR reports them through pytrec_eval (trec_eval's definitions):
 *   NDCG@k  with linear gain = the qrels grade: DCG = Σ_{i ≤ k} grade(d_i) / log2(i + 1), over the ideal DCG
 *           of the query's grades sorted descending;
 *   Recall@k = |top-k ∩ relevant| / |relevant|;   MRR@k = 1 / rank of the first relevant doc within k (else 0).
 * "Relevant" means grade > 0. Averaged over the queries that have at least one relevant doc.
 */
import type { RankedLists } from '../mine/types.ts';

export interface TextMetrics {
  'ndcg@10': number;
  'recall@100': number;
  'mrr@10': number;
  queries: number;
}

/** lists row r holds the ranking of query `queryIdx[r]`; `rel` maps a query to its doc → grade. */
export function evaluateRanking(lists: RankedLists, queryIdx: Int32Array, rel: Map<number, Map<number, number>>): TextMetrics {
  let ndcg = 0;
  let recall = 0;
  let mrr = 0;
  let n = 0;
  for (let r = 0; r < lists.rows; r++) {
    const g = rel.get(queryIdx[r]);
    if (!g || g.size === 0) continue;
    n++;
    const o = r * lists.k;
    let dcg = 0;
    let hits = 0;
    let first = 0;
    for (let i = 0; i < lists.k; i++) {
      const d = lists.ids[o + i];
      if (d < 0) break;
      const grade = g.get(d) ?? 0;
      if (grade <= 0) continue;
      if (i < 10) {
        dcg += grade / Math.log2(i + 2);
        if (!first) first = i + 1;
      }
      if (i < 100) hits++;
    }
    const ideal = [...g.values()].sort((a, b) => b - a);
    let idcg = 0;
    for (let i = 0; i < Math.min(10, ideal.length); i++) idcg += ideal[i] / Math.log2(i + 2);
    ndcg += idcg > 0 ? dcg / idcg : 0;
    recall += hits / g.size;
    mrr += first ? 1 / first : 0;
  }
  const m = Math.max(1, n);
  return { 'ndcg@10': ndcg / m, 'recall@100': recall / m, 'mrr@10': mrr / m, queries: n };
}
