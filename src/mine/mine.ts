/**
 * Offline hard-negative mining for training pairs (user, positive) with one model or an ensemble:
 *  1. each member ranks every user's unseen items (top rankEnd; known positives excluded by the retriever);
 *  2. several members are fused (RRF or soft voting, mine/fusion.ts) into one ranking per user;
 *  3. per pair, selectHardNegatives (sampling/hard-negative-filter.ts) keeps the rank window and drops likely false negatives.
 * The margin and max-score filters compare on one scale for single models and ensembles alike: the members'
 * mean cosine of (user, candidate) against the mean cosine of (user, positive). Reported scores are those.
 */
import type { Rng } from '../util/rng.ts';
import { selectHardNegatives } from '../sampling/hard-negative-filter.ts';
import { fuseRankedLists } from './fusion.ts';
import type { ModelRetriever } from './model-retriever.ts';
import type { RankedLists } from './types.ts';

export interface MineOptions {
  fusion: 'rrf' | 'soft-vote';
  n: number;
  rankStart: number;
  rankEnd: number;
  margin?: number;
  relative?: boolean;
  maxScore?: number;
  sample: 'top' | 'random';
  rng?: Rng;
  weights?: number[];
}

export interface MinedGroups {
  /** rows × n negatives (−1 padded), and their mean cosine. */
  negatives: RankedLists;
  /** Mean cosine of each row's positive. */
  positiveScores: Float32Array;
  /** Per row, why it has fewer than n negatives (SHORT_* of sampling/hard-negative-filter.ts; SHORT_NONE when it has n). */
  shortReasons: Uint8Array;
}

export function mineGroups(members: ModelRetriever[], users: Int32Array, positives: Int32Array, o: MineOptions): MinedGroups {
  if (!members.length) throw new Error('mineGroups: no models');
  const uniq = Int32Array.from(new Set(users)).sort();
  const rowOf = new Map<number, number>();
  uniq.forEach((u, i) => rowOf.set(u, i));
  const K = Math.min(o.rankEnd, members[0].numItems);
  const lists = members.map((m) => m.retrieve(uniq, K));
  const fused = lists.length > 1 ? fuseRankedLists(lists, { method: o.fusion, k: K, weights: o.weights }) : lists[0];
  // Mean member cosine of each fused candidate, and per-member user embeddings for the positives.
  const embs = members.map((m) => m.embedUsers(uniq));
  const cos = (ui: number, item: number) => {
    let acc = 0;
    members.forEach((m, mi) => {
      const e = embs[mi];
      // Each member's own width: an ensemble may mix models of different dims.
      const d = m.model.dim;
      const o2 = item * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += e[ui * d + t] * m.itemEmb[o2 + t];
      acc += s;
    });
    return acc / members.length;
  };
  const meanCos = new Float32Array(uniq.length * K);
  for (let r = 0; r < uniq.length; r++) for (let i = 0; i < K; i++) {
    const id = fused.ids[r * K + i];
    if (id >= 0) meanCos[r * K + i] = cos(r, id);
  }
  const R = users.length;
  const out: RankedLists = { rows: R, k: o.n, ids: new Int32Array(R * o.n).fill(-1), scores: new Float32Array(R * o.n) };
  const posScores = new Float32Array(R);
  const shortReasons = new Uint8Array(R);
  const chunk = 4096;
  for (let s = 0; s < R; s += chunk) {
    const e = Math.min(R, s + chunk);
    const m = e - s;
    const part: RankedLists = { rows: m, k: K, ids: new Int32Array(m * K), scores: new Float32Array(m * K) };
    const ps = new Float32Array(m);
    for (let r = 0; r < m; r++) {
      const ui = rowOf.get(users[s + r])!;
      part.ids.set(fused.ids.subarray(ui * K, ui * K + K), r * K);
      part.scores.set(meanCos.subarray(ui * K, ui * K + K), r * K);
      ps[r] = cos(ui, positives[s + r]);
    }
    const picked = selectHardNegatives(part, (r) => [positives[s + r]], ps, {
      n: o.n,
      rankStart: o.rankStart,
      rankEnd: o.rankEnd,
      margin: o.margin,
      relative: o.relative,
      maxScore: o.maxScore,
      sample: o.sample,
      rng: o.rng,
      shortReasons: shortReasons.subarray(s, e),
    });
    out.ids.set(picked.ids, s * o.n);
    out.scores.set(picked.scores, s * o.n);
    posScores.set(ps, s);
  }
  return { negatives: out, positiveScores: posScores, shortReasons };
}
