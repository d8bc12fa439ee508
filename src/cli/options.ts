/** Option groups shared by commands, and their conversion into library option objects. */
import { Command, Option } from 'commander';
import type { BackendChoice } from '../compute/index.ts';
import type { DataFormat } from '../data/format.ts';
import type { DataSpec } from '../data/load.ts';
import type { SplitSpec } from '../data/split.ts';
import { defaultModelOptions, type ModelOptions } from '../model/build.ts';
import type { SparseOptimizer } from '../model/embedding-table.ts';
import type { TrainConfig } from '../train/trainer.ts';
import { defaultProgressMode } from '../train/progress.ts';
import { UserError } from '../util/errors.ts';

/** What commander hands over for each option group below (flags camel-cased; `--no-x` gives x: boolean). */
export interface DataOptions {
  data?: string;
  format?: DataFormat;
  userCol?: string;
  itemCol?: string;
  timeCol?: string;
  ratingCol?: string;
  minRating?: number;
  userFeatures?: string;
  itemFeatures?: string;
  userFeaturesFile?: string;
  itemFeaturesFile?: string;
}

export interface SplitOptions {
  split?: 'random' | 'temporal' | 'loo';
  val: number;
  test: number;
  splitSeed: number;
}

export interface ModelFlagOptions {
  dim: number;
  mlp: string;
  featureDim: number;
  features: boolean;
  sparseOptimizer: SparseOptimizer;
  lrSparse: number;
  lrDense: number;
  seed: number;
}

export interface TrainFlagOptions {
  epochs: number;
  batchSize: number;
  evalEvery: number;
  patience: number;
  valMetric: string;
  valUsers: number;
  ks: string;
  logEvery: number;
  progress: boolean;
  backend: BackendChoice;
  seed: number;
  resume?: boolean;
}

/** `towerlab eval` (also handed to seq-model.ts for sequence models). */
export interface EvalCommandOptions extends DataOptions, SplitOptions {
  model: string;
  ks: string;
  sampled?: string;
  excludeHistory?: boolean;
  json?: boolean;
  backend: BackendChoice;
}

/** `towerlab recommend` (also handed to seq-model.ts for sequence models). */
export interface RecommendCommandOptions {
  model: string;
  user?: string;
  history?: string;
  k: string;
  includeSeen?: boolean;
  json?: boolean;
}

export function addDataOptions(cmd: Command, required = true): void {
  const data = new Option('--data <path>', "interactions: CSV/TSV/Parquet/JSONL, sequences ('user item item ...'), MovieLens u.data/ratings.dat, RecBole .inter, or synthetic:users=..,items=..,clusters=..,zipf=..,seed=..");
  if (required) data.makeOptionMandatory();
  cmd
    .addOption(data)
    .addOption(new Option('--format <fmt>', 'file format (default: from the extension)').choices(['csv', 'tsv', 'parquet', 'jsonl', 'seq', 'movielens', 'recbole']))
    .option('--user-col <name>', 'user id column')
    .option('--item-col <name>', 'item id column')
    .option('--time-col <name>', 'timestamp column')
    .option('--rating-col <name>', 'rating column')
    .option('--min-rating <x>', 'keep rows with rating >= x', parseNum('--min-rating'))
    .option('--user-features <cols>', 'comma-separated categorical user feature columns')
    .option('--item-features <cols>', 'comma-separated categorical item feature columns')
    .option('--user-features-file <path>', 'file with one row per user and feature columns')
    .option('--item-features-file <path>', 'file with one row per item and feature columns');
}

export function addSplitOptions(cmd: Command, withDefault = true): void {
  const s = new Option('--split <kind>', 'random holdout, global temporal cut, or leave-last-one-out per user').choices(['random', 'temporal', 'loo']);
  cmd
    .addOption(withDefault ? s.default('random') : s)
    .option('--val <fraction>', 'validation fraction (random/temporal)', parseNum('--val'), 0.1)
    .option('--test <fraction>', 'test fraction (random/temporal)', parseNum('--test'), 0.1)
    .option('--split-seed <n>', 'seed of the random split', parseNum('--split-seed'), 42);
}

export function addModelOptions(cmd: Command): void {
  const d = defaultModelOptions;
  cmd
    .option('--dim <n>', 'id embedding size', parseNum('--dim'), d.dim)
    .option('--mlp <sizes>', "tower MLP sizes, last = output size ('' for none)", d.mlp.join(','))
    .option('--feature-dim <n>', 'embedding size of each categorical feature', parseNum('--feature-dim'), d.featureDim)
    .option('--no-features', 'ignore categorical features')
    .addOption(new Option('--sparse-optimizer <name>', 'optimizer of the embedding tables').choices(['lazyadam', 'adagrad']).default(d.sparseOptimizer))
    .option('--lr-sparse <x>', 'learning rate of the embedding tables', parseNum('--lr-sparse'), d.sparseLr)
    .option('--lr-dense <x>', 'learning rate of the MLPs (Adam)', parseNum('--lr-dense'), d.denseLr)
    .option('--seed <n>', 'seed of initialisation and batch order', parseNum('--seed'), d.seed);
}

