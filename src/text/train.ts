/**
 * Training a text dual encoder through the one contrastive step (src/train/contrastive-step.ts) with any
 * negatives recipe: the pair is src/text/text-pair.ts, the rows src/text/training-set.ts, the negatives
 * buildSources(recipe) — in-batch, uniform, popularity, queue (+ momentum), BM25 / mined pools, same-tower,
 * logQ, false-negative masking, debiased and symmetric losses, batch samplers — exactly as for the
 * recommenders. The loop: optional self-supervised pre-training epochs on the corpus (ICT, title → body; the
 * same step and recipe, rows without a query id), then supervised epochs over the train qrels composed by the
 * recipe's batch sampler; optional validation on held-out train queries (NDCG@10) with early stopping and the
 * best weights restored; an atomic checkpoint after every epoch that `resume` continues from (weights,
 * optimiser state, the sources' state — queue, momentum copy — and the streaming logQ estimate).
 *
 * Without a recipe, the text default (DEFAULT_TEXT_RECIPE_JSON = recipes/text.json): in-batch negatives plus 1
 * BM25 hard negative per row drawn from the query's 20 best-ranked non-positives, accidental hits (another
 * row's positive that is the same document; the same query's other positives) masked, no logQ, τ = 0.05.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import { MANIFEST, readTensorDir, writeTensorDir } from '../model/tensor-file.ts';
import { parseRecipe, type Recipe } from '../recipe/schema.ts';
import { buildBatchComposer } from '../sampling/batch-order/build.ts';
import { buildSources } from '../sampling/build.ts';
import type { FrequencyState } from '../sampling/frequency.ts';
import { ContrastiveStep } from '../train/contrastive-step.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Qrels } from './beir.ts';
import type { Bm25Index } from './bm25.ts';
import type { TextCorpus } from './corpus.ts';
import { DualEncoderRetriever, type DualEncoder } from './dual-encoder.ts';
import { evaluateRanking } from './metrics.ts';
import { TextEncoderPair, type TextBatchInput } from './text-pair.ts';
import { PretrainRows, SentenceCache, TextTrainingSet, type PretrainKind, type TextRows } from './training-set.ts';

export type { PretrainKind } from './training-set.ts';

/** The text default recipe (also recipes/text.json; a test keeps the two equal). */
export const DEFAULT_TEXT_RECIPE_JSON = {
  name: 'text: in-batch + BM25 hard negatives',
  temperature: 0.05,
  sources: [{ type: 'in-batch' }, { type: 'mined', from: 'bm25', n: 1, rankRange: [0, 20], sample: 'random' }],
  corrections: { maskSameItem: true, maskSameUser: true, logQ: false },
} as const;

/**
 * The default text recipe with the `towerlab text` shortcuts applied: temperature, BM25 hard negatives per row
 * (0 = in-batch only) and the pool they are drawn from.
 */
export function textRecipe(o: { temperature?: number; hardNegatives?: number; hardPool?: number } = {}, from = 'bm25'): Recipe {
  const hn = o.hardNegatives ?? 1;
  const pool = o.hardPool ?? 20;
  const [inBatch, mined] = DEFAULT_TEXT_RECIPE_JSON.sources;
  return parseRecipe({
    ...DEFAULT_TEXT_RECIPE_JSON,
    name: hn > 0 ? DEFAULT_TEXT_RECIPE_JSON.name : 'text: in-batch',
    temperature: o.temperature ?? DEFAULT_TEXT_RECIPE_JSON.temperature,
    sources: hn > 0 ? [inBatch, { ...mined, from, n: hn, rankRange: [0, pool] }] : [inBatch],
  }, 'text recipe');
}

