/**
 * Training a text dual encoder through the one contrastive step (src/train/contrastive-step.ts) with any
 * negatives recipe: the pair is src/text/text-pair.ts, the rows src/text/training-set.ts, the negatives
 * buildSources(recipe) — in-batch, uniform, popularity, queue (+ momentum), BM25 / mined pools, same-tower,
 * logQ, false-negative masking, debiased and symmetric losses, batch samplers — exactly as for the
 * recommenders, and the one training loop (src/train/loop.ts) runs it: optional self-supervised pre-training
 * epochs on the corpus (ICT, title → body; the same step and recipe, rows without a query id), then supervised
 * epochs over the train qrels composed by the recipe's batch sampler; optional validation on held-out train
 * queries (NDCG@10) with early stopping and the best weights restored; an atomic checkpoint after every epoch
 * that `resume` continues from (weights, optimiser state, the sources' state — queue, momentum copy — and the
 * streaming logQ estimate).
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
import type { CollapseCheck } from '../train/collapse.ts';
import type { NoLearningCheck } from '../train/no-learning.ts';
import { runLoop, type LoopEpoch, type LoopState } from '../train/loop.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Qrels } from './beir.ts';
import type { Bm25Index } from './bm25.ts';
import type { TextCorpus } from './corpus.ts';
import { DualEncoderRetriever, type DualEncoder } from './dual-encoder.ts';
import { evaluateRanking } from './metrics.ts';
import { TextEncoderPair, type TextBatchInput } from './text-pair.ts';
import { PretrainRows, SentenceCache, TextTrainingSet, type PretrainKind } from './training-set.ts';

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
  /** Collapse check over the validation history (src/train/collapse.ts). */
  collapse: CollapseCheck;
  /** Never-learned check over the validation history (src/train/no-learning.ts; text has no popularity baseline). */
  noLearning: NoLearningCheck;
}

export const CHECKPOINT_FORMAT = 'towerlab-text-checkpoint';

/**
 * The one contrastive step for a text pair with `recipe`'s sources built on the training set's data (queries are
 * users, documents items), or a UserError naming the field for a combination text cannot train.
 */
