/**
 * One text-retrieval experiment on a BEIR folder: BM25 baseline, a dual encoder trained on the train qrels
 * (with optional pre-training and hard negatives), and their ensemble (reciprocal-rank fusion of the two
 * top-100 lists, src/mine/fusion.ts), all evaluated on the test qrels: NDCG@10, Recall@100, MRR@10.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { fuseRankedLists } from '../mine/fusion.ts';
import { saveReranker } from '../rerank/saved-reranker.ts';
import { TEXT_FEATURES } from './rerank-features.ts';
import { UserError } from '../util/errors.ts';
import { checkTextLimits } from '../recipe/limits.ts';
import { loadBeir, relevantByQuery, type BeirData } from './beir.ts';
import { Bm25Index, Bm25Retriever, defaultBm25Options, type Bm25Options } from './bm25.ts';
import { TextCorpus } from './corpus.ts';
import { DualEncoder, DualEncoderRetriever, type DualEncoderConfig } from './dual-encoder.ts';
import { evaluateRanking, type TextMetrics } from './metrics.ts';
import { splitQrelsByQuery } from './query-split.ts';
import { applyTextReranker, fitTextReranker, stageFeatures, stageScores, type FirstStage, type TextLceOptions } from './rerank-stage.ts';
import { defaultTokenizerOptions } from './tokenize.ts';
import type { TowerOptim } from './tower.ts';
import { trainDualEncoder, type TextTrainOptions, type TextTrainResult } from './train.ts';
import type { Recipe } from '../recipe/schema.ts';

export const defaultDualEncoder: DualEncoderConfig = {
  tower: 'boe',
  shared: true,
  dim: 128,
  proj: 0,
  pooling: 'sqrt',
  heads: 2,
  blocks: 1,
  window: 128,
  stride: 96,
  queryMaxLen: 64,
  tokenizer: defaultTokenizerOptions,
  seed: 1,
};

export const defaultTowerOptim: TowerOptim = { lrSparse: 0.005, lrDense: 0.001 };

export interface TextExperimentOptions {
  beir: string | BeirData;
  model: DualEncoderConfig;
  optim: TowerOptim;
  train: TextTrainOptions;
  /** The negatives recipe (default: the text recipe shaped by train.temperature / hardNegatives / hardPool). */
  recipe?: Recipe;
  /** Validation for early stopping: a seeded fraction of the train queries held out (see train.evalEvery). */
  validation?: { holdout: number; splitSeed: number };
  bm25: Bm25Options;
  /** 'rrf' fusion constant and member weights [bm25, dense]. */
  rrfK: number;
  weights: [number, number];
  backend?: BackendChoice;
  /** Save the trained model here (atomic); with `rerank`, the reranker goes to rerankerDir(out). */
  out?: string;
  /** Retrieve → rerank: the dual encoder trains on the train queries minus a held-out slice, the reranker on that slice. */
  rerank?: TextRerankOptions;
  log?: (line: string) => void;
}

export interface TextRerankOptions {
  /** The reranked first stage and its list length. */
  over: FirstStage;
  K: number;
  /** Fraction of the train queries held out for the reranker (seeded by splitSeed). */
  holdout: number;
  splitSeed: number;
  lce: TextLceOptions;
}

export interface TextRerankResult {
  over: FirstStage;
  K: number;
  fitQueries: number;
  heldOutQueries: number;
  /** Test metrics of the first stage's top-K and of the same lists reranked. */
  retrieve: TextMetrics;
  rerank: TextMetrics;
  losses: number[];
  seconds: number;
  /** Where the reranker was saved (null without `out`). */
  out: string | null;
}

/** The reranker of a model saved to `out` sits beside it. */
export const rerankerDir = (out: string): string => `${out.replace(/[\\/]+$/, '')}-reranker`;

export interface TextExperimentResult {
  data: { dir: string; docs: number; queries: number; trainQueries: number; testQueries: number; chunks: number };
  /** ensemble: RRF of the two top-100 lists; softVote: min-max-normalised score sum (src/mine/fusion.ts). */
  metrics: { bm25: TextMetrics; dense: TextMetrics; ensemble: TextMetrics; softVote: TextMetrics };
  train: TextTrainResult;
  rerank?: TextRerankResult;
  seconds: { load: number; bm25Index: number; encode: number; total: number };
  backend: string;
  /** The trained dual encoder and the corpus it was trained on (for encoding and search after the run). */
  encoder: DualEncoder;
  corpus: TextCorpus;
}

