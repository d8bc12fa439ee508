/**
 * Loading an interaction log together with its split, including a split that comes as separate files (the fixed
 * train/test files graph-recommender papers publish, e.g. ML-1M's train.txt/test.txt).
 *
 * With files, every file is read with the same DataSpec (format from each name unless given, same column
 * options) and the rows are concatenated train → val → test under ONE vocabulary: ids shared across the files
 * get one index, in order of first appearance over that concatenation. Tabular files must have the same columns.
 * Categorical features come from the train file (or the feature files); an entity first seen in the validation
 * or test file has the "missing" value. Without a validation file, a seeded random `valFraction` of the train
 * rows is held out for validation. Users who appear in the test file but have no training rows stay in the test
 * set (they are counted, see coldTestUsers), never dropped silently.
 */
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Csr } from './csr.ts';
import { attachFeatureFiles, loadInteractions, type DataSpec } from './load.ts';
import { splitInteractions, type SplitSpec } from './split.ts';
import { withDuck } from './duck.ts';
import { Vocab, type CategoricalFeature, type DenseFeature, type Interactions, type Split } from './types.ts';

export interface LoadedSplit {
  data: Interactions;
  split: Split;
}

/** Loads `spec` and splits it by `split`; a 'files' split reads its files (spec.path is ignored then). */
export async function loadSplit(spec: DataSpec, split: SplitSpec): Promise<LoadedSplit> {
  if (split.kind !== 'files') {
    const data = await loadInteractions(spec);
    return { data, split: splitInteractions(data, split) };
  }
  return loadFiles(spec, split);
}

