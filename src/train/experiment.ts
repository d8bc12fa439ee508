/**
 * One experiment end to end: load → split → prepare → build model → train (with validation) → evaluate on
 * the test split beside the popularity baseline → save the model. What `towerlab train` runs, and what
 * benches and `compare` call per recipe and seed.
 */
import { join } from 'node:path';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import type { Backend } from '../compute/backend.ts';
import type { DataSpec } from '../data/load.ts';
import { dataFingerprint } from '../data/fingerprint.ts';
import { loadItemNames } from '../data/item-names.ts';
import { prepare, type Prepared } from '../data/prepare.ts';
import { splitInteractions, type SplitSpec } from '../data/split.ts';
import { coldTestUsers, loadSplit } from '../data/split-files.ts';
import type { Interactions, Split } from '../data/types.ts';
import { popularityBaseline } from '../eval/baselines.ts';
import { evaluateRanking, type EvalResult, type PerUserMetrics } from '../eval/ranking.ts';
import { embeddingScorer } from '../eval/scorer.ts';
import { buildModel, type ModelOptions } from '../model/build.ts';
import { featuresForSave, saveModel } from '../model/saved-model.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import type { Recipe } from '../recipe/schema.ts';
import { train, type TrainConfig, type TrainSummary } from './trainer.ts';

export interface ExperimentOptions {
  data: DataSpec;
  split: SplitSpec;
  recipe: Recipe;
  model: ModelOptions;
  train: Omit<TrainConfig, 'checkpointDir' | 'logPath'>;
  /** Cut-offs of the test metrics. */
  ks: number[];
  /** Output directory for the model, checkpoint and log (null = keep nothing). */
  out: string | null;
  backend?: BackendChoice;
  /** Already loaded data (skips loading; `data` is then only recorded). */
  loaded?: Interactions;
  /** With `loaded`: its split already made (needed for a split given as files). */
  loadedSplit?: Split;
  /** Skip the test evaluation (metrics and baselines are then empty): for search on validation only. */
  skipTest?: boolean;
  /** Also return how often each item lands in a test user's top-K for this K (`compare`'s calibration plot). */
  countRecommendationsAt?: number;
  /** Keep per-user test recall@K / ndcg@K (compare's confidence intervals and paired tests). */
  keepPerUser?: boolean;
  /** `FILE[:COLUMN]` naming the items (data/item-names.ts): saved with the model, returned as itemNames. */
  itemNames?: string;
}

export interface ExperimentResult {
  metrics: Record<string, number>;
  baselines: { popularity: Record<string, number> };
  examples_per_s: number;
  train: TrainSummary;
  evalSeconds: number;
  data: {
    source: string;
    users: number;
    items: number;
    interactions: number;
    split: string;
    train: number;
    val: number;
    test: number;
    testUsers: number;
    /** Test users with no training interactions: kept in the test set (they count in every metric), not dropped. */
    testUsersWithoutTrain?: number;
  };
  backend: string;
  model: TwoTowerModel;
  /** With countRecommendationsAt: per item, the test users with it in their top-K. */
  recommendedCounts?: Float64Array;
  /** With countRecommendationsAt: training interactions per item (the catalogue's popularity). */
  itemCounts?: Float64Array;
  /** With ExperimentOptions.itemNames: per item, its name (null = none in the file). */
  itemNames?: (string | null)[];
  /** With keepPerUser: per-user test metrics, users in evaluation order. */
  perUser?: PerUserMetrics;
}