export function textStep(b: Backend, pair: TextEncoderPair, set: TextTrainingSet, recipe: Recipe, batchSize: number): ContrastiveStep<TextBatchInput> {
  const sources = buildSources(recipe, { ...set.sourceContext(), dim: pair.dim, batchSize });
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

/** What a text checkpoint holds besides the arrays: the phase it was written in and the loop's state. */
interface TextCheckpoint {
  phase: 'pretrain' | 'train';
  state: LoopState;
  /** Pre-training done before the supervised phase (its epochs and seconds), for the result after a resume. */
  pretrain: { epochs: LoopEpoch[]; seconds: number };
}

/**
 * Trains `pair` on `set` with `recipe` through the one training loop (src/train/loop.ts): a pre-training phase
 * (when asked) and the supervised phase are two tasks of it sharing one step (step count, optimiser and sources'
 * state carry over). Returns per-epoch losses and the validation history.
 */
export function trainText(b: Backend, pair: TextEncoderPair, set: TextTrainingSet, recipe: Recipe, o: TextTrainOptions, val: TextValidation | null = null): TextTrainResult {
  const n = set.users.length;
  if (n === 0 && o.epochs > 0) throw new UserError('text: no training pairs (qrels with grade > 0)');
  const B = Math.max(1, Math.min(o.batchSize, n || o.batchSize));
  const step = textStep(b, pair, set, recipe, B);
  const pre = o.pretrain === 'none' ? 0 : o.pretrainEpochs;
  const ck = o.resume ? resume(o, pair, step, recipe) : null;
  let pretrain: TextCheckpoint['pretrain'] = ck?.pretrain ?? { epochs: [], seconds: 0 };
  const snapshot = () => pair.stateArrays(false).map(([, a]) => (a as Float32Array).slice());
  const restore = (snap: Float32Array[]) => pair.stateArrays(false).forEach(([, a], i) => a.set(snap[i]));
  const checkpoint = (phase: TextCheckpoint['phase']) =>
    o.checkpointDir
      ? (state: LoopState) => {
          const meta: TextCheckpoint = { phase, state, pretrain: phase === 'train' ? pretrain : { epochs: [], seconds: 0 } };
          writeTensorDir(o.checkpointDir!, CHECKPOINT_FORMAT, 1, { ...meta, recipe, config: pair.enc.config, optim: pair.enc.optim, frequency: step.sources.freq.snapshot?.() }, [
            ...pair.stateArrays(true),
            ...step.stateArrays(),
          ]);
        }
      : undefined;
  const fresh = (stepsSoFar: number): LoopState => ({ epoch: 0, step: stepsSoFar, best: null, bestEpoch: 0, badEvals: 0, history: [], epochs: [], examples: 0, trainSeconds: 0 });

  if (pre > 0 && ck?.phase !== 'train') {
    // Self-supervised pairs, drawn afresh every epoch; the last batch is kept when it has ≥ 2 rows.
    const kind = o.pretrain as Exclude<PretrainKind, 'none'>;
    const sentences = new SentenceCache();
    const count = new PretrainRows(pair.docs, kind, new Rng(0), sentences).items.length;
    let rows: PretrainRows | null = null;
    let order = new Int32Array(0);
    const r = runLoop<TextBatchInput>(
      {
        step,
        stepsPerEpoch: Math.max(1, Math.ceil((count - 1) / B)),
        beginEpoch(_epoch, rng) {
          rows = new PretrainRows(pair.docs, kind, rng, sentences);
          order = Int32Array.from({ length: rows.items.length }, (_, i) => i);
          rng.shuffle(order);
        },
        batch(s) {
          const idx = order.subarray(s * B, Math.min(order.length, (s + 1) * B));
          return { batch: rows!.batch(idx), examples: idx.length };
        },
        snapshot,
        restore,
        checkpoint: checkpoint('pretrain'),
        onEpochEnd: (e) => o.log?.(`pretrain (${kind}) epoch ${e.epoch}/${pre}: loss ${e.loss.toFixed(4)}`),
      },
      // Its own seed stream: pre-training epoch e and supervised epoch e draw independently.
      { epochs: pre, seed: o.seed + 7_919, evalEvery: 0, patience: 0, valMetric: 'ndcg@10', progress: 'none', resume: ck?.state },
    );
    pretrain = { epochs: r.state.epochs ?? [], seconds: r.state.trainSeconds };
  }

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
  const res = runLoop<TextBatchInput>(
    {
      step,
      stepsPerEpoch,
      beginEpoch: (epoch, rng) => composer.beginEpoch(epoch, rng),
      batch(s) {
        const idx = composer.batch(s);
        return { batch: set.batch(idx), examples: idx.length };
      },
      validate: val ? () => ({ metrics: { 'ndcg@10': validate(b, pair, val) } }) : undefined,
      snapshot,
      restore,
      checkpoint: checkpoint('train'),
      onEpochEnd: (e, v) =>
        o.log?.(`train epoch ${e.epoch}/${o.epochs}: loss ${e.loss.toFixed(4)}${v ? `; validation NDCG@10 ${v.metrics['ndcg@10'].toFixed(4)}` : ''}`),
    },
    { epochs: o.epochs, seed: o.seed, evalEvery: val ? o.evalEvery : 0, patience: o.patience, valMetric: 'ndcg@10', progress: 'none', resume: ck?.phase === 'train' ? ck.state : fresh(step.step) },
  );
  const st = res.state;
  return {
    steps: st.step,
    seconds: pretrain.seconds + st.trainSeconds,
    pretrainSeconds: pretrain.seconds,
    recipe: recipe.name ?? '(unnamed)',
    history: [
      ...pretrain.epochs.map((e) => ({ phase: 'pretrain' as const, epoch: e.epoch, loss: e.loss })),
      ...(st.epochs ?? []).map((e) => ({ phase: 'train' as const, epoch: e.epoch, loss: e.loss })),
    ],
    validation: st.history.map((h) => ({ epoch: h.epoch, ndcg10: h.metrics['ndcg@10'] })),
    bestEpoch: st.bestEpoch,
    stoppedEarly: res.stoppedEarly,
    collapse: res.collapse,
    noLearning: res.noLearning,
  };
}

/** Restores weights, optimiser and sources' state from the checkpoint; returns where the loop stood. */
function resume(o: TextTrainOptions, pair: TextEncoderPair, step: ContrastiveStep<TextBatchInput>, recipe: Recipe): TextCheckpoint {
  const dir = o.checkpointDir;
  if (!dir || !existsSync(join(dir, MANIFEST))) throw new UserError(`--resume: no text checkpoint found in ${dir ?? '(no checkpoint directory)'}`);
  const { manifest, arrays } = readTensorDir(dir, CHECKPOINT_FORMAT, 1);
  if (JSON.stringify(manifest.config) !== JSON.stringify(pair.enc.config)) throw new UserError(`--resume: ${dir} was written with another model configuration`);
  if (JSON.stringify(manifest.recipe) !== JSON.stringify(recipe)) throw new UserError(`--resume: ${dir} was written with another recipe`);
  if (manifest.phase !== 'pretrain' && manifest.phase !== 'train') throw new UserError(`--resume: ${dir}: not a text training checkpoint (no phase)`);
  try {
    pair.restoreState((n) => arrays.get(n));
    step.restoreState((n) => arrays.get(n));
    const freq = step.sources.freq;
    if (manifest.frequency && freq.restore) freq.restore(manifest.frequency as FrequencyState);
  } catch (e) {
    throw new UserError(`--resume: ${(e as Error).message}`);
  }
  return { phase: manifest.phase, state: manifest.state as LoopState, pretrain: manifest.pretrain as TextCheckpoint['pretrain'] };
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
