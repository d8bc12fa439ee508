/**
 * A trained model on disk: weights (and, for checkpoints, optimizer state), the vocabularies that map ids
 * back to the data's ids, categorical feature values, item popularity and each user's training items (for
 * exclusion and the popularity fallback at recommendation time), plus metadata (config, recipe, metrics).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Csr } from '../data/csr.ts';
import type { CategoricalFeature, DenseFeature } from '../data/types.ts';
import { UserError } from '../util/errors.ts';
import { readTensorDir, writeTensorDir, type NamedArray } from './tensor-file.ts';
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
  if (a.trainingState) arrays.push(...a.trainingState);
  const vocab = JSON.stringify({
    users: a.userIds,
    items: a.itemIds,
    userFeatures: a.userFeatures.map((f) => ({ name: f.name, vocab: f.vocab })),
    itemFeatures: a.itemFeatures.map((f) => ({ name: f.name, vocab: f.vocab })),
    ...(a.userDense?.length ? { userDense: a.userDense.map((f) => ({ name: f.name, width: f.width })) } : {}),
    ...(a.itemDense?.length ? { itemDense: a.itemDense.map((f) => ({ name: f.name, width: f.width })) } : {}),
  });
  const meta = { ...a.meta, modelConfig: a.model.config, optimizerSteps: a.model.steps(), withOptimizer };
  writeTensorDir(dir, MODEL_FORMAT, MODEL_VERSION, meta, arrays, { [VOCAB]: vocab });
}

export function loadModel(dir: string): ModelArtifacts {
  const { manifest, arrays, real } = readTensorDir(dir, MODEL_FORMAT, MODEL_VERSION);
  let vocab: any;
  try {
    vocab = JSON.parse(readFileSync(join(real, VOCAB), 'utf8'));
  } catch (e) {
    throw new UserError(`${join(dir, VOCAB)}: unreadable: ${(e as Error).message}`);
  }
  const get = <T extends NamedArray>(name: string): T => {
    const a = arrays.get(name);
    if (!a) throw new UserError(`${dir}: tensor '${name}' missing from the model`);
    return a as T;
  };
  const userFeatures = (vocab.userFeatures as Array<{ name: string; vocab: string[] }>).map((f) => ({ ...f, values: get<Int32Array>(`user.feature.${f.name}`) }));
  const itemFeatures = (vocab.itemFeatures as Array<{ name: string; vocab: string[] }>).map((f) => ({ ...f, values: get<Int32Array>(`item.feature.${f.name}`) }));
  const dense = (list: unknown, tower: 'user' | 'item'): DenseFeature[] =>
    ((list ?? []) as Array<{ name: string; width: number }>).map((f) => ({ name: f.name, width: f.width, values: get<Float32Array>(`${tower}.denseFeature.${f.name}`) }));
  const userDense = dense(vocab.userDense, 'user');
  const itemDense = dense(vocab.itemDense, 'item');
  const config = manifest.modelConfig as ModelConfig;
  for (const [tower, fs] of [['user', userDense], ['item', itemDense]] as const) {
    const want = config[tower].dense ?? [];
    if (want.length !== fs.length || want.some((f, k) => f.name !== fs[k].name || f.width !== fs[k].width || fs[k].values.length !== config[tower].vocabSize * f.width)) {
      throw new UserError(`${dir}: the ${tower} tower's dense features in ${VOCAB} do not match the model config`);
    }
  }
  const model = new TwoTowerModel(
    config,
    userFeatures.map((f) => f.values),
    itemFeatures.map((f) => f.values),
    userDense.map((f) => f.values),
    itemDense.map((f) => f.values),
  );
  for (const [name, target] of model.tensors(manifest.withOptimizer === true)) {
    const src = get<Float32Array>(name);
    if (src.length !== target.length) throw new UserError(`${dir}: tensor '${name}' has ${src.length} values, the config implies ${target.length}`);
    target.set(src);
  }
  model.setSteps(manifest.optimizerSteps ?? {});
  const offsets = get<Int32Array>('seen.offsets');
  return {
    model,
    userIds: vocab.users,
    itemIds: vocab.items,
    userFeatures,
    itemFeatures,
    ...(userDense.length ? { userDense } : {}),
    ...(itemDense.length ? { itemDense } : {}),
    itemCounts: get<Float32Array>('item.counts'),
    seen: { rows: offsets.length - 1, offsets, cols: get<Int32Array>('seen.cols') },
    meta: manifest,
    trainingState: [...arrays].filter(([name]) => name.startsWith('train.')),
  };
}
