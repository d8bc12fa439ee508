/**
 * retrieve → rerank: the target retriever's top-K per user, LCE training groups drawn from it, and the
 * evaluation of both stages on the same users and the same candidates.
 *  - Training pairs should be interactions the retriever did not train on (e.g. the validation split): its
 *    training positives score unrealistically high, so a reranker trained on them learns "trust the
 *    retriever" and nothing else.
 *  - Only pairs whose positive is inside the target's top-K make a group ("localized": the reranker only ever
 *    sees top-K candidates, and a positive from below would teach it to invert the retrieval score).
 *  - Negatives: G − 1 drawn uniformly from the rest of that top-K, minus the user's known positives; redrawn
 *    every epoch.
 * Metrics follow eval/ranking.ts: recall@k = hits/|T_u|, ndcg@k = DCG/IDCG(min(k, |T_u|)), binary relevance.
 */
import type { Csr } from '../data/csr.ts';
import type { ModelRetriever } from '../mine/model-retriever.ts';
import type { RankedLists } from '../mine/types.ts';
import type { Rng } from '../util/rng.ts';
import { featureDim, pairFeatures, type FeatureSource } from './features.ts';
import type { LceReranker } from './lce.ts';

export interface StageContext {
  /** Users, one per row of `lists`. */
  users: Int32Array;
  lists: RankedLists;
  features: FeatureSource;
}

/** Target top-K for `users` plus the feature source over all given models (the target first). */
export function stageContext(members: ModelRetriever[], users: Int32Array, K: number, itemCounts: ArrayLike<number>): StageContext {
  const lists = members[0].retrieve(users, K);
  const scorers = members.map((m) => ({ userEmb: m.embedUsers(users), itemEmb: m.itemEmb, dim: m.model.dim }));
  return { users, lists, features: { dim: members[0].model.dim, userEmb: scorers[0].userEmb, itemEmb: scorers[0].itemEmb, scorers, itemCounts, K } };
}

export interface Groups {
  Q: number;
  G: number;
  userRow: Int32Array;
  items: Int32Array;
  ranks: Int32Array;
}

/** LCE groups for pairs (users[p], positives[p]) from ctx's lists; known(u) = the user's positives. */
export function drawGroups(ctx: StageContext, pairUsers: Int32Array, positives: Int32Array, known: Csr, G: number, rng: Rng): Groups {
  const rowOf = new Map<number, number>();
  ctx.users.forEach((u, i) => rowOf.set(u, i));
  const K = ctx.lists.k;
  const userRow: number[] = [];
  const items: number[] = [];
  const ranks: number[] = [];
  const pool: number[] = [];
  for (let p = 0; p < pairUsers.length; p++) {
    const r = rowOf.get(pairUsers[p]);
    if (r === undefined) continue;
    const row = ctx.lists.ids.subarray(r * K, r * K + K);
    const posRank = row.indexOf(positives[p]);
    if (posRank < 0) continue;
    const kn = new Set(known.cols.subarray(known.offsets[pairUsers[p]], known.offsets[pairUsers[p] + 1]));
    pool.length = 0;
    for (let i = 0; i < K; i++) if (row[i] >= 0 && !kn.has(row[i]) && row[i] !== positives[p]) pool.push(i);
    if (pool.length < G - 1) continue;
    userRow.push(r);
    items.push(positives[p]);
    ranks.push(posRank);
    for (let g = 0; g < G - 1; g++) {
      const j = g + rng.int(pool.length - g);
      [pool[g], pool[j]] = [pool[j], pool[g]];
      userRow.push(r);
      items.push(row[pool[g]]);
      ranks.push(pool[g]);
    }
  }
  return { Q: items.length / G, G, userRow: Int32Array.from(userRow), items: Int32Array.from(items), ranks: Int32Array.from(ranks) };
}

export interface LceTrainOptions {
  epochs: number;
  /** Groups per update. */
  batch: number;
  G: number;
  rng: Rng;
}

