/**
 * Features of (query, candidate document) pairs for a text reranker — the recommender's feature builder
 * (rerank/features.ts) generalised to text, where the first stage offers more than one score:
 *   dense        the dual encoder's cosine (max over the document's chunks)
 *   denseGap     cosine − the best cosine among the query's candidates
 *   denseMinMax  cosine min-max normalised over the candidates (what soft voting adds up)
 *   bm25         log(1 + BM25)
 *   bm25MinMax   BM25 min-max normalised over the candidates
 *   denseRank, bm25Rank   log(1 + rank among the candidates by that score) / log(1 + K)
 *   listRank     log(1 + position in the target list) / log(1 + K)
 *   overlap      fraction of the query's distinct words present in the document
 *   idfOverlap   the same, idf-weighted (BM25's idf)
 *   titleOverlap fraction of the query's distinct words present in the title
 *   queryLen, docLen   log(1 + words) / log(1 + 512)
 * Scalar features only: with a few hundred training queries, embedding-sized inputs overfit.
 */
import type { RankedLists } from '../mine/types.ts';
import type { CandidateFeatures } from '../rerank/candidate-features.ts';
import type { Bm25Index } from './bm25.ts';
import type { TextCorpus } from './corpus.ts';

export type { CandidateFeatures };

export const TEXT_FEATURES = ['dense', 'denseGap', 'denseMinMax', 'bm25', 'bm25MinMax', 'denseRank', 'bm25Rank', 'listRank', 'overlap', 'idfOverlap', 'titleOverlap', 'queryLen', 'docLen'] as const;

function ranksBy(vals: number[]): number[] {
  const order = vals.map((_, i) => i).sort((a, b) => vals[b] - vals[a] || a - b);
  const rank = new Array<number>(vals.length);
  order.forEach((i, r) => (rank[i] = r));
  return rank;
}

/**
 * lists: the target retriever's top-k for `queries`; dense/bm25: rows × numDocs score matrices for the same
 * rows (DualEncoderRetriever.scoreAll, Bm25Index.scoreInto). −1 slots get all-zero features.
 */
export function textCandidateFeatures(corpus: TextCorpus, bm25: Bm25Index, queries: Int32Array, lists: RankedLists, dense: Float32Array, bm25Scores: Float32Array): CandidateFeatures {
  const F = TEXT_FEATURES.length;
  const N = corpus.docWords.length;
  const { k } = lists;
  const x = new Float32Array(lists.rows * k * F);
  const kNorm = 1 / Math.log1p(k);
  const lenNorm = 1 / Math.log1p(512);
  const docSets = new Map<number, { all: Set<string>; title: Set<string> }>();
  const sets = (d: number) => {
    let s = docSets.get(d);
    if (!s) docSets.set(d, (s = { all: new Set(corpus.docWords[d]), title: new Set(corpus.titleWords[d]) }));
    return s;
  };
  for (let r = 0; r < lists.rows; r++) {
    const qw = [...new Set(corpus.queryWords[queries[r]])];
    const idf = qw.map((w) => {
      const t = bm25.vocab.get(w);
      return t === undefined ? 0 : bm25.idf[t];
    });
    const idfSum = idf.reduce((a, b) => a + b, 0) || 1;
    const ids: number[] = [];
    for (let i = 0; i < k && lists.ids[r * k + i] >= 0; i++) ids.push(lists.ids[r * k + i]);
    const ds = ids.map((d) => dense[r * N + d]);
    const bs = ids.map((d) => bm25Scores[r * N + d]);
    const dMax = Math.max(...ds);
    const dMin = Math.min(...ds);
    const bMax = Math.max(...bs);
    const bMin = Math.min(...bs);
    const dRank = ranksBy(ds);
    const bRank = ranksBy(bs);
    ids.forEach((d, i) => {
      const o = (r * k + i) * F;
      const s = sets(d);
      let hit = 0;
      let idfHit = 0;
      let tHit = 0;
      qw.forEach((w, j) => {
        if (s.all.has(w)) {
          hit++;
          idfHit += idf[j];
        }
        if (s.title.has(w)) tHit++;
      });
      const f = [
        ds[i],
        ds[i] - dMax,
        dMax > dMin ? (ds[i] - dMin) / (dMax - dMin) : 1,
        Math.log1p(Math.max(0, bs[i])),
        bMax > bMin ? (bs[i] - bMin) / (bMax - bMin) : 1,
        Math.log1p(dRank[i]) * kNorm,
        Math.log1p(bRank[i]) * kNorm,
        Math.log1p(i) * kNorm,
        qw.length ? hit / qw.length : 0,
        idfHit / idfSum,
        qw.length ? tHit / qw.length : 0,
        Math.log1p(corpus.queryWords[queries[r]].length) * lenNorm,
        Math.log1p(corpus.docWords[d].length) * lenNorm,
      ];
      x.set(f, o);
    });
  }
  return { queries, lists, F, x };
}

/** BM25 scores of every document for each query (rows × numDocs). */
export function bm25ScoreMatrix(bm25: Bm25Index, corpus: TextCorpus, queries: Int32Array): Float32Array {
  const N = corpus.docWords.length;
  const out = new Float32Array(queries.length * N);
  queries.forEach((q, r) => bm25.scoreInto(corpus.queryWords[q], out.subarray(r * N, (r + 1) * N)));
  return out;
}