export interface TextTrainOptions {
  epochs: number;
  batchSize: number;
  /** Shortcuts that shape the default recipe when no recipe is given (see textRecipe). */
  temperature: number;
  /** BM25 hard negatives per row per step (0 = in-batch negatives only). */
  hardNegatives: number;
  /** Size of each query's hard-negative pool (BM25 top-ranked non-positives). */
  hardPool: number;
  pretrain: PretrainKind;
  pretrainEpochs: number;
  seed: number;
  /** Validate every this many supervised epochs on the validation queries (0 = never). */
  evalEvery: number;
  /** Stop after this many validations without improvement (0 = never early). */
  patience: number;
  /** Atomic checkpoint after every epoch (null = none); `resume` continues from it. */
  checkpointDir: string | null;
  resume: boolean;
  log?: (line: string) => void;
}

export const defaultTextTrain: TextTrainOptions = {
  epochs: 10,
  batchSize: 64,
  temperature: 0.05,
  hardNegatives: 1,
  hardPool: 20,
  pretrain: 'none',
  pretrainEpochs: 2,
  seed: 1,
  evalEvery: 0,
  patience: 0,
  checkpointDir: null,
  resume: false,
};

export interface TextValidation {
  queries: Int32Array;
  relevant: Map<number, Map<number, number>>;
}

export interface TextTrainResult {
  steps: number;
  seconds: number;
  pretrainSeconds: number;
  recipe: string;
  /** Mean loss per epoch, pre-training epochs first. */
  history: Array<{ phase: 'pretrain' | 'train'; epoch: number; loss: number }>;
  /** Validation NDCG@10 after supervised epochs (empty without validation). */
  validation: Array<{ epoch: number; ndcg10: number }>;
  bestEpoch: number;
  stoppedEarly: boolean;
}

interface TextTrainerState {
  /** Epochs done: pre-training ones count first. */
  done: number;
  step: number;
  seconds: number;
  pretrainSeconds: number;
  history: TextTrainResult['history'];
  validation: TextTrainResult['validation'];
  best: number | null;
  bestEpoch: number;
  badEvals: number;
  stoppedEarly: boolean;
}

export const CHECKPOINT_FORMAT = 'towerlab-text-checkpoint';

/**
 * The one contrastive step for a text pair with `recipe`'s sources built on the training set's data (queries are
 * users, documents items), or a UserError naming the field for a combination text cannot train.
 */
export function textStep(b: Backend, pair: TextEncoderPair, set: TextTrainingSet, recipe: Recipe, batchSize: number): ContrastiveStep<TextBatchInput> {
  const sources = buildSources(recipe, { ...set.sourceContext(), dim: pair.dim, backend: b, batchSize });
  if (sources.fullCatalogue && pair.enc.config.tower === 'transformer') {
    // BoE encodes the whole corpus in about the time of a few batches; the transformer would hold every
    // document's token activations (documents × window × dim × its layers' buffers) at every step.
    throw new UserError(`recipe: field 'sources': a 'full-catalogue' source would run the transformer tower over all ${pair.numItems} documents at every step; use sampled sources (in-batch, mined, queue) with transformer towers, or the BoE tower`);
  }
  return new ContrastiveStep(b, pair, recipe, sources);
}

/**
 * Trains a dual encoder on the (grade > 0) pairs of `train`: with `recipe`, or the default text recipe shaped by
 * the options' shortcuts. `bm25` provides the 'bm25' pools; `pools` (mined elsewhere, e.g. a previous round:
 * src/text/mine-rounds.ts) replace BM25's in the default recipe (the recipe's mined source reads them as
 * `from: "pools"`).
 */
export function trainDualEncoder(
  b: Backend,
  enc: DualEncoder,
  corpus: TextCorpus,
  train: Qrels,
  o: TextTrainOptions,
  extra: { bm25?: Bm25Index | null; pools?: Map<number, Int32Array> | null; recipe?: Recipe; val?: TextValidation | null } = {},
): TextTrainResult {
  const pair = new TextEncoderPair(enc, corpus);
  const set = new TextTrainingSet(pair.docs, train, extra.bm25 ?? null);
  if (extra.pools) set.addPools('pools', extra.pools);
  const recipe = extra.recipe ?? textRecipe(o, extra.pools ? 'pools' : 'bm25');
  return trainText(b, pair, set, recipe, o, extra.val ?? null);
}

