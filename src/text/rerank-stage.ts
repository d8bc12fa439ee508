/**
 * Retrieve → rerank for text: a first stage (the dual encoder's top-K, or its soft-vote fusion with BM25's
 * top-K) and an LCE reranker (rerank/lce.ts) over the scalar pair features of text/rerank-features.ts, trained
 * on groups of 1 positive + G − 1 negatives from the first stage's lists (rerank/feature-groups.ts). Shared by
 * `towerlab text --rerank` (text/experiment.ts) and `npm run bench:text-mining`. The reranker must be trained
 * on queries the first stage did not see (a held-out slice of train, text/query-split.ts): in-sample, the
 * positives sit on top with cosines no test query reaches and the reranker learns only "trust the dense score".
 */
import type { Backend } from '../compute/backend.ts';
import { fuseRankedLists } from '../mine/fusion.ts';
import type { RankedLists } from '../mine/types.ts';
import { fitStandardizer, rerankLists, standardize, trainOnFeatures, type Standardizer } from '../rerank/feature-groups.ts';
import { LceReranker, type LceConfig } from '../rerank/lce.ts';
import { bm25ScoreMatrix, textCandidateFeatures, TEXT_FEATURES, type CandidateFeatures } from './rerank-features.ts';
import { Rng } from '../util/rng.ts';
import type { Bm25Index } from './bm25.ts';
import { Bm25Retriever } from './bm25.ts';
import type { TextCorpus } from './corpus.ts';
import type { DualEncoderRetriever } from './dual-encoder.ts';

/** 'dense': the dual encoder's top-K; 'soft-vote': its min-max score-sum fusion with BM25's top-K. */
export type FirstStage = 'dense' | 'soft-vote';

export interface TextLceOptions {
  hidden: number[];
  temperature: number;
  lr: number;
  epochs: number;
  /** Groups per update. */
  batch: number;
  /** Group size: 1 positive + G − 1 negatives. */
  G: number;
}

/** Fixed a priori in bench:text-mining (not tuned on test or dev). */
export const defaultTextLce: TextLceOptions = { hidden: [32], temperature: 1, lr: 0.003, epochs: 40, batch: 16, G: 8 };

/** What the first stages and the features of a query set are built from. */
export interface StageContext {
  corpus: TextCorpus;
  bm25: Bm25Index;
  dense: DualEncoderRetriever;
  K: number;
}

/** Both members' top-K lists and full score matrices (rows × numDocs) for `queries`. */
export interface StageScores {
  queries: Int32Array;
  denseLists: RankedLists;
  bm25Lists: RankedLists;
  denseAll: Float32Array;
  bm25All: Float32Array;
}

export function stageScores(ctx: StageContext, queries: Int32Array, bm25Lists?: RankedLists): StageScores {
  return {
    queries,
    denseLists: ctx.dense.retrieve(queries, ctx.K),
    bm25Lists: bm25Lists ?? new Bm25Retriever(ctx.bm25, ctx.corpus.queryWords).retrieve(queries, ctx.K),
    denseAll: ctx.dense.scoreAll(queries),
    bm25All: bm25ScoreMatrix(ctx.bm25, ctx.corpus, queries),
  };
}

export function firstStageLists(s: StageScores, stage: FirstStage, K: number): RankedLists {
  return stage === 'dense' ? s.denseLists : fuseRankedLists([s.bm25Lists, s.denseLists], { method: 'soft-vote', k: K });
}

/** The first stage's lists for s.queries with one feature row per candidate. */
export function stageFeatures(ctx: StageContext, s: StageScores, stage: FirstStage): CandidateFeatures {
  return textCandidateFeatures(ctx.corpus, ctx.bm25, s.queries, firstStageLists(s, stage, ctx.K), s.denseAll, s.bm25All);
}

export interface FittedTextReranker {
  model: LceReranker;
  standardizer: Standardizer;
  lce: LceConfig;
  /** Mean loss per epoch (NaN for an epoch without a single group). */
  losses: number[];
}

/** Fits z-scoring and the LCE reranker on `feats` (row r's positives: rel.get(feats.queries[r])). */
export function fitTextReranker(b: Backend, feats: CandidateFeatures, rel: Map<number, Map<number, number>>, o: TextLceOptions, seed: number): FittedTextReranker {
  const standardizer = fitStandardizer(feats);
  const lce: LceConfig = { inDim: TEXT_FEATURES.length, hidden: o.hidden, temperature: o.temperature, lr: o.lr, seed };
  const model = new LceReranker(b, lce);
  const pos = (r: number) => new Set(rel.get(feats.queries[r])?.keys() ?? []);
  const losses = trainOnFeatures(model, standardize(feats, standardizer), pos, { epochs: o.epochs, batch: o.batch, G: o.G, rng: new Rng(seed * 31 + 5) });
  return { model, standardizer, lce, losses };
}

/** The first stage's lists re-ordered by the reranker. */
export function applyTextReranker(r: Pick<FittedTextReranker, 'model' | 'standardizer'>, feats: CandidateFeatures): RankedLists {
  return rerankLists(r.model, standardize(feats, r.standardizer));
}
