/**
 * One tower of the dual encoder: [id embedding ‖ categorical feature embeddings ‖ projected dense features] → MLP
 * → L2 normalisation.
 *
 * A dense feature (a number, width 1, or a vector such as a precomputed content embedding) enters by a learned
 * linear projection width → dim (its own DenseLayer, no activation), so it works with `mlp: []` too and an entity
 * never seen in training (id row zero) still gets an embedding from its features: cold-start items.
 *
 * Shapes for a batch of n entities: input x0 n×inDim (inDim = idDim + Σ feature dims + Σ dense dims), hidden layers
 * n×h_l with ReLU, output n×outDim (no activation), then row-normalised. With `mlp: []` the tower is the
 * normalised concatenated embedding (matrix factorisation with cosine scores).
 * Tables live outside autograd (see embedding-table.ts); backward yields gradients for the gathered rows.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';
import { DenseLayer } from './dense-layer.ts';
import { EmbeddingTable, type SparseOptimizerConfig } from './embedding-table.ts';
import type { HistoryPooling, UserHistoryConfig } from './user-history.ts';

export interface FeatureSpec {
  name: string;
  /** Number of distinct values (index 0 = missing). */
  cardinality: number;
  dim: number;
}

export interface DenseFeatureSpec {
  name: string;
  /** Values per entity (1 for a number). */
  width: number;
  /** Output size of its projection. */
  dim: number;
}

export interface TowerConfig {
  vocabSize: number;
  idDim: number;
  features: FeatureSpec[];
  /** Dense (numeric / vector) features; absent = none (models saved before they existed). */
  dense?: DenseFeatureSpec[];
  /** Sizes of the MLP layers, the last one being the output size; [] for no MLP. */
  mlp: number[];
  /** User tower only: the id row is mixed with the mean of the user's training items (user-history.ts); absent = off. */
  history?: UserHistoryConfig;
}

export interface TowerOptim {
  sparse: SparseOptimizerConfig;
  denseLr: number;
  /** L2 penalty on the MLP weights (0 = none). */
  l2?: number;
}

/**
 * Features of entities given directly rather than looked up by id (entities outside the vocabulary, e.g.
 * cold-start items): per categorical feature one value index per row, per dense feature n×width values.
 */
export interface RowFeatures {
  categorical: Int32Array[];
  dense: Float32Array[];
}

/** Activations of one forward pass, kept for the backward pass; grown on demand, never shrunk. */
class Workspace {
  cap = 0;
  x0: Float32Array = new Float32Array(0);
  acts: Float32Array[] = [];
  out: Float32Array = new Float32Array(0);
  norms: Float32Array = new Float32Array(0);
  dAct: Float32Array[] = [];
  dx0: Float32Array = new Float32Array(0);
  featRows: Float32Array[] = [];
  featIds: Int32Array[] = [];
  /** Per dense feature, the gathered raw values (n×width), the projection's input. */
  denseIn: Float32Array[] = [];
  ids: Int32Array = new Int32Array(0);
  n = 0;

  ensure(n: number, inDim: number, layers: DenseLayer[], outDim: number, feats: FeatureSpec[], idDim: number, dense: DenseFeatureSpec[]): void {
    if (n <= this.cap) return;
    const cap = Math.max(n, Math.ceil(this.cap * 1.5));
    this.cap = cap;
    this.x0 = new Float32Array(cap * inDim);
    this.acts = layers.map((l) => new Float32Array(cap * l.outDim));
    this.dAct = layers.map((l) => new Float32Array(cap * l.outDim));
    this.out = new Float32Array(cap * outDim);
    this.norms = new Float32Array(cap);
    this.dx0 = new Float32Array(cap * inDim);
    const blocks = feats.length + dense.length;
    this.featRows = blocks ? [new Float32Array(cap * idDim), ...feats.map((f) => new Float32Array(cap * f.dim)), ...dense.map((f) => new Float32Array(cap * f.dim))] : [];
    this.featIds = feats.map(() => new Int32Array(cap));
    this.denseIn = dense.map((f) => new Float32Array(cap * f.width));
  }
}

export class Tower {
  readonly idTable: EmbeddingTable;
  readonly featTables: EmbeddingTable[];
  readonly layers: DenseLayer[];
  /** One linear projection per dense feature (width → dim). */
  readonly projections: DenseLayer[];
  readonly dense: DenseFeatureSpec[];
  readonly inDim: number;
  readonly outDim: number;
  /** Per feature, the value index of every entity (length vocabSize). */
  featureValues: Int32Array[];
  /** Per dense feature, every entity's values (vocabSize×width). */
  denseValues: Float32Array[];
  /** User-history pooling on the id row (set by TwoTowerModel when config.history is on). */
  history: HistoryPooling | null = null;
  private readonly train = new Workspace();
  private readonly infer = new Workspace();

