/** Option groups shared by commands, and their conversion into library option objects. */
import { Command, Option } from 'commander';
import type { BackendChoice } from '../compute/index.ts';
import type { DataFormat } from '../data/format.ts';
import type { DataSpec } from '../data/load.ts';
import type { SplitSpec } from '../data/split.ts';
import { defaultModelOptions, userHistoryConfig, type ModelOptions } from '../model/build.ts';
import { defaultUserHistory } from '../model/user-history.ts';
import type { SparseOptimizer } from '../model/embedding-table.ts';
import type { TrainConfig } from '../train/trainer.ts';
import type { LrSchedule } from '../train/lr-schedule.ts';
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
  userDenseFeatures?: string;
  itemDenseFeatures?: string;
  /** A predefined split given as files (instead of --data). */
  trainFile?: string;
  valFile?: string;
  testFile?: string;
}

export interface SplitOptions {
  split?: 'random' | 'temporal' | 'loo';
  val: number;
  test: number;
  splitSeed: number;
  trainFile?: string;
  valFile?: string;
  testFile?: string;
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
  l2?: number;
  userHistory?: string;
  historyGate?: number;
  historyMax?: number;
  historyTable?: string;
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
  lrSchedule?: 'constant' | 'cosine' | 'step';
  warmup?: number;
  scheduleEpochs?: number;
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
  /** Text dual encoders: the query text. */
  query?: string;
  /** Text dual encoders: the BEIR folder to search (default: the documents saved with the model). */
  corpus?: string;
  k: string;
  includeSeen?: boolean;
  /** FILE[:COLUMN] naming the items to print beside ids (default: the names saved with the model). */
  itemNames?: string;
  json?: boolean;
}

export function addDataOptions(cmd: Command, required = true): void {
  // --data or --train-file is required where `required`; checked in dataSpecFrom (commander cannot say "one of").
  const data = new Option('--data <path>', "interactions: CSV/TSV/Parquet/JSONL, sequences ('user item item ...'), MovieLens u.data/ratings.dat, RecBole .inter, or synthetic:users=..,items=..,clusters=..,zipf=..,seed=..");
  cmd
    .addOption(data)
    .option('--train-file <path>', `a predefined split instead of --data${required ? '' : ' (default: the one the model recorded)'}: the training interactions (any format --data takes; same column options)`)
    .option('--val-file <path>', 'validation interactions of the predefined split (default: hold out --val of the train file, seeded by --split-seed)')
    .option('--test-file <path>', 'test interactions of the predefined split (ids shared with the train file)')
    .addOption(new Option('--format <fmt>', 'file format (default: from the extension)').choices(['csv', 'tsv', 'parquet', 'jsonl', 'seq', 'movielens', 'recbole']))
    .option('--user-col <name>', 'user id column')
    .option('--item-col <name>', 'item id column')
    .option('--time-col <name>', 'timestamp column')
    .option('--rating-col <name>', 'rating column')
    .option('--min-rating <x>', 'keep rows with rating >= x', parseNum('--min-rating'))
    .option('--user-features <cols>', 'comma-separated categorical user feature columns')
    .option('--item-features <cols>', 'comma-separated categorical item feature columns')
    .option('--user-dense-features <cols>', 'comma-separated dense user feature columns: a number, or a list of numbers (Parquet/JSONL list, or text "[0.1, 0.2, ...]") of one width')
    .option('--item-dense-features <cols>', 'comma-separated dense item feature columns (e.g. precomputed content embeddings), as --user-dense-features')
    .option('--user-features-file <path>', 'file with one row per user and feature columns')
    .option('--item-features-file <path>', 'file with one row per item and feature columns');
}

export function addSplitOptions(cmd: Command, withDefault = true): void {
  const s = new Option('--split <kind>', 'random holdout, global temporal cut, or leave-last-one-out per user').choices(['random', 'temporal', 'loo']);
  cmd
    .addOption(withDefault ? s.default('random') : s)
    .option('--val <fraction>', 'validation fraction (random/temporal; with --train-file and no --val-file: held out of the train file)', parseNum('--val'), 0.1)
    .option('--test <fraction>', 'test fraction (random/temporal)', parseNum('--test'), 0.1)
    .option('--split-seed <n>', 'seed of the random split', parseNum('--split-seed'), 42);
}

