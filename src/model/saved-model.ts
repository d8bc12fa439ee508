/**
 * A trained model on disk: weights (and, for checkpoints, optimizer state), the vocabularies that map ids
 * back to the data's ids, categorical feature values, item popularity and each user's training items (for
 * exclusion and the popularity fallback at recommendation time), plus metadata (config, recipe, metrics).
 */
import { join } from 'node:path';
import type { Csr } from '../data/csr.ts';
import { checkItemNames } from '../data/item-names.ts';
import type { CategoricalFeature, DenseFeature } from '../data/types.ts';
import { UserError } from '../util/errors.ts';
import { buildFromManifest, readTensorDir, writeTensorDir, type NamedArray } from './tensor-file.ts';
import { TwoTowerModel, type ModelConfig } from './two-tower.ts';

export const MODEL_FORMAT = 'towerlab-model';
export const MODEL_VERSION = 1;
const VOCAB = 'vocab.json';

export interface ModelArtifacts {
  model: TwoTowerModel;
  userIds: string[];
  itemIds: string[];
  userFeatures: Array<{ name: string; vocab: string[]; values: Int32Array }>;
  itemFeatures: Array<{ name: string; vocab: string[]; values: Int32Array }>;
  /** Dense feature values (entities×width) of the towers that have dense features; absent = none. */
  userDense?: DenseFeature[];
  itemDense?: DenseFeature[];
  /** Train interaction count per item. */
  itemCounts: Float32Array;
  /** Each user's training items. */
  seen: Csr;
  meta: Record<string, any>;
  /** Display names of the items (null = none known), e.g. from `--item-names`; absent when none were given. */
  itemNames?: (string | null)[];
  /** Checkpoints only: training state beside the weights (queue, momentum tower), names prefixed `train.`. */
  trainingState?: Array<[string, NamedArray]>;
}

export function featuresForSave(fs: CategoricalFeature[]): ModelArtifacts['userFeatures'] {
  return fs.map((f) => ({ name: f.name, vocab: f.vocab.ids, values: f.values }));
}

export function saveModel(dir: string, a: ModelArtifacts, withOptimizer: boolean): void {
  const arrays: Array<[string, NamedArray]> = a.model.tensors(withOptimizer);
  a.userFeatures.forEach((f) => arrays.push([`user.feature.${f.name}`, f.values]));
  a.itemFeatures.forEach((f) => arrays.push([`item.feature.${f.name}`, f.values]));
  (a.userDense ?? []).forEach((f) => arrays.push([`user.denseFeature.${f.name}`, f.values]));
  (a.itemDense ?? []).forEach((f) => arrays.push([`item.denseFeature.${f.name}`, f.values]));
  arrays.push(['item.counts', a.itemCounts], ['seen.offsets', a.seen.offsets], ['seen.cols', a.seen.cols]);
  // The user tower's history (its training items) is part of the model: eval, recommend and export read it.
  const history = a.model.userHistory;
  if (history) arrays.push(['user.history.offsets', history.history.offsets], ['user.history.cols', history.history.cols]);
  if (a.trainingState) arrays.push(...a.trainingState);
  const vocab = JSON.stringify({
    users: a.userIds,
    items: a.itemIds,
    userFeatures: a.userFeatures.map((f) => ({ name: f.name, vocab: f.vocab })),
    itemFeatures: a.itemFeatures.map((f) => ({ name: f.name, vocab: f.vocab })),
    ...(a.itemNames ? { itemNames: a.itemNames } : {}),
    ...(a.userDense?.length ? { userDense: a.userDense.map((f) => ({ name: f.name, width: f.width })) } : {}),
    ...(a.itemDense?.length ? { itemDense: a.itemDense.map((f) => ({ name: f.name, width: f.width })) } : {}),
  });
  const meta = { ...a.meta, modelConfig: a.model.config, optimizerSteps: a.model.steps(), withOptimizer };
  writeTensorDir(dir, MODEL_FORMAT, MODEL_VERSION, meta, arrays, { [VOCAB]: vocab });
}

