/**
 * The user (query) tower for inference only, on plain arrays: the same arithmetic as Tower.embed
 * ([id row ‖ feature rows] → MLP → L2 norm) without the training workspace or optimizer state, and with
 * an input row that need not belong to a known user (a new user described by features alone uses the
 * mean id embedding). The browser page (web/demo.js) mirrors this with TF.js ops.
 */
import type { Backend } from '../compute/backend.ts';
import type { TowerConfig } from '../model/tower.ts';

export interface DenseWeights {
  w: Float32Array;
  b: Float32Array;
  inDim: number;
  outDim: number;
  relu: boolean;
}

export interface QueryTowerWeights {
  config: TowerConfig;
  idTable: Float32Array;
  idMean: Float32Array;
  featTables: Float32Array[];
  /** Per feature, each known user's value index (0 = missing). */
  featValues: Int32Array[];
  layers: DenseWeights[];
  outDim: number;
}

export function layersFromConfig(config: TowerConfig, get: (l: number) => { w: Float32Array; b: Float32Array }): DenseWeights[] {
  let d = config.idDim + config.features.reduce((s, f) => s + f.dim, 0);
  return config.mlp.map((h, l) => {
    const { w, b } = get(l);
    const layer = { w, b, inDim: d, outDim: h, relu: l < config.mlp.length - 1 };
    d = h;
    return layer;
  });
}

export function towerOutDim(config: TowerConfig): number {
  return config.mlp.length ? config.mlp[config.mlp.length - 1] : config.idDim + config.features.reduce((s, f) => s + f.dim, 0) + (config.dense ?? []).reduce((s, f) => s + f.dim, 0);
}

/** Mean of the rows of a rows×dim table. */
export function meanRow(table: Float32Array, rows: number, dim: number): Float32Array {
  const acc = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) acc[j] += table[r * dim + j];
  return Float32Array.from(acc, (x) => (rows ? x / rows : 0));
}

export class QueryTower {
  private x: Float32Array;
  private acts: Float32Array[];
  private readonly norm = new Float32Array(1);

  constructor(readonly t: QueryTowerWeights) {
    const inDim = t.config.idDim + t.config.features.reduce((s, f) => s + f.dim, 0);
    this.x = new Float32Array(inDim);
    this.acts = t.layers.map((l) => new Float32Array(l.outDim));
  }

  get dim(): number {
    return this.t.outDim;
  }

  /** Embedding of known user `u` with its stored feature values. */
  embedUser(backend: Backend, u: number, out: Float32Array): void {
    const vals = this.t.featValues.map((v) => v[u]);
    this.embedRow(backend, this.t.idTable.subarray(u * this.t.config.idDim, (u + 1) * this.t.config.idDim), vals, out);
  }

  /** Embedding of a user known only by feature value indices (one per feature, 0 = missing). */
  embedFeatures(backend: Backend, values: number[], out: Float32Array): void {
    this.embedRow(backend, this.t.idMean, values, out);
  }

  private embedRow(backend: Backend, idRow: Float32Array, values: number[], out: Float32Array): void {
    const { config, featTables, layers } = this.t;
    const x = this.x;
    x.set(idRow, 0);
    let col = config.idDim;
    config.features.forEach((f, i) => {
      x.set(featTables[i].subarray(values[i] * f.dim, (values[i] + 1) * f.dim), col);
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