  constructor(
    readonly name: string,
    readonly config: TowerConfig,
    readonly optim: TowerOptim,
    featureValues: Int32Array[] = [],
    denseValues: Float32Array[] = [],
  ) {
    if (featureValues.length !== config.features.length) {
      throw new Error(`${name} tower: ${config.features.length} features configured but ${featureValues.length} value arrays given`);
    }
    this.dense = config.dense ?? [];
    if (denseValues.length !== this.dense.length) {
      throw new Error(`${name} tower: ${this.dense.length} dense features configured but ${denseValues.length} value arrays given`);
    }
    this.dense.forEach((f, k) => {
      if (denseValues[k].length !== config.vocabSize * f.width) {
        throw new Error(`${name} tower: dense feature '${f.name}' has ${denseValues[k].length} values, expected ${config.vocabSize} × ${f.width}`);
      }
    });
    this.featureValues = featureValues;
    this.denseValues = denseValues;
    this.idTable = new EmbeddingTable(`${name}.id`, config.vocabSize, config.idDim, optim.sparse);
    this.featTables = config.features.map((f) => new EmbeddingTable(`${name}.${f.name}`, f.cardinality, f.dim, optim.sparse));
    this.projections = this.dense.map((f) => new DenseLayer(f.width, f.dim, false));
    this.inDim = config.idDim + config.features.reduce((s, f) => s + f.dim, 0) + this.dense.reduce((s, f) => s + f.dim, 0);
    let d = this.inDim;
    this.layers = config.mlp.map((h, l) => {
      const layer = new DenseLayer(d, h, l < config.mlp.length - 1);
      d = h;
      return layer;
    });
    this.outDim = d;
  }

  init(rng: Rng, embStd = 0.05): void {
    this.idTable.initNormal(rng, embStd);
    for (const t of this.featTables) t.initNormal(rng, embStd);
    for (const l of this.layers) l.init(rng);
    for (const l of this.projections) l.init(rng);
  }

  /** Every dense (Adam-trained) layer: the MLP, then the dense-feature projections. */
  get denseLayers(): DenseLayer[] {
    return [...this.layers, ...this.projections];
  }

  /** Training forward: returns the n×outDim normalised output (a view valid until the next forward). */
  forward(backend: Backend, ids: Int32Array): Float32Array {
    return this.run(backend, ids, this.train);
  }

  /** Inference forward into `out` (n×outDim), in chunks; does not disturb the training activations. */
  embed(backend: Backend, ids: Int32Array, out: Float32Array, chunk = 4096): void {
    for (let s = 0; s < ids.length; s += chunk) {
      const part = ids.subarray(s, Math.min(ids.length, s + chunk));
      const y = this.run(backend, part, this.infer);
      out.set(y.subarray(0, part.length * this.outDim), s * this.outDim);
    }
  }

  /**
   * Inference forward of rows described by their features (see RowFeatures) into `out` (n×outDim). `ids[r]` is
   * the id row to use, or −1 for an entity outside the vocabulary, whose id embedding is then zero.
   */
  embedRows(backend: Backend, ids: Int32Array, features: RowFeatures, out: Float32Array): void {
    const n = ids.length;
    if (features.categorical.length !== this.config.features.length || features.dense.length !== this.dense.length) {
      throw new Error(`${this.name} tower: rows need ${this.config.features.length} categorical and ${this.dense.length} dense features`);
    }
    const y = this.run(backend, ids, this.infer, features);
    out.set(y.subarray(0, n * this.outDim));
  }

  /** Embeddings of every entity of the vocabulary, vocabSize×outDim. */
  embedAll(backend: Backend): Float32Array {
    const ids = new Int32Array(this.config.vocabSize);
    for (let i = 0; i < ids.length; i++) ids[i] = i;
    const out = new Float32Array(ids.length * this.outDim);
    this.embed(backend, ids, out);
    return out;
  }