export function loadModel(dir: string): ModelArtifacts {
  const { manifest, arrays, readText } = readTensorDir(dir, MODEL_FORMAT, MODEL_VERSION);
  const vpath = join(dir, VOCAB);
  let vocab: any;
  try {
    vocab = JSON.parse(readText(VOCAB));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${vpath}: unreadable (not valid JSON)`);
  }
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const featList = (v: unknown) => Array.isArray(v) && v.every((f) => typeof f?.name === 'string' && strings(f.vocab));
  if (!strings(vocab?.users) || !strings(vocab?.items) || !featList(vocab?.userFeatures) || !featList(vocab?.itemFeatures)) {
    throw new UserError(`${vpath}: expected 'users' and 'items' id lists and 'userFeatures'/'itemFeatures' lists of {name, vocab}`);
  }
  const get = <T extends NamedArray>(name: string): T => {
    const a = arrays.get(name);
    if (!a) throw new UserError(`${dir}: tensor '${name}' missing from the model`);
    return a as T;
  };
  const config = manifest.modelConfig as ModelConfig;
  checkConfig(config, vocab.users.length, vocab.items.length, join(dir, 'manifest.json'));
  const feature = (tower: 'user' | 'item', rows: number) => (f: { name: string; vocab: string[] }, i: number) => {
    const values = get<Int32Array>(`${tower}.feature.${f.name}`);
    const card = Math.min(f.vocab.length, config[tower].features[i]?.cardinality ?? 0);
    if (values.length !== rows) throw new UserError(`${dir}: tensor '${tower}.feature.${f.name}' has ${values.length} values, the model has ${rows} ${tower}s`);
    for (let r = 0; r < rows; r++) if (!(values[r] >= 0 && values[r] < card)) throw new UserError(`${dir}: ${tower} feature '${f.name}' of row ${r} has value index ${values[r]}, outside its vocabulary of ${card}`);
    return { ...f, values };
  };
  if (vocab.userFeatures.length !== config.user.features.length || vocab.itemFeatures.length !== config.item.features.length) throw new UserError(`${vpath}: feature vocabularies disagree with the model config`);
  const userFeatures = (vocab.userFeatures as Array<{ name: string; vocab: string[] }>).map(feature('user', vocab.users.length));
  const itemFeatures = (vocab.itemFeatures as Array<{ name: string; vocab: string[] }>).map(feature('item', vocab.items.length));
  const dense = (list: unknown, tower: 'user' | 'item'): DenseFeature[] => {
    if (list !== undefined && !(Array.isArray(list) && list.every((f) => typeof f?.name === 'string' && Number.isInteger(f.width) && f.width > 0))) {
      throw new UserError(`${vpath}: '${tower}Dense' must be a list of {name, width}`);
    }
    return ((list ?? []) as Array<{ name: string; width: number }>).map((f) => ({ name: f.name, width: f.width, values: get<Float32Array>(`${tower}.denseFeature.${f.name}`) }));
  };
  const userDense = dense(vocab.userDense, 'user');
  const itemDense = dense(vocab.itemDense, 'item');
  for (const [tower, fs] of [['user', userDense], ['item', itemDense]] as const) {
    const want = config[tower].dense ?? [];
    if (want.length !== fs.length || want.some((f, k) => f.name !== fs[k].name || f.width !== fs[k].width || fs[k].values.length !== config[tower].vocabSize * f.width)) {
      throw new UserError(`${dir}: the ${tower} tower's dense features in ${VOCAB} do not match the model config`);
    }
  }
  const model = buildFromManifest(dir, () => new TwoTowerModel(
    config,
    userFeatures.map((f) => f.values),
    itemFeatures.map((f) => f.values),
    userDense.map((f) => f.values),
    itemDense.map((f) => f.values),
  ));
  for (const [name, target] of model.tensors(manifest.withOptimizer === true)) {
    const src = get<Float32Array>(name);
    if (src.length !== target.length) throw new UserError(`${dir}: tensor '${name}' has ${src.length} values, the config implies ${target.length}`);
    target.set(src);
  }
  model.setSteps(manifest.optimizerSteps ?? {});
  if (config.user.history) {
    const ho = get<Int32Array>('user.history.offsets');
    const hc = get<Int32Array>('user.history.cols');
    checkCsr(ho, hc, vocab.users.length, vocab.items.length, `${dir}: user history`);
    model.setUserHistory({ rows: vocab.users.length, offsets: ho, cols: hc });
  }
  const offsets = get<Int32Array>('seen.offsets');
  const cols = get<Int32Array>('seen.cols');
  checkCsr(offsets, cols, vocab.users.length, vocab.items.length, `${dir}: seen lists`);
  const itemCounts = get<Float32Array>('item.counts');
  if (itemCounts.length !== vocab.items.length) throw new UserError(`${dir}: tensor 'item.counts' has ${itemCounts.length} values, the model has ${vocab.items.length} items`);
  return {
    model,
    userIds: vocab.users,
    itemIds: vocab.items,
    userFeatures,
    itemFeatures,
    ...(userDense.length ? { userDense } : {}),
    ...(itemDense.length ? { itemDense } : {}),
    itemCounts,
    seen: { rows: offsets.length - 1, offsets, cols },
    meta: manifest,
    ...(vocab.itemNames !== undefined ? { itemNames: checkItemNames(join(dir, VOCAB), vocab.itemNames, vocab.items.length) } : {}),
    trainingState: [...arrays].filter(([name]) => name.startsWith('train.')),
  };
}

