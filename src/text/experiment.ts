/**
 * One text-retrieval experiment on a BEIR folder: BM25 baseline, a dual encoder trained on the train qrels
 * (with optional pre-training and hard negatives), and their ensemble (reciprocal-rank fusion of the two
 * top-100 lists, src/mine/fusion.ts), all evaluated on the test qrels: NDCG@10, Recall@100, MRR@10.
 */
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { fuseRankedLists } from '../mine/fusion.ts';
import { UserError } from '../util/errors.ts';
import { loadBeir, relevantByQuery, type BeirData } from './beir.ts';
import { Bm25Index, Bm25Retriever, defaultBm25Options, type Bm25Options } from './bm25.ts';
import { TextCorpus } from './corpus.ts';
import { DualEncoder, DualEncoderRetriever, type DualEncoderConfig } from './dual-encoder.ts';
import { evaluateRanking, type TextMetrics } from './metrics.ts';
import { defaultTokenizerOptions } from './tokenize.ts';
import type { TowerOptim } from './tower.ts';
import { TextTrainer, type TextTrainOptions, type TextTrainResult } from './train.ts';

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
  bm25: Bm25Options;
  /** 'rrf' fusion constant and member weights [bm25, dense]. */
  rrfK: number;
  weights: [number, number];
  backend?: BackendChoice;
  /** Save the trained model here (atomic). */
  out?: string;
  log?: (line: string) => void;
}

export interface TextExperimentResult {
  data: { dir: string; docs: number; queries: number; trainQueries: number; testQueries: number; chunks: number };
  /** ensemble: RRF of the two top-100 lists; softVote: min-max-normalised score sum (src/mine/fusion.ts). */
  metrics: { bm25: TextMetrics; dense: TextMetrics; ensemble: TextMetrics; softVote: TextMetrics };
  train: TextTrainResult;
  seconds: { load: number; bm25Index: number; encode: number; total: number };
  backend: string;
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

  const enc = new DualEncoder({ ...o.model }, o.optim);
  const trainer = new TextTrainer(b, enc, corpus, { ...o.train, log: o.log });
  const train = trainer.run(trainQrels, bm25);
  const tEnc0 = performance.now();
  const dense = new DualEncoderRetriever(`dual-encoder:${o.model.tower}`, enc, corpus, b);
  const deLists = dense.retrieve(qs, K);
  const tEnc1 = performance.now();
  const ens = fuseRankedLists([bmLists, deLists], { method: 'rrf', k: K, rrfK: o.rrfK, weights: o.weights });
  const soft = fuseRankedLists([bmLists, deLists], { method: 'soft-vote', k: K, weights: o.weights });
  if (o.out) enc.save(o.out, { data: data.dir, train: o.train, metrics: { dense: evaluateRanking(deLists, qs, rel) } });
  const trainQueries = new Set(trainQrels.query).size;
  return {
    data: { dir: data.dir, docs: data.docIds.length, queries: data.queries.length, trainQueries, testQueries: qs.length, chunks: dense.chunks.doc.length },
    metrics: { bm25: evaluateRanking(bmLists, qs, rel), dense: evaluateRanking(deLists, qs, rel), ensemble: evaluateRanking(ens, qs, rel), softVote: evaluateRanking(soft, qs, rel) },
    train,
    seconds: { load: (tLoad - t0) / 1000, bm25Index: (tIndex - tLoad) / 1000, encode: (tEnc1 - tEnc0) / 1000, total: (performance.now() - t0) / 1000 },
    backend: b.name,
  };
}