  private run(backend: Backend, ids: Int32Array, ws: Workspace, given?: RowFeatures): Float32Array {
    const n = ids.length;
    const feats = this.config.features;
    const dense = this.dense;
    const idDim = this.config.idDim;
    ws.ensure(n, this.inDim, this.layers, this.outDim, feats, idDim, dense);
    ws.n = n;
    ws.ids = ids;
    if (feats.length === 0 && dense.length === 0 && !given) {
      backend.gatherRows(this.idTable.data, ids, ws.x0, idDim);
      this.history?.forward(backend, ids, ws.x0, n, idDim, ws === this.train);
    } else {
      if (given) {
        // Rows outside the vocabulary (−1) get a zero id embedding.
        const idRows = ws.featRows.length ? ws.featRows[0] : ws.x0;
        for (let r = 0; r < n; r++) {
          if (ids[r] >= 0) idRows.set(this.idTable.data.subarray(ids[r] * idDim, (ids[r] + 1) * idDim), r * idDim);
          else idRows.fill(0, r * idDim, (r + 1) * idDim);
        }
      } else backend.gatherRows(this.idTable.data, ids, ws.featRows[0], idDim);
      this.history?.forward(backend, ids, ws.featRows.length ? ws.featRows[0] : ws.x0, n, idDim, ws === this.train);
      for (let f = 0; f < feats.length; f++) {
        const fid = ws.featIds[f];
        if (given) fid.set(given.categorical[f].subarray(0, n));
        else {
          const vals = this.featureValues[f];
          for (let r = 0; r < n; r++) fid[r] = vals[ids[r]];
        }
        backend.gatherRows(this.featTables[f].data, fid.subarray(0, n), ws.featRows[f + 1], feats[f].dim);
      }
      for (let f = 0; f < dense.length; f++) {
        const w = dense[f].width;
        const x = ws.denseIn[f];
        if (given) x.set(given.dense[f].subarray(0, n * w));
        else backend.gatherRows(this.denseValues[f], ids, x, w);
        this.projections[f].forward(backend, x, ws.featRows[1 + feats.length + f], n);
      }
      if (ws.featRows.length) this.interleave(ws, n, false);
    }
    let x = ws.x0;
    for (let l = 0; l < this.layers.length; l++) {
      this.layers[l].forward(backend, x, ws.acts[l], n);
      x = ws.acts[l];
    }
    backend.l2normForward(x, ws.out, ws.norms, n, this.outDim);
    return ws.out;
  }

  /** Copies between the concatenated input x0 and the per-table row blocks (forward) or back (gradients). */
  private interleave(ws: Workspace, n: number, back: boolean): void {
    const dims = [this.config.idDim, ...this.config.features.map((f) => f.dim), ...this.dense.map((f) => f.dim)];
    const buf = back ? ws.dx0 : ws.x0;
    let col = 0;
    for (let t = 0; t < dims.length; t++) {
      const d = dims[t];
      const part = ws.featRows[t];
      for (let r = 0; r < n; r++) {
        const o = r * this.inDim + col;
        if (back) part.set(buf.subarray(o, o + d), r * d);
        else buf.set(part.subarray(r * d, r * d + d), o);
      }
      col += d;
    }
  }

  /**
   * Backward from dOut (n×outDim, gradient w.r.t. the normalised output of the last `forward`); dOut is
   * overwritten. Accumulates dense gradients and applies the sparse table updates for the gathered rows.
   */
  backward(backend: Backend, dOut: Float32Array): void {
    const ws = this.train;
    const n = ws.n;
    const L = this.layers.length;
    // With no MLP the normalisation's input gradient is the table gradient itself.
    const dLast = L ? ws.dAct[L - 1] : ws.dx0;
    backend.l2normBackward(ws.out, ws.norms, dOut, dLast, n, this.outDim);
    for (let l = L - 1; l >= 0; l--) {
      const x = l > 0 ? ws.acts[l - 1] : ws.x0;
      const dx = l > 0 ? ws.dAct[l - 1] : ws.dx0;
      this.layers[l].backward(backend, x, ws.acts[l], ws.dAct[l], dx, n);
    }
    const ids = ws.ids;
    if (this.config.features.length === 0 && this.dense.length === 0) {
      this.historyBackward(backend, ws.dx0, n);
      this.idTable.applyGradients(backend, ids, ws.dx0.subarray(0, n * this.inDim));
    } else {
      this.interleave(ws, n, true);
      this.historyBackward(backend, ws.featRows[0], n);
      this.idTable.applyGradients(backend, ids, ws.featRows[0].subarray(0, n * this.config.idDim));
      for (let f = 0; f < this.featTables.length; f++) {
        this.featTables[f].applyGradients(backend, ws.featIds[f].subarray(0, n), ws.featRows[f + 1].subarray(0, n * this.config.features[f].dim));
      }
      // The projections are linear (no ReLU), so their output is not needed: the gradient block stands in for y.
      const base = 1 + this.config.features.length;
      this.projections.forEach((p, f) => p.backward(backend, ws.denseIn[f], ws.featRows[base + f], ws.featRows[base + f], null, n));
    }
  }

  /**
   * The history items' share of the id block's gradient: to the user tower's own history table now, or queued on
   * the shared item table for the item tower's update of this step. Leaves g·dX for the id rows.
   */
  private historyBackward(backend: Backend, dX: Float32Array, n: number): void {
    const h = this.history;
    if (!h) return;
    const r = h.backward(backend, dX, n, this.config.idDim);
    if (h.config.table === 'own') h.table.applyGradients(backend, r.ids, r.grads);
    else h.table.addPending(r.ids, r.grads);
  }

  /** Dense optimizer step (Adam) on the MLP, then clears the accumulated gradients. */
  stepDense(backend: Backend): void {
    for (const l of this.denseLayers) {
      l.adamStep(backend, this.optim.denseLr, 0.9, 0.999, 1e-8, this.optim.l2 ?? 0);
      l.zeroGrad();
    }
  }
}