export interface Bm25ExperimentResult {
  data: { dir: string; docs: number; queries: number; trainQueries: number; testQueries: number };
  metrics: { bm25: TextMetrics };
  seconds: { load: number; bm25Index: number; total: number };
}

/**
 * BM25 alone on the test qrels (`towerlab text --bm25-only`): no dual encoder is built, so no untrained
 * encoder's row is reported beside it. Needs no train qrels.
 */
export function runBm25Experiment(o: { beir: string | BeirData; tokenizer: DualEncoderConfig['tokenizer']; bm25: Bm25Options }): Bm25ExperimentResult {
  const t0 = performance.now();
  const data = typeof o.beir === 'string' ? loadBeir(o.beir) : o.beir;
  const testQrels = data.qrels.get('test');
  if (!testQrels) throw new UserError(`${data.dir}: no qrels/test.tsv to evaluate on`);
  const corpus = new TextCorpus(data, o.tokenizer);
  const tLoad = performance.now();
  const bm25 = new Bm25Index(corpus.docWords, o.bm25);
  const tIndex = performance.now();
  const rel = relevantByQuery(testQrels);
  const qs = Int32Array.from([...rel.keys()]).sort();
  const lists = new Bm25Retriever(bm25, corpus.queryWords).retrieve(qs, 100);
  const trainQrels = data.qrels.get('train');
  return {
    data: { dir: data.dir, docs: data.docIds.length, queries: data.queries.length, trainQueries: trainQrels ? new Set(trainQrels.query).size : 0, testQueries: qs.length },
    metrics: { bm25: evaluateRanking(lists, qs, rel) },
    seconds: { load: (tLoad - t0) / 1000, bm25Index: (tIndex - tLoad) / 1000, total: (performance.now() - t0) / 1000 },
  };
}