/** Trains `pair` on `set` with `recipe`; returns per-epoch losses and the validation history. */
export function trainText(b: Backend, pair: TextEncoderPair, set: TextTrainingSet, recipe: Recipe, o: TextTrainOptions, val: TextValidation | null = null): TextTrainResult {
  const n = set.users.length;
  if (n === 0 && o.epochs > 0) throw new UserError('text: no training pairs (qrels with grade > 0)');
  const B = Math.max(1, Math.min(o.batchSize, n || o.batchSize));
  const step = textStep(b, pair, set, recipe, B);
  const sources = step.sources;
  const stepsPerEpoch = Math.floor(n / B) || 1;
  const composer = buildBatchComposer(recipe.batchSampler, {
    backend: b,
    trainUsers: set.users,
    trainItems: set.items,
    numItems: set.numItems,
    batchSize: B,
    stepsPerEpoch,
    seed: o.seed,
    embed: () => embedSnapshot(b, pair),
  });
  const pre = o.pretrain === 'none' ? 0 : o.pretrainEpochs;
  let st: TextTrainerState = { done: 0, step: 0, seconds: 0, pretrainSeconds: 0, history: [], validation: [], best: null, bestEpoch: 0, badEvals: 0, stoppedEarly: false };
  if (o.resume) st = resume(o, pair, step, sources.freq, recipe);
  let best = st.best !== null ? pair.stateArrays(false).map(([, a]) => a.slice()) : null;
  const sentences = new SentenceCache();

  const runEpoch = (rows: TextRows, batches: (rng: Rng) => Iterable<ArrayLike<number>>, rng: Rng): number => {
    let total = 0;
    let k = 0;
    for (const idx of batches(rng)) {
      const { loss } = step.run(rows.batch(idx), rng);
      if (!Number.isFinite(loss)) throw new UserError(`text: training diverged at step ${step.step} (loss ${loss}); lower the learning rates or raise the temperature`);
      total += loss;
      k++;
    }
    return total / Math.max(1, k);
  };

  while (st.done < pre + o.epochs && !st.stoppedEarly) {
    const t0 = performance.now();
    const pretraining = st.done < pre;
    const epoch = pretraining ? st.done + 1 : st.done - pre + 1;
    // Per-epoch generators: a run resumed at an epoch boundary draws exactly what an uninterrupted one would.
    const rng = new Rng(o.seed * 1_000_003 + st.done + 1);
    step.beginEpoch(st.done);
    let loss: number;
    if (pretraining) {
      const rows = new PretrainRows(pair.docs, o.pretrain as Exclude<PretrainKind, 'none'>, rng, sentences);
      loss = runEpoch(rows, (r) => shuffledBatches(rows.items.length, B, r), rng);
    } else {
      composer.beginEpoch(epoch, rng);
      loss = runEpoch(set, function* () {
        for (let s = 0; s < stepsPerEpoch; s++) yield composer.batch(s);
      }, rng);
    }
    const secs = (performance.now() - t0) / 1000;
    st.seconds += secs;
    if (pretraining) st.pretrainSeconds += secs;
    st.done++;
    st.step = step.step;
    st.history.push({ phase: pretraining ? 'pretrain' : 'train', epoch, loss });
    o.log?.(`${pretraining ? `pretrain (${o.pretrain})` : 'train'} epoch ${epoch}/${pretraining ? pre : o.epochs}: loss ${loss.toFixed(4)}`);
    if (!pretraining && val && o.evalEvery > 0 && (epoch % o.evalEvery === 0 || epoch === o.epochs)) {
      const v = validate(b, pair, val);
      st.validation.push({ epoch, ndcg10: v });
      if (st.best === null || v > st.best) {
        st.best = v;
        st.bestEpoch = epoch;
        st.badEvals = 0;
        best = pair.stateArrays(false).map(([, a]) => a.slice());
      } else st.badEvals++;
      o.log?.(`  validation NDCG@10 ${v.toFixed(4)} (best ${st.best.toFixed(4)} @ ${st.bestEpoch})`);
      if (o.patience > 0 && st.badEvals >= o.patience) st.stoppedEarly = true;
    }
    if (o.checkpointDir) {
      writeTensorDir(o.checkpointDir, CHECKPOINT_FORMAT, 1, { trainer: st, recipe, config: pair.enc.config, optim: pair.enc.optim, frequency: sources.freq.snapshot?.() }, [
        ...pair.stateArrays(true),
        ...step.stateArrays(),
      ]);
    }
  }
  if (best) {
    const snap = best;
    pair.stateArrays(false).forEach(([, a], i) => a.set(snap[i] as never));
  }
  return {
    steps: st.step,
    seconds: st.seconds,
    pretrainSeconds: st.pretrainSeconds,
    recipe: recipe.name ?? '(unnamed)',
    history: st.history,
    validation: st.validation,
    bestEpoch: st.bestEpoch,
    stoppedEarly: st.stoppedEarly,
  };
}