export function addModelOptions(cmd: Command): void {
  const d = defaultModelOptions;
  cmd
    .option('--dim <n>', 'id embedding size', parseNum('--dim'), d.dim)
    .option('--mlp <sizes>', "tower MLP sizes, last = output size ('none' or '' for none: a pure matrix-factorisation tower, cosine scores)", d.mlp.join(','))
    .option('--feature-dim <n>', 'embedding size of each categorical feature', parseNum('--feature-dim'), d.featureDim)
    .option('--no-features', 'ignore categorical features')
    .addOption(new Option('--sparse-optimizer <name>', 'optimizer of the embedding tables').choices(['lazyadam', 'adagrad']).default(d.sparseOptimizer))
    .option('--lr-sparse <x>', 'learning rate of the embedding tables', parseNum('--lr-sparse'), d.sparseLr)
    .option('--lr-dense <x>', 'learning rate of the MLPs (Adam)', parseNum('--lr-dense'), d.denseLr)
    .option('--l2 <x>', 'L2 penalty on the embedding rows each step uses and on MLP weights', parseNum('--l2'), 0)
    .addOption(new Option('--user-history <pooling>', "user tower input = g·user id row + (1 − g)·mean of the user's training items' rows ('mean'; 'none' = off)").choices(['none', 'mean']).default('none'))
    .option('--history-gate <g>', 'weight g of the user id row with --user-history (1 − g goes to the history mean)', parseNum('--history-gate'), defaultUserHistory.gate)
    .option('--history-max <n>', 'at most n history items per user with --user-history (evenly strided; 0 = all)', parseNum('--history-max'), defaultUserHistory.maxLen)
    .addOption(new Option('--history-table <t>', "table embedding the history items: the item tower's id table ('item', shared) or the user tower's own ('own')").choices(['item', 'own']).default(defaultUserHistory.table))
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
    .addOption(new Option('--lr-schedule <kind>', 'learning-rate schedule over the epochs: constant, cosine (decay to 0), or step (×0.1 at 50% and 75%)').choices(['constant', 'cosine', 'step']).default('constant'))
    .option('--warmup <fraction>', 'linear learning-rate warm-up over this fraction of the training steps', parseNum('--warmup'), 0)
    .option('--schedule-epochs <n>', 'epochs the learning-rate schedule spans (default: --epochs; tune sets it to its last rung)', parseNum('--schedule-epochs'))
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
  if (o.data !== undefined && o.trainFile !== undefined) throw new UserError('--data and --train-file: give one (--data is split by --split; --train-file comes with --test-file/--val-file)');
  if (o.data === undefined && o.trainFile === undefined) {
    if (o.valFile !== undefined || o.testFile !== undefined) throw new UserError('--val-file/--test-file need --train-file');
    throw new UserError("give --data (one file, split by --split) or --train-file with --test-file (a predefined split)");
  }
  return {
    path: (o.data ?? o.trainFile)!,
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
    userDenseCols: cols(o.userDenseFeatures),
    itemDenseCols: cols(o.itemDenseFeatures),
  };
}

export function splitSpecFrom(o: SplitOptions): SplitSpec {
  for (const f of ['val', 'test'] as const) {
    if (!(o[f] >= 0 && o[f] < 1)) throw new UserError(`--${f}: must be a fraction in [0, 1), got ${o[f]}`);
  }
  if (o.trainFile !== undefined) {
    return { kind: 'files', train: o.trainFile, val: o.valFile ?? null, test: o.testFile ?? null, valFraction: o.valFile !== undefined ? 0 : o.val, seed: o.splitSeed };
  }
  if (o.valFile !== undefined || o.testFile !== undefined) throw new UserError('--val-file/--test-file need --train-file');
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
    mlp: String(o.mlp).trim().toLowerCase() === 'none' ? [] : parseList('--mlp', o.mlp),
    featureDim: positive('--feature-dim', o.featureDim),
    useFeatures: o.features !== false,
    sparseOptimizer: o.sparseOptimizer,
    sparseLr: positive('--lr-sparse', o.lrSparse, false),
    denseLr: positive('--lr-dense', o.lrDense, false),
    seed: o.seed,
    l2: nonNegative('--l2', o.l2 ?? 0),
    userHistory: userHistoryFrom(o),
  };
}

function userHistoryFrom(o: ModelFlagOptions): ModelOptions['userHistory'] {
  const mode = o.userHistory ?? 'none';
  if (mode === 'none') return null;
  if (mode !== 'mean') throw new UserError(`--user-history: expected 'none' or 'mean', got '${mode}'`);
  const gate = o.historyGate ?? defaultUserHistory.gate;
  if (!(gate >= 0 && gate <= 1)) throw new UserError(`--history-gate: must be in [0, 1], got ${gate}`);
  const maxLen = o.historyMax ?? defaultUserHistory.maxLen;
  if (!(Number.isInteger(maxLen) && maxLen >= 0)) throw new UserError(`--history-max: must be an integer >= 0 (0 = all), got ${maxLen}`);
  const table = o.historyTable ?? defaultUserHistory.table;
  if (table !== 'item' && table !== 'own') throw new UserError(`--history-table: expected 'item' or 'own', got '${table}'`);
  return userHistoryConfig({ pooling: 'mean', gate, maxLen, table }, '--user-history');
}

function nonNegative(flag: string, x: number): number {
  if (!(x >= 0)) throw new UserError(`${flag}: must be >= 0, got ${x}`);
  return x;
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
    lrSchedule: lrScheduleFrom(o),
  };
}

function lrScheduleFrom(o: TrainFlagOptions): LrSchedule {
  const kind = o.lrSchedule ?? 'constant';
  if (!['constant', 'cosine', 'step'].includes(kind)) throw new UserError(`--lr-schedule: expected constant, cosine or step, got '${kind}'`);
  const warmup = o.warmup ?? 0;
  if (!(warmup >= 0 && warmup < 1)) throw new UserError(`--warmup: must be a fraction in [0, 1), got ${warmup}`);
  const horizon = o.scheduleEpochs;
  if (horizon !== undefined && !(Number.isInteger(horizon) && horizon >= 1)) throw new UserError(`--schedule-epochs: must be an integer >= 1, got ${horizon}`);
  return horizon !== undefined ? { kind, warmup, horizonEpochs: horizon } : { kind, warmup };
}