/** Shapes in a model's config are allocated before any tensor is compared: they must be sane first. */
function checkConfig(c: ModelConfig, users: number, items: number, where: string): void {
  const int = (x: unknown, lo: number, hi: number) => Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;
  for (const [t, n] of [['user', users], ['item', items]] as const) {
    const tc = c?.[t];
    const ok =
      tc &&
      tc.vocabSize === n &&
      int(tc.idDim, 1, 1 << 16) &&
      Array.isArray(tc.mlp) &&
      tc.mlp.every((h) => int(h, 1, 1 << 16)) &&
      Array.isArray(tc.features) &&
      tc.features.every((f) => typeof f?.name === 'string' && int(f.cardinality, 1, 2 ** 31 - 1) && int(f.dim, 1, 1 << 16));
    if (!ok) throw new UserError(`${where}: field 'modelConfig.${t}': shapes missing, out of range or disagreeing with the ${n} ${t} ids`);
  }
  const h = c.user.history as unknown;
  if (h !== undefined) {
    const hh = h as Record<string, unknown>;
    const ok = hh && typeof hh === 'object' && hh.pooling === 'mean' && typeof hh.gate === 'number' && hh.gate >= 0 && hh.gate <= 1 && int(hh.maxLen, 0, 2 ** 31 - 1) && (hh.table === 'own' || (hh.table === 'item' && c.item.idDim === c.user.idDim));
    if (!ok) throw new UserError(`${where}: field 'modelConfig.user.history': expected {pooling: 'mean', gate in [0, 1], maxLen >= 0, table 'item' (equal id sizes) or 'own'}`);
  }
  if ((c.item as { history?: unknown }).history !== undefined) throw new UserError(`${where}: field 'modelConfig.item.history': only the user tower takes a history`);
}

/** CSR offsets: rows + 1 of them, from 0, never decreasing, ending at the column count; columns in range. */
export function checkCsr(offsets: Int32Array, cols: Int32Array, rows: number, width: number, what: string): void {
  if (offsets.length !== rows + 1 || offsets[0] !== 0 || offsets[rows] !== cols.length) throw new UserError(`${what}: offsets do not describe ${rows} rows of ${cols.length} entries`);
  for (let r = 0; r < rows; r++) if (!(offsets[r + 1] >= offsets[r])) throw new UserError(`${what}: offsets decrease at row ${r}`);
  for (let i = 0; i < cols.length; i++) if (!(cols[i] >= 0 && cols[i] < width)) throw new UserError(`${what}: entry ${i} holds index ${cols[i]}, outside 0..${width - 1}`);
}
