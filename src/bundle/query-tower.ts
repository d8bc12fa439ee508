/**
 * The user (query) tower for inference only, on plain arrays: the same arithmetic as Tower.embed
 * ([id row ‖ feature rows ‖ projected dense features] → MLP → L2 norm) without the training workspace or
 * optimizer state, and with an input row that need not belong to a known user (a new user described by features
 * alone uses the mean id embedding, and zeros for dense features not given). The browser page (web/demo.js)
 * mirrors this with TF.js ops.
 */
import type { Backend } from '../compute/backend.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import type { Tower, TowerConfig } from '../model/tower.ts';

export interface DenseWeights {
  w: Float32Array;
  b: Float32Array;
  inDim: number;
  outDim: number;
  relu: boolean;
}

/** One dense (numeric / vector) user feature: its projection width → dim and each known user's values. */
export interface DenseFeatureWeights {
  name: string;
  width: number;
  dim: number;
  /** width×dim, row-major (DenseLayer's layout), and dim biases. */
  w: Float32Array;
  b: Float32Array;
  /** users×width: every known user's values. */
  values: Float32Array;
}

export interface QueryTowerWeights {
  config: TowerConfig;
  idTable: Float32Array;
  idMean: Float32Array;
  featTables: Float32Array[];
  /** Per feature, each known user's value index (0 = missing). */
  featValues: Int32Array[];
  /** Dense features in config.dense order (absent or [] = none). */
  dense?: DenseFeatureWeights[];
  layers: DenseWeights[];
  outDim: number;
}

/** The concatenated input width of a tower: id ‖ categorical embeddings ‖ dense projections. */
export function towerInDim(config: TowerConfig): number {
  return config.idDim + config.features.reduce((s, f) => s + f.dim, 0) + (config.dense ?? []).reduce((s, f) => s + f.dim, 0);
}

export function layersFromConfig(config: TowerConfig, get: (l: number) => { w: Float32Array; b: Float32Array }): DenseWeights[] {
  let d = towerInDim(config);
  return config.mlp.map((h, l) => {
    const { w, b } = get(l);
    const layer = { w, b, inDim: d, outDim: h, relu: l < config.mlp.length - 1 };
    d = h;
    return layer;
  });
}

export function towerOutDim(config: TowerConfig): number {
  return config.mlp.length ? config.mlp[config.mlp.length - 1] : towerInDim(config);
}

/** A trained tower's dense features as the query tower reads them. */
export function denseWeights(t: Tower): DenseFeatureWeights[] {
  return t.dense.map((f, k) => ({ name: f.name, width: f.width, dim: f.dim, w: t.projections[k].w, b: t.projections[k].b, values: t.denseValues[k] }));
}

/** Mean of the rows of a rows×dim table. */
export function meanRow(table: Float32Array, rows: number, dim: number): Float32Array {
  const acc = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) acc[j] += table[r * dim + j];
  return Float32Array.from(acc, (x) => (rows ? x / rows : 0));
}

/**
 * The user tower's inference weights (as bundle/write.ts assembles them for the server): ONNX export and the library's new-user
 * embeddings (api/model.ts) run the same tower the server does. */
export function queryTowerWeights(a: ModelArtifacts): QueryTowerWeights {
  const u = a.model.user;
  const idTable = a.model.servingUserIdTable(); // history baked into the id rows when the tower has one
  return {
    config: u.config,
    idTable,
    idMean: meanRow(idTable, a.userIds.length, u.config.idDim),
    featTables: u.featTables.map((t) => t.data),
    featValues: u.featureValues,
    dense: denseWeights(u),
    layers: layersFromConfig(u.config, (l) => ({ w: u.layers[l].w, b: u.layers[l].b })),
    outDim: u.outDim,
  };
}

export class QueryTower {
  private x: Float32Array;
  private acts: Float32Array[];
  private readonly norm = new Float32Array(1);

  private readonly proj: Float32Array;

  constructor(readonly t: QueryTowerWeights) {
    this.x = new Float32Array(towerInDim(t.config));
    this.proj = new Float32Array(Math.max(0, ...(t.dense ?? []).map((f) => f.dim)));
    this.acts = t.layers.map((l) => new Float32Array(l.outDim));
  }

  get dim(): number {
    return this.t.outDim;
  }

  /** Embedding of known user `u` with its stored feature values. */
  embedUser(backend: Backend, u: number, out: Float32Array): void {
    const vals = this.t.featValues.map((v) => v[u]);
    const dense = (this.t.dense ?? []).map((f) => f.values.subarray(u * f.width, (u + 1) * f.width));
    this.embedRow(backend, this.t.idTable.subarray(u * this.t.config.idDim, (u + 1) * this.t.config.idDim), vals, dense, out);
  }

  /**
   * Embedding of a user known only by features: categorical value indices (one per feature, 0 = missing) and,
   * per dense feature, its `width` values or null for zeros (not given).
   */
  embedFeatures(backend: Backend, values: number[], out: Float32Array, dense: Array<Float32Array | null> = []): void {
    const given = (this.t.dense ?? []).map((f, k) => dense[k] ?? new Float32Array(f.width));
    this.embedRow(backend, this.t.idMean, values, given, out);
  }

  private embedRow(backend: Backend, idRow: Float32Array, values: number[], dense: Float32Array[], out: Float32Array): void {
    const { config, featTables, layers } = this.t;
    const x = this.x;
    x.set(idRow, 0);
    let col = config.idDim;
    config.features.forEach((f, i) => {
      x.set(featTables[i].subarray(values[i] * f.dim, (values[i] + 1) * f.dim), col);
      col += f.dim;
    });
    (this.t.dense ?? []).forEach((f, k) => {
      const y = this.proj.subarray(0, f.dim);
      backend.linearForward(dense[k], f.w, f.b, y, 1, f.width, f.dim, false);
      x.set(y, col);
      col += f.dim;
    });
    let h = x;
    layers.forEach((l, i) => {
      backend.linearForward(h, l.w, l.b, this.acts[i], 1, l.inDim, l.outDim, l.relu);
      h = this.acts[i];
    });
    backend.l2normForward(h, out, this.norm, 1, this.t.outDim);
  }
}