function resume(o: TextTrainOptions, pair: TextEncoderPair, step: ContrastiveStep<unknown>, freq: { restore?(s: FrequencyState): void }, recipe: Recipe): TextTrainerState {
  const dir = o.checkpointDir;
  if (!dir || !existsSync(join(dir, MANIFEST))) throw new UserError(`--resume: no text checkpoint found in ${dir ?? '(no checkpoint directory)'}`);
  const { manifest, arrays } = readTensorDir(dir, CHECKPOINT_FORMAT, 1);
  if (JSON.stringify(manifest.config) !== JSON.stringify(pair.enc.config)) throw new UserError(`--resume: ${dir} was written with another model configuration`);
  if (JSON.stringify(manifest.recipe) !== JSON.stringify(recipe)) throw new UserError(`--resume: ${dir} was written with another recipe`);
  try {
    pair.restoreState((n) => arrays.get(n));
    step.restoreState((n) => arrays.get(n));
    if (manifest.frequency && freq.restore) freq.restore(manifest.frequency as FrequencyState);
  } catch (e) {
    throw new UserError(`--resume: ${(e as Error).message}`);
  }
  const st = manifest.trainer as TextTrainerState;
  step.step = st.step;
  return st;
}

/** A fresh permutation of n rows cut into batches of B (the last one kept when it has ≥ 2 rows). */
function* shuffledBatches(n: number, B: number, rng: Rng): Iterable<Int32Array> {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  rng.shuffle(order);
  for (let i = 0; i + 1 < n; i += B) yield order.subarray(i, Math.min(n, i + B));
}

/** Embeddings of every query (by id) and document, for batch samplers that look at the model. */
function embedSnapshot(b: Backend, pair: TextEncoderPair): { users: Float32Array; items: Float32Array; dim: number } {
  const d = pair.dim;
  const nq = pair.docs.corpus.queryWords.length;
  const queries = Array.from({ length: nq }, (_, q) => pair.docs.queryInput(q));
  const users = new Float32Array(nq * d);
  pair.embedQueries(b, { input: { queries, positives: null }, rows: nq, users: new Int32Array(nq), items: new Int32Array(nq) }, users);
  const items = new Float32Array(pair.numItems * d);
  pair.embedItems(b, Int32Array.from({ length: pair.numItems }, (_, i) => i), items);
  return { users, items, dim: d };
}

/** NDCG@10 of the validation queries over the whole corpus (every chunk; a document scores its best chunk). */
function validate(b: Backend, pair: TextEncoderPair, val: TextValidation): number {
  const r = new DualEncoderRetriever('validation', pair.enc, pair.docs.corpus, b);
  return evaluateRanking(r.retrieve(val.queries, 10), val.queries, val.relevant)['ndcg@10'];
}