export function addTrainOptions(cmd: Command): void {
  cmd
    .option('--epochs <n>', 'training epochs', parseNum('--epochs'), 10)
    .option('--batch-size <n>', 'rows per batch', parseNum('--batch-size'), 1024)
    .option('--eval-every <n>', 'validate every n epochs (0 = never)', parseNum('--eval-every'), 1)
    .option('--patience <n>', 'stop after n validations without improvement (0 = never)', parseNum('--patience'), 3)
    .option('--val-metric <name>', 'validation metric deciding the best epoch', 'recall@20')
    .option('--val-users <n>', 'validate on at most n users', parseNum('--val-users'), 5000)
    .option('--ks <list>', 'cut-offs of the test metrics', '10,20,50')
    .option('--log-every <n>', 'log the loss every n steps', parseNum('--log-every'), 50)
    .option('--no-progress', 'no progress output')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'));
}

/** A commander argument parser: a finite number, or a one-line error naming the flag. */
export function parseNum(flag: string) {
  return (v: string): number => {
    const x = Number(v);
    if (v.trim() === '' || !Number.isFinite(x)) throw new UserError(`${flag}: '${v}' is not a number`);
    return x;
  };
}

export function requireInt(flag: string, x: number, min: number): number {
  if (!Number.isInteger(x) || x < min) throw new UserError(`${flag}: must be an integer >= ${min}, got ${x}`);
  return x;
}

export function requirePositive(flag: string, x: number): number {
  if (!(x > 0)) throw new UserError(`${flag}: must be > 0, got ${x}`);
  return x;
}

export function parseList(flag: string, v: string | undefined): number[] {
  if (v === undefined || v.trim() === '') return [];
  return v.split(',').map((s) => {
    const x = Number(s);
    if (!Number.isInteger(x) || x <= 0) throw new UserError(`${flag}: '${s}' is not a positive integer`);
    return x;
  });
}

const cols = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

export function dataSpecFrom(o: DataOptions): DataSpec {
  if (o.data === undefined) throw new UserError('--data <path> is required');
  return {
    path: o.data,
    format: o.format,
    userCol: o.userCol,
    itemCol: o.itemCol,
    timeCol: o.timeCol,
    ratingCol: o.ratingCol,
    minRating: o.minRating,
    userFeatureCols: cols(o.userFeatures),
    itemFeatureCols: cols(o.itemFeatures),
    userFeaturesPath: o.userFeaturesFile,
    itemFeaturesPath: o.itemFeaturesFile,
  };
}

export function splitSpecFrom(o: SplitOptions): SplitSpec {
  for (const f of ['val', 'test'] as const) {
    if (!(o[f] >= 0 && o[f] < 1)) throw new UserError(`--${f}: must be a fraction in [0, 1), got ${o[f]}`);
  }
  if (o.split === 'loo') return { kind: 'loo' };
  if (o.split === 'temporal') return { kind: 'temporal', val: o.val, test: o.test };
  return { kind: 'random', val: o.val, test: o.test, seed: o.splitSeed };
}

export function modelOptionsFrom(o: ModelFlagOptions): ModelOptions {
  const positive = (flag: string, x: number, int = true) => {
    if (!(x > 0) || (int && !Number.isInteger(x))) throw new UserError(`${flag}: must be a positive ${int ? 'integer' : 'number'}, got ${x}`);
    return x;
  };
  return {
    dim: positive('--dim', o.dim),
    mlp: parseList('--mlp', o.mlp),
    featureDim: positive('--feature-dim', o.featureDim),
    useFeatures: o.features !== false,
    sparseOptimizer: o.sparseOptimizer,
    sparseLr: positive('--lr-sparse', o.lrSparse, false),
    denseLr: positive('--lr-dense', o.lrDense, false),
    seed: o.seed,
  };
}

export function trainConfigFrom(o: TrainFlagOptions): Omit<TrainConfig, 'checkpointDir' | 'logPath'> {
  const int = (flag: string, x: number, min: number) => {
    if (!Number.isInteger(x) || x < min) throw new UserError(`${flag}: must be an integer >= ${min}, got ${x}`);
    return x;
  };
  if (!/^[a-zA-Z]+@\d+$/.test(o.valMetric)) throw new UserError(`--val-metric: expected NAME@K such as recall@20, got '${o.valMetric}'`);
  return {
    epochs: int('--epochs', o.epochs, 1),
    batchSize: int('--batch-size', o.batchSize, 2),
    seed: o.seed,
    evalEvery: int('--eval-every', o.evalEvery, 0),
    patience: int('--patience', o.patience, 0),
    valMetric: o.valMetric,
    valMaxUsers: int('--val-users', o.valUsers, 1),
    resume: !!o.resume,
    progress: o.progress === false ? 'none' : defaultProgressMode(),
    logEvery: int('--log-every', o.logEvery, 0),
  };
}