/** Trains the reranker on groups redrawn every epoch; returns the mean loss per epoch. */
export function trainReranker(model: LceReranker, ctx: StageContext, pairUsers: Int32Array, positives: Int32Array, known: Csr, o: LceTrainOptions): number[] {
  const F = featureDim(ctx.features.dim, ctx.features.scorers.length);
  const losses: number[] = [];
  for (let e = 0; e < o.epochs; e++) {
    const g = drawGroups(ctx, pairUsers, positives, known, o.G, o.rng);
    const order = Array.from({ length: g.Q }, (_, i) => i);
    o.rng.shuffle(order);
    let sum = 0;
    let nb = 0;
    for (let s = 0; s < g.Q; s += o.batch) {
      const qs = order.slice(s, s + o.batch);
      const rows = qs.length * o.G;
      const ur = new Int32Array(rows);
      const it = new Int32Array(rows);
      const rk = new Int32Array(rows);
      qs.forEach((q, i) => {
        ur.set(g.userRow.subarray(q * o.G, (q + 1) * o.G), i * o.G);
        it.set(g.items.subarray(q * o.G, (q + 1) * o.G), i * o.G);
        rk.set(g.ranks.subarray(q * o.G, (q + 1) * o.G), i * o.G);
      });
      const x = new Float32Array(rows * F);
      pairFeatures(ctx.features, ur, it, rk, x);
      sum += model.trainGroups(x, qs.length, o.G);
      nb++;
    }
    losses.push(nb ? sum / nb : NaN);
  }
  return losses;
}

export interface StageMetrics {
  users: number;
  retrieve: Record<string, number>;
  rerank: Record<string, number>;
}

/** NDCG/Recall@ks of the target order and of the reranked order of the same top-K, over users with targets. */
export function evaluateStages(model: LceReranker, ctx: StageContext, test: Csr, ks: number[]): StageMetrics {
  const K = ctx.lists.k;
  const F = featureDim(ctx.features.dim, ctx.features.scorers.length);
  const x = new Float32Array(K * F);
  const ur = new Int32Array(K);
  const rk = Int32Array.from({ length: K }, (_, i) => i);
  const sum = { retrieve: new Map<string, number>(), rerank: new Map<string, number>() };
  const add = (m: Map<string, number>, key: string, v: number) => m.set(key, (m.get(key) ?? 0) + v);
  let users = 0;
  for (let r = 0; r < ctx.users.length; r++) {
    const u = ctx.users[r];
    if (u >= test.rows) continue;
    const truth = new Set(test.cols.subarray(test.offsets[u], test.offsets[u + 1]));
    if (!truth.size) continue;
    users++;
    let n = 0;
    while (n < K && ctx.lists.ids[r * K + n] >= 0) n++;
    const ids = ctx.lists.ids.subarray(r * K, r * K + n);
    ur.fill(r);
    pairFeatures(ctx.features, ur.subarray(0, n), ids, rk.subarray(0, n), x);
    const s = model.forward(x, n);
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => s[b] - s[a] || a - b);
    for (const [stage, ord] of [['retrieve', null], ['rerank', order]] as const) {
      for (const k of ks) {
        let hits = 0;
        let dcg = 0;
        for (let i = 0; i < Math.min(k, n); i++) {
          const id = ids[ord ? ord[i] : i];
          if (truth.has(id)) {
            hits++;
            dcg += 1 / Math.log2(i + 2);
          }
        }
        let idcg = 0;
        for (let i = 0; i < Math.min(k, truth.size); i++) idcg += 1 / Math.log2(i + 2);
        add(sum[stage], `recall@${k}`, hits / truth.size);
        add(sum[stage], `ndcg@${k}`, dcg / idcg);
      }
    }
  }
  const mean = (m: Map<string, number>) => Object.fromEntries([...m].map(([k, v]) => [k, users ? v / users : NaN]));
  return { users, retrieve: mean(sum.retrieve), rerank: mean(sum.rerank) };
}
