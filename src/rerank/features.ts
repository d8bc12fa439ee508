/**
 * Features of a (user, candidate) pair for the second-stage reranker: the two towers' embeddings and their
 * interactions, the first-stage scores and the candidate's popularity, so an MLP can learn crosses the dot
 * product cannot express (a dual encoder only sees ⟨u, v⟩):
 *   [√d·u, √d·v, d·(u ⊙ v), √d·|u − v|, s_1 … s_m, log(1 + rank) / log(1 + K), log(1 + count) / log(1 + max count)]
 * Embeddings are L2-normalised, so the √d and d factors bring the entries to order 1. s_m are the retrieval
 * cosines of every model given (the target retriever first; more models = ensemble evidence); rank is the
 * position in the target retriever's list (0-based) among K.
 */

export interface FeatureSource {
  dim: number;
  /** Per pair: the user's embedding row (d) and the item embedding table (numItems × d). */
  userEmb: Float32Array;
  itemEmb: Float32Array;
  /** Item embedding tables of the models whose cosine is a feature (the first = userEmb/itemEmb's model). */
  scorers: Array<{ userEmb: Float32Array; itemEmb: Float32Array; dim: number }>;
  /** Train interaction count per item. */
  itemCounts: ArrayLike<number>;
  /** List length the ranks come from. */
  K: number;
}

export function featureDim(dim: number, scorers: number): number {
  return 4 * dim + scorers + 2;
}

/**
 * Writes the features of pairs (userRow[p], item[p], rank[p]) into out (P × featureDim). userRow indexes
 * rows of the user embedding blocks (the same row in every scorer's userEmb).
 */
export function pairFeatures(src: FeatureSource, userRow: Int32Array, items: Int32Array, ranks: Int32Array, out: Float32Array): void {
  const d = src.dim;
  const F = featureDim(d, src.scorers.length);
  const sd = Math.sqrt(d);
  let maxCount = 1;
  for (let i = 0; i < src.itemCounts.length; i++) if (src.itemCounts[i] > maxCount) maxCount = src.itemCounts[i];
  const popNorm = 1 / Math.log1p(maxCount);
  const rankNorm = 1 / Math.log1p(src.K);
  for (let p = 0; p < items.length; p++) {
    const o = p * F;
    const uo = userRow[p] * d;
    const vo = items[p] * d;
    for (let t = 0; t < d; t++) {
      const u = src.userEmb[uo + t];
      const v = src.itemEmb[vo + t];
      out[o + t] = sd * u;
      out[o + d + t] = sd * v;
      out[o + 2 * d + t] = d * u * v;
      out[o + 3 * d + t] = sd * Math.abs(u - v);
    }
    src.scorers.forEach((s, m) => {
      const so = userRow[p] * s.dim;
      const io = items[p] * s.dim;
      let acc = 0;
      for (let t = 0; t < s.dim; t++) acc += s.userEmb[so + t] * s.itemEmb[io + t];
      out[o + 4 * d + m] = acc;
    });
    out[o + 4 * d + src.scorers.length] = Math.log1p(ranks[p]) * rankNorm;
    out[o + 4 * d + src.scorers.length + 1] = Math.log1p(src.itemCounts[items[p]]) * popNorm;
  }
}
