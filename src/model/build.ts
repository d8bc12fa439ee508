/** Builds a two-tower model sized for a data set from user-facing options. */
import type { CategoricalFeature, DenseFeature } from '../data/types.ts';
import type { SparseOptimizer } from './embedding-table.ts';
import { TwoTowerModel } from './two-tower.ts';
import { UserError } from '../util/errors.ts';
import { defaultUserHistory, type UserHistoryConfig } from './user-history.ts';

export interface ModelOptions {
  /** Id embedding size. */
  dim: number;
  /** MLP layer sizes after the embeddings, last = output size; [] = no MLP. */
  mlp: number[];
  /** Embedding size of each categorical feature and projection size of each dense one (features are used when the data has them). */
  featureDim: number;
  useFeatures: boolean;
  sparseOptimizer: SparseOptimizer;
  sparseLr: number;
  denseLr: number;
  seed: number;
  /** L2 penalty λ on the embedding rows each step uses and on MLP weights (0 = none). */
  l2?: number;
  /**
   * User-history aggregation in the user tower (user-history.ts); null/absent = off. The caller gives each user's
   * training items with `model.setUserHistory(csr)` before training (runExperiment does).
   */
  userHistory?: Partial<UserHistoryConfig> | null;
}

export const defaultModelOptions: ModelOptions = {
  dim: 64,
  mlp: [128, 64],
  featureDim: 16,
  useFeatures: true,
  sparseOptimizer: 'lazyadam',
  sparseLr: 0.005,
  denseLr: 0.001,
  seed: 1,
  l2: 0,
};

/** A complete, checked user-history configuration from a partial one (defaults: defaultUserHistory). */
export function userHistoryConfig(h: Partial<UserHistoryConfig>, where = 'model options: userHistory'): UserHistoryConfig {
  const c = { ...defaultUserHistory, ...h };
  if (c.pooling !== 'mean') throw new UserError(`${where}: pooling must be 'mean', got '${c.pooling}'`);
  if (!(typeof c.gate === 'number' && c.gate >= 0 && c.gate <= 1)) throw new UserError(`${where}: gate must be a number in [0, 1], got ${c.gate}`);
  if (!(Number.isInteger(c.maxLen) && c.maxLen >= 0)) throw new UserError(`${where}: maxLen must be an integer >= 0 (0 = all), got ${c.maxLen}`);
  if (c.table !== 'item' && c.table !== 'own') throw new UserError(`${where}: table must be 'item' or 'own', got '${c.table}'`);
  return { pooling: c.pooling, gate: c.gate, maxLen: c.maxLen, table: c.table };
}

export function buildModel(
  o: ModelOptions,
  numUsers: number,
  numItems: number,
  userFeatures: CategoricalFeature[],
  itemFeatures: CategoricalFeature[],
  userDense: DenseFeature[] = [],
  itemDense: DenseFeature[] = [],
): TwoTowerModel {
  const uf = o.useFeatures ? userFeatures : [];
  const itf = o.useFeatures ? itemFeatures : [];
  const ud = o.useFeatures ? userDense : [];
  const itd = o.useFeatures ? itemDense : [];
  const spec = (fs: CategoricalFeature[]) => fs.map((f) => ({ name: f.name, cardinality: Math.max(1, f.vocab.size), dim: o.featureDim }));
  // `dense` only when present, so configs of models without dense features stay as they were.
  const denseSpec = (fs: DenseFeature[]) => (fs.length ? { dense: fs.map((f) => ({ name: f.name, width: f.width, dim: o.featureDim })) } : {});
  const model = new TwoTowerModel(
    {
      user: { vocabSize: numUsers, idDim: o.dim, features: spec(uf), ...denseSpec(ud), mlp: o.mlp, ...(o.userHistory ? { history: userHistoryConfig(o.userHistory) } : {}) },
      item: { vocabSize: numItems, idDim: o.dim, features: spec(itf), ...denseSpec(itd), mlp: o.mlp },
      sparseOptimizer: o.sparseOptimizer,
      sparseLr: o.sparseLr,
      denseLr: o.denseLr,
      seed: o.seed,
      l2: o.l2 ?? 0,
    },
    uf.map((f) => f.values),
    itf.map((f) => f.values),
    ud.map((f) => f.values),
    itd.map((f) => f.values),
  );
  model.init();
  return model;
}
