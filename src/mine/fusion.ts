/**
 * Ensembles of retrievers: fuse several members' top-k lists for the same queries into one ranking.
 *  - 'rrf' (reciprocal-rank fusion, Cormack et al. 2009): fused(d) = Σ_m w_m / (rrfK + rank_m(d)), rank 1-based,
 *    a member that did not return d contributes 0. Scale-free, so BM25 and cosine members mix without tuning.
 *  - 'soft-vote': fused(d) = Σ_m w_m · ŝ_m(d), where ŝ is the member's score min-max normalised within the
 *    query's row over the ids it returned: ŝ = (s − min) / (max − min), and 1 for every id when max = min
 *    (a constant row carries no ranking information beyond "returned"). Absent ids contribute 0, so the
 *    lowest returned id of a member and an id it did not return tie for that member.
 * Weights default to 1 per member. Members may have different k; −1 padding is ignored. Ties in the fused
 * score are broken by the smaller id, so fusion is deterministic. Rows shorter than k are padded with −1.
 */
import type { RankedLists } from './types.ts';

export interface FusionOptions {
  method: 'rrf' | 'soft-vote';
  /** Length of the fused lists. */
  k: number;
  /** RRF's rank offset (60 in the original paper). */
  rrfK?: number;
  /** One weight per member (default 1 each). */
  weights?: number[];
}

export function fuseRankedLists(lists: RankedLists[], opts: FusionOptions): RankedLists {
  if (!lists.length) throw new Error('fuseRankedLists: no member lists');
  const rows = lists[0].rows;
  for (const l of lists) if (l.rows !== rows) throw new Error(`fuseRankedLists: members disagree on the number of queries (${l.rows} vs ${rows})`);
  const w = opts.weights ?? lists.map(() => 1);
  if (w.length !== lists.length) throw new Error(`fuseRankedLists: ${w.length} weights for ${lists.length} members`);
  const rrfK = opts.rrfK ?? 60;
  const k = opts.k;
  const ids = new Int32Array(rows * k).fill(-1);
  const scores = new Float32Array(rows * k);
  const acc = new Map<number, number>();
  for (let r = 0; r < rows; r++) {
    acc.clear();
    lists.forEach((l, m) => {
      const o = r * l.k;
      let lo = Infinity;
      let hi = -Infinity;
      if (opts.method === 'soft-vote') {
        for (let i = 0; i < l.k; i++) {
          if (l.ids[o + i] < 0) continue;
          const s = l.scores[o + i];
          if (s < lo) lo = s;
          if (s > hi) hi = s;
        }
      }
      let rank = 0;
      for (let i = 0; i < l.k; i++) {
        const id = l.ids[o + i];
        if (id < 0) continue;
        rank++;
        const v = opts.method === 'rrf' ? w[m] / (rrfK + rank) : w[m] * (hi > lo ? (l.scores[o + i] - lo) / (hi - lo) : 1);
        acc.set(id, (acc.get(id) ?? 0) + v);
      }
    });
    const top = [...acc.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    const n = Math.min(k, top.length);
    for (let i = 0; i < n; i++) {
      ids[r * k + i] = top[i][0];
      scores[r * k + i] = top[i][1];
    }
  }
  return { rows, k, ids, scores };
}
