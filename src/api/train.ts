/**
 * The library's front door: `await train({ data })` trains a two-tower model with every option defaulted (the
 * CLI's defaults: random 80/10/10 split, the default recipe, 10 epochs with early stopping on validation
 * recall@20), evaluates it on the test split and returns a Model. `evaluate(model, data)` ranks the full
 * catalogue for other held-out interactions.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { csrFromPairs } from '../data/csr.ts';
import type { SplitSpec } from '../data/split.ts';
import { evaluateRanking } from '../eval/ranking.ts';
import { embeddingScorer } from '../eval/scorer.ts';
import { defaultModelOptions, type ModelOptions } from '../model/build.ts';
import { loadModel } from '../model/saved-model.ts';
import { defaultRecipe, loadRecipe, parseRecipe, type Recipe } from '../recipe/schema.ts';
import { runExperiment, type ExperimentResult } from '../train/experiment.ts';
import type { TrainConfig } from '../train/trainer.ts';
import { UserError } from '../util/errors.ts';
import { toInteractions, type InteractionData } from './data.ts';
import { Model } from './model.ts';
import { isTextPairs, trainText, type TextModel, type TextTrainOptionsApi } from './text-model.ts';

export interface TrainOptions {
  /** Interactions: a path, `{ users, items, times? }` columns, `[{ user, item, … }]` rows, … (see data.ts). */
  data: InteractionData;
  /** A recipe object (validated), a path to a recipe JSON file, or absent for the default recipe. */
  recipe?: Recipe | Record<string, unknown> | string;
  /** Default: random, val 0.1, test 0.1, seed 42 (as the CLI). */
  split?: SplitSpec;
  /** Overrides of defaultModelOptions (dim 64, mlp [128, 64], …). */
  model?: Partial<ModelOptions>;
  /** Overrides of the training loop (epochs 10, batch 1024, patience 3, …). */
  train?: Partial<Omit<TrainConfig, 'checkpointDir' | 'logPath'>>;
  /** Cut-offs of the test metrics (default [10, 20, 50]). */
  ks?: number[];
  /** Keep the run (model, checkpoint, log) in this folder; default: nothing written. */
  out?: string;
  backend?: BackendChoice;
}

export const defaultTrainConfig: Omit<TrainConfig, 'checkpointDir' | 'logPath'> = {
  epochs: 10,
  batchSize: 1024,
  seed: 1,
  evalEvery: 1,
  patience: 3,
  valMetric: 'recall@20',
  valMaxUsers: 5000,
  resume: false,
  progress: 'none',
  logEvery: 50,
};

export const defaultSplit: SplitSpec = { kind: 'random', val: 0.1, test: 0.1, seed: 42 };

/** A trained model plus what its run measured. */
export class TrainedModel extends Model {
  constructor(
    model: Model,
    /** Test metrics beside the popularity baseline, training summary, data sizes. */
    readonly result: Omit<ExperimentResult, 'model'>,
  ) {
    super(model.artifacts, model.backend, result.metrics);
  }
}

function recipeOf(r: TrainOptions['recipe']): Recipe {
  if (r === undefined) return defaultRecipe;
  if (typeof r === 'string') return loadRecipe(r);
  return parseRecipe(r);
}

/**
 * Trains a model. Interaction data gives a two-tower recommender (TrainedModel); `{ pairs: [{ query, document }] }`
 * gives a text dual encoder (TextModel).
 */
export async function train(options: TextTrainOptionsApi): Promise<TextModel>;
export async function train(options: TrainOptions): Promise<TrainedModel>;
export async function train(options: TrainOptions | TextTrainOptionsApi): Promise<TrainedModel | TextModel> {
  if (typeof options !== 'object' || options === null || options.data === undefined) throw new UserError('train: expected { data, recipe?, … }');
  if (isTextPairs(options.data)) {
    const t = options as TextTrainOptionsApi;
    return trainText({ ...t, recipe: t.recipe === undefined ? undefined : recipeOf(t.recipe) });
  }
  return trainTwoTower(options as TrainOptions);
}

async function trainTwoTower(options: TrainOptions): Promise<TrainedModel> {
  const loaded = await toInteractions(options.data);
  const modelOptions: ModelOptions = { ...defaultModelOptions, ...options.model };
  const trainConfig = { ...defaultTrainConfig, ...options.train };
  // The run writes its model to `out`; without one, to a temporary folder read back and removed, so the returned
  // model carries exactly what a saved one does (vocabularies, features, seen items).
  const out = options.out ?? mkdtempSync(join(tmpdir(), 'towerlab-train-'));
  try {
    const result = await runExperiment({
      data: typeof options.data === 'string' ? { path: options.data } : { path: loaded.source },
      split: options.split ?? defaultSplit,
      recipe: recipeOf(options.recipe),
      model: modelOptions,
      train: trainConfig,
      ks: options.ks ?? [10, 20, 50],
      out,
      backend: options.backend,
      loaded,
    });
    const artifacts = loadModel(join(out, 'model'));
    const { model: _trained, ...rest } = result;
    return new TrainedModel(new Model(artifacts, await getBackend(options.backend), result.metrics), rest);
  } finally {
    if (options.out === undefined) rmSync(out, { recursive: true, force: true });
  }
}

export interface EvaluateOptions {
  ks?: number[];
  /** Leave out each user's training items when ranking (default true). */
  excludeSeen?: boolean;
}

/**
 * Full-catalogue ranking metrics (recall@K, ndcg@K, …) of a model on held-out interactions. Rows whose user or
 * item the model does not know are left out; `skipped` counts them.
 */
export async function evaluate(model: Model, data: InteractionData, options: EvaluateOptions = {}): Promise<{ metrics: Record<string, number>; users: number; skipped: number }> {
  const test = await toInteractions(data);
  const userIndex = new Map(model.userIds.map((id, i) => [id, i]));
  const itemIndex = new Map(model.itemIds.map((id, i) => [id, i]));
  const us: number[] = [];
  const is: number[] = [];
  let skipped = 0;
  for (let r = 0; r < test.users.length; r++) {
    const u = userIndex.get(test.userVocab.ids[test.users[r]]);
    const i = itemIndex.get(test.itemVocab.ids[test.items[r]]);
    if (u === undefined || i === undefined) skipped++;
    else {
      us.push(u);
      is.push(i);
    }
  }
  const numUsers = model.userIds.length;
  const numItems = model.itemIds.length;
  const targets = csrFromPairs(numUsers, Int32Array.from(us), Int32Array.from(is), true);
  const { backend } = model;
  const towers = model.towers;
  const scorer = embeddingScorer(backend, (ids, out) => towers.user.embed(backend, ids, out), towers.embedAllItems(backend), towers.dim, numItems);
  const r = evaluateRanking({
    backend,
    scorer,
    test: targets,
    exclude: options.excludeSeen === false ? null : model.artifacts.seen,
    ks: options.ks ?? [10, 20, 50],
    itemPopularity: Float64Array.from(model.artifacts.itemCounts),
  });
  let users = 0;
  for (let u = 0; u < numUsers; u++) if (targets.offsets[u + 1] > targets.offsets[u]) users++;
  return { metrics: r.metrics, users, skipped };
}