export async function runExperiment(o: ExperimentOptions): Promise<ExperimentResult> {
  const backend = await getBackend(o.backend);
  const { data, split } = o.loaded
    ? { data: o.loaded, split: o.loadedSplit ?? splitInteractions(o.loaded, o.split) }
    : await loadSplit(o.data, o.split);
  const prep = prepare(data, split);
  const model = buildModel(o.model, prep.numUsers, prep.numItems, data.userFeatures, data.itemFeatures, data.userDense, data.itemDense);
  // The user tower's history is the training rows only: validation (and test) rows never enter it.
  model.setUserHistory(prep.seen);
  const itemNames = o.itemNames ? await loadItemNames(o.itemNames, data.itemVocab.ids, o.data.itemCol) : undefined;
  const artifacts = {
    ...(itemNames ? { itemNames } : {}),
    userIds: data.userVocab.ids,
    itemIds: data.itemVocab.ids,
    userFeatures: o.model.useFeatures ? featuresForSave(data.userFeatures) : [],
    itemFeatures: o.model.useFeatures ? featuresForSave(data.itemFeatures) : [],
    ...(o.model.useFeatures && data.userDense?.length ? { userDense: data.userDense } : {}),
    ...(o.model.useFeatures && data.itemDense?.length ? { itemDense: data.itemDense } : {}),
    itemCounts: Float32Array.from(prep.itemCounts),
    seen: prep.seenWithVal,
  };
  const summary = await train(
    {
      backend,
      model,
      recipe: o.recipe,
      trainUsers: prep.trainUsers,
      trainItems: prep.trainItems,
      numItems: prep.numItems,
      val: split.val.length ? prep.val : null,
      seen: prep.seen,
      itemCounts: prep.itemCounts,
      itemFeatures: data.itemFeatures,
      artifacts,
    },
    { ...o.train, checkpointDir: o.out ? join(o.out, 'checkpoint') : null, logPath: o.out ? join(o.out, 'train-log.jsonl') : null },
  );
  const t0 = performance.now();
  const testEval: EvalResult = o.skipTest ? ({ metrics: {} } as EvalResult) : evaluateTestRun(backend, model, prep, o.ks, o.countRecommendationsAt, o.keepPerUser);
  const metrics = testEval.metrics;
  const evalSeconds = (performance.now() - t0) / 1000;
  const popularity = o.skipTest ? {} : popularityBaseline({ backend, test: prep.test, exclude: prep.seenWithVal, ks: o.ks, itemPopularity: prep.itemCounts }).metrics;
  const testUsers = countRows(prep.test);
  const result: ExperimentResult = {
    metrics,
    baselines: { popularity },
    examples_per_s: summary.examplesPerSecond,
    train: summary,
    evalSeconds,
    data: {
      source: data.source,
      users: prep.numUsers,
      items: prep.numItems,
      interactions: data.users.length,
      split: split.description,
      train: split.train.length,
      val: split.val.length,
      test: split.test.length,
      testUsers,
      testUsersWithoutTrain: coldTestUsers(prep.test, prep.seen),
    },
    backend: backend.name,
    model,
    ...(itemNames ? { itemNames } : {}),
    ...(testEval.perUser ? { perUser: testEval.perUser } : {}),
  };
  if (testEval.recommendedCounts) {
    result.recommendedCounts = testEval.recommendedCounts;
    result.itemCounts = prep.itemCounts;
  }
  if (o.out) {
    saveModel(
      join(o.out, 'model'),
      {
        ...artifacts,
        model,
        meta: {
          recipe: o.recipe,
          modelOptions: o.model,
          data: o.data,
          split: o.split,
          splitDescription: split.description,
          fingerprint: dataFingerprint(data, split),
          metrics,
          baselines: result.baselines,
          train: { ...summary, history: summary.history },
        },
      },
      false,
    );
  }
  return result;
}

/**
 * Test metrics of a model: full-corpus ranking excluding each user's training and validation items, optionally
 * counting top-K recommendations per item and keeping per-user metrics.
 */
export function evaluateTestRun(backend: Backend, model: TwoTowerModel, prep: Prepared, ks: number[], countRecommendationsAt?: number, keepPerUser = false): EvalResult {
  const itemEmb = model.embedAllItems(backend);
  const scorer = embeddingScorer(backend, (ids, out) => model.user.embed(backend, ids, out), itemEmb, model.dim, prep.numItems);
  return evaluateRanking({ backend, scorer, test: prep.test, exclude: prep.seenWithVal, ks, itemPopularity: prep.itemCounts, countRecommendationsAt, keepPerUser });
}

function countRows(m: { rows: number; offsets: Int32Array }): number {
  let n = 0;
  for (let r = 0; r < m.rows; r++) if (m.offsets[r + 1] > m.offsets[r]) n++;
  return n;
}