export async function runTextExperiment(o: TextExperimentOptions): Promise<TextExperimentResult> {
  const t0 = performance.now();
  const b = await getBackend(o.backend ?? 'auto');
  const data = typeof o.beir === 'string' ? loadBeir(o.beir) : o.beir;
  const trainQrels = data.qrels.get('train');
  const testQrels = data.qrels.get('test');
  if (!trainQrels) throw new UserError(`${data.dir}: no qrels/train.tsv to train the dual encoder on`);
  if (!testQrels) throw new UserError(`${data.dir}: no qrels/test.tsv to evaluate on`);
  const corpus = new TextCorpus(data, o.model.tokenizer);
  const tLoad = performance.now();
  const bm25 = new Bm25Index(corpus.docWords, o.bm25);
  const tIndex = performance.now();
  const rel = relevantByQuery(testQrels);
  const qs = Int32Array.from([...rel.keys()]).sort();
  const K = 100;
  const bmLists = new Bm25Retriever(bm25, corpus.queryWords).retrieve(qs, K);

  // With a reranker, the dual encoder never sees the held-out queries the reranker is trained on.
  const rr = o.rerank;
  if (rr && !(rr.holdout > 0 && rr.holdout < 1)) throw new UserError(`--rerank-holdout: must be in (0, 1), got ${rr.holdout}`);
  const split = rr ? splitQrelsByQuery(trainQrels, rr.holdout, rr.splitSeed) : null;
  if (split && (!split.fit.query.length || !split.dev.query.length)) {
    throw new UserError(`--rerank-holdout ${rr!.holdout}: ${new Set(trainQrels.query).size} train queries leave one side of the split empty`);
  }
  // Sizes from the command line against this machine's memory, before the towers and the miner allocate.
  // (A recipe's own sizes are checked against the data when its sources are built.)
  checkTextLimits({ buckets: o.model.tokenizer.buckets, dim: o.model.dim, batchSize: o.train.batchSize, hardNegatives: o.recipe ? 0 : o.train.hardNegatives, hardPool: o.train.hardPool, trainQueries: new Set(trainQrels.query).size });
  const enc = new DualEncoder({ ...o.model }, o.optim);
  let fit = split ? split.fit : trainQrels;
  let val = null;
  if (o.validation) {
    const v = o.validation;
    if (!(v.holdout > 0 && v.holdout < 1)) throw new UserError(`--val-holdout: must be in (0, 1), got ${v.holdout}`);
    const vs = splitQrelsByQuery(fit, v.holdout, v.splitSeed);
    if (!vs.fit.query.length || !vs.dev.query.length) throw new UserError(`--val-holdout ${v.holdout}: ${new Set(fit.query).size} train queries leave one side of the split empty`);
    fit = vs.fit;
    const relVal = relevantByQuery(vs.dev);
    val = { queries: Int32Array.from(relVal.keys()).sort(), relevant: relVal };
  }
  const train = trainDualEncoder(b, enc, corpus, fit, { ...o.train, log: o.log }, { bm25, recipe: o.recipe, val });
  const tEnc0 = performance.now();
  const dense = new DualEncoderRetriever(`dual-encoder:${o.model.tower}`, enc, corpus, b);
  const deLists = dense.retrieve(qs, K);
  const tEnc1 = performance.now();
  const ens = fuseRankedLists([bmLists, deLists], { method: 'rrf', k: K, rrfK: o.rrfK, weights: o.weights });
  const soft = fuseRankedLists([bmLists, deLists], { method: 'soft-vote', k: K, weights: o.weights });
  if (o.out) enc.save(o.out, { data: data.dir, train: { ...o.train, log: undefined }, recipe: o.recipe ?? null, metrics: { dense: evaluateRanking(deLists, qs, rel) }, ...(split ? { heldOutQueries: split.devQueries.length } : {}) });
  let rerank: TextRerankResult | undefined;
  if (rr && split) {
    const tr = performance.now();
    const ctx = { corpus, bm25, dense, K: rr.K };
    const relDev = relevantByQuery(split.dev);
    const qDev = Int32Array.from(relDev.keys()).sort();
    const devFeats = stageFeatures(ctx, stageScores(ctx, qDev), rr.over);
    const fitted = fitTextReranker(b, devFeats, relDev, rr.lce, o.model.seed);
    if (fitted.losses.some((l) => Number.isNaN(l))) {
      throw new UserError(`no held-out train query has a positive in the first stage's top-${rr.K} with ${rr.lce.G - 1} other candidates: nothing to train the reranker on (raise --rerank-k or --rerank-holdout, or lower --rerank-group)`);
    }
    const testFeats = stageFeatures(ctx, stageScores(ctx, qs), rr.over);
    const out = o.out ? rerankerDir(o.out) : null;
    const training = { over: rr.over, heldOutQueries: qDev.length, ...rr.lce, losses: fitted.losses, seconds: (performance.now() - tr) / 1000 };
    if (out) {
      const manifest = JSON.parse(readFileSync(join(o.out!, 'manifest.json'), 'utf8'));
      saveReranker(out, fitted.model, {
        lce: fitted.lce, K: rr.K, dim: o.model.dim, features: [...TEXT_FEATURES],
        members: [{ dir: resolve(o.out!), checksum: manifest.checksums?.['tensors.bin'] ?? null }],
        data: { beir: data.dir, bm25: o.bm25 }, split: { holdout: rr.holdout, splitSeed: rr.splitSeed }, training,
      }, fitted.standardizer);
    }
    rerank = {
      over: rr.over, K: rr.K, fitQueries: new Set(split.fit.query).size, heldOutQueries: qDev.length,
      retrieve: evaluateRanking(testFeats.lists, qs, rel), rerank: evaluateRanking(applyTextReranker(fitted, testFeats), qs, rel),
      losses: fitted.losses, seconds: training.seconds, out,
    };
  }
  const trainQueries = new Set(trainQrels.query).size;
  return {
    data: { dir: data.dir, docs: data.docIds.length, queries: data.queries.length, trainQueries, testQueries: qs.length, chunks: dense.chunks.doc.length },
    metrics: { bm25: evaluateRanking(bmLists, qs, rel), dense: evaluateRanking(deLists, qs, rel), ensemble: evaluateRanking(ens, qs, rel), softVote: evaluateRanking(soft, qs, rel) },
    train,
    rerank,
    seconds: { load: (tLoad - t0) / 1000, bm25Index: (tIndex - tLoad) / 1000, encode: (tEnc1 - tEnc0) / 1000, total: (performance.now() - t0) / 1000 },
    backend: b.name,
    encoder: enc,
    corpus,
  };
}