async function loadFiles(spec: DataSpec, s: Extract<SplitSpec, { kind: 'files' }>): Promise<LoadedSplit> {
  if (!s.test && !s.val && s.valFraction <= 0) throw new UserError('--train-file: give --test-file and/or --val-file (or a validation fraction --val > 0)');
  if (!(s.valFraction >= 0 && s.valFraction < 1)) throw new UserError(`--val: must be a fraction in [0, 1), got ${s.valFraction}`);
  for (const [flag, f] of [['--val-file', s.val], ['--test-file', s.test]] as const) {
    if (f && f === s.train) throw new UserError(`${flag}: '${f}' is also the train file`);
  }
  if (s.val && s.test && s.val === s.test) throw new UserError(`--val-file and --test-file name the same file '${s.val}'`);
  // Features are per entity: read them once, from the train file (or the feature files, attached after merging).
  const noFeatures = { userFeatureCols: undefined, itemFeatureCols: undefined, userFeaturesPath: undefined, itemFeaturesPath: undefined, userDenseCols: undefined, itemDenseCols: undefined };
  const trainSpec: DataSpec = { ...spec, path: s.train, userFeaturesPath: undefined, itemFeaturesPath: undefined };
  if (spec.userFeaturesPath) trainSpec.userFeatureCols = trainSpec.userDenseCols = undefined;
  if (spec.itemFeaturesPath) trainSpec.itemFeatureCols = trainSpec.itemDenseCols = undefined;
  const train = await loadInteractions(trainSpec);
  const val = s.val ? await loadInteractions({ ...spec, ...noFeatures, path: s.val }) : null;
  const test = s.test ? await loadInteractions({ ...spec, ...noFeatures, path: s.test }) : null;
  for (const other of [val, test]) if (other) checkAgree(train, other);

  const parts = [train, val, test].filter((x): x is Interactions => x !== null);
  const userVocab = Vocab.from(train.userVocab.ids);
  const itemVocab = Vocab.from(train.itemVocab.ids);
  const total = parts.reduce((n, p) => n + p.users.length, 0);
  const users = new Int32Array(total);
  const items = new Int32Array(total);
  const allTimes = parts.every((p) => p.times !== null);
  const allRatings = parts.every((p) => p.ratings !== null);
  const times = allTimes ? new Float64Array(total) : null;
  const ratings = allRatings ? new Float32Array(total) : null;
  let o = 0;
  for (const p of parts) {
    const umap = Int32Array.from(p.userVocab.ids, (id) => userVocab.add(id));
    const imap = Int32Array.from(p.itemVocab.ids, (id) => itemVocab.add(id));
    for (let r = 0; r < p.users.length; r++) {
      users[o + r] = umap[p.users[r]];
      items[o + r] = imap[p.items[r]];
    }
    if (times) times.set(p.times!, o);
    if (ratings) ratings.set(p.ratings!, o);
    o += p.users.length;
  }
  const pad = (fs: CategoricalFeature[], size: number) =>
    fs.map((f) => {
      const values = new Int32Array(size);
      values.set(f.values);
      return { ...f, values };
    });
  const padDense = (fs: DenseFeature[], size: number) =>
    fs.map((f) => {
      const values = new Float32Array(size * f.width);
      values.set(f.values);
      return { ...f, values };
    });
  const notes = [...(train.notes ?? []), ...(val?.notes ?? []).map((n) => `${s.val}: ${n}`), ...(test?.notes ?? []).map((n) => `${s.test}: ${n}`)];
  const data: Interactions = {
    source: s.train,
    users,
    items,
    times,
    ratings,
    userVocab,
    itemVocab,
    userFeatures: pad(train.userFeatures, userVocab.size),
    itemFeatures: pad(train.itemFeatures, itemVocab.size),
    // Entities only in the validation/test files have no dense values: zeros.
    ...(train.userDense?.length ? { userDense: padDense(train.userDense, userVocab.size) } : {}),
    ...(train.itemDense?.length ? { itemDense: padDense(train.itemDense, itemVocab.size) } : {}),
    notes,
    columns: train.columns,
  };
  if (spec.userFeaturesPath || spec.itemFeaturesPath) await withDuck((duck) => attachFeatureFiles(duck, spec, data));

  // Rows: [0, nTrain) train file, then the validation file, then the test file.
  const nTrain = train.users.length;
  const nVal = val?.users.length ?? 0;
  const range = (from: number, n: number) => Int32Array.from({ length: n }, (_, i) => from + i);
  let trainRows = range(0, nTrain);
  let valRows = range(nTrain, nVal);
  let carve = '';
  if (!val && s.valFraction > 0) {
    const order = new Rng(s.seed).shuffle(range(0, nTrain));
    const k = Math.round(nTrain * s.valFraction);
    valRows = order.slice(0, k).sort();
    trainRows = order.slice(k).sort();
    if (trainRows.length === 0) throw new UserError(`${s.train}: no training rows left after holding out ${s.valFraction} for validation`);
    carve = `,val=${s.valFraction} of train (seed ${s.seed})`;
  }
  const testRows = range(nTrain + nVal, test?.users.length ?? 0);
  const description = `files(train=${s.train}${s.val ? `,val=${s.val}` : carve}${s.test ? `,test=${s.test}` : ''})`;
  return { data, split: { train: trainRows, val: valRows, test: testRows, description } };
}

/**
 * Tabular files of one split must have the same columns (in any order), so one set of column options means the
 * same thing in each. A sequence file has only users and items and agrees with any file.
 */
function checkAgree(train: Interactions, other: Interactions): void {
  const a = train.columns;
  const b = other.columns;
  if (a === undefined || b === undefined) return;
  const missing = a.filter((c) => !b.includes(c));
  const extra = b.filter((c) => !a.includes(c));
  if (missing.length || extra.length) {
    const what = [missing.length ? `lacks ${missing.join(', ')}` : '', extra.length ? `has extra ${extra.join(', ')}` : ''].filter(Boolean).join(' and ');
    throw new UserError(`${other.source}: columns differ from the train file ${train.source}: it ${what}; the files of one split must have the same columns`);
  }
}

/** Users with targets in `test` and no row in `seen` (no training interactions): evaluated and counted, not dropped. */
export function coldTestUsers(test: Csr, seen: Csr): number {
  let n = 0;
  for (let u = 0; u < test.rows; u++) {
    if (test.offsets[u + 1] > test.offsets[u] && seen.offsets[u + 1] === seen.offsets[u]) n++;
  }
  return n;
}
