/**
 * One tower of the dual encoder: [id embedding ‖ categorical feature embeddings] → MLP → L2 normalisation.
 *
 * Shapes for a batch of n entities: input x0 n×inDim (inDim = idDim + Σ feature dims), hidden layers
 * n×h_l with ReLU, output n×outDim (no activation), then row-normalised. With `mlp: []` the tower is the
 * normalised concatenated embedding (matrix factorisation with cosine scores).
 * Tables live outside autograd (see embedding-table.ts); backward yields gradients for the gathered rows.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';
import { DenseLayer } from './dense-layer.ts';
import { EmbeddingTable, type SparseOptimizerConfig } from './embedding-table.ts';

export interface FeatureSpec {
  name: string;
  /** Number of distinct values (index 0 = missing). */
  cardinality: number;
  dim: number;
}

export interface TowerConfig {
  vocabSize: number;
  idDim: number;
  features: FeatureSpec[];
  /** Sizes of the MLP layers, the last one being the output size; [] for no MLP. */
  mlp: number[];
}

export interface TowerOptim {
  sparse: SparseOptimizerConfig;
  denseLr: number;
  /** L2 penalty on the MLP weights (0 = none). */
  l2?: number;
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
  ids: Int32Array = new Int32Array(0);
  n = 0;

  ensure(n: number, inDim: number, layers: DenseLayer[], outDim: number, feats: FeatureSpec[], idDim: number): void {
    if (n <= this.cap) return;
    const cap = Math.max(n, Math.ceil(this.cap * 1.5));
    this.cap = cap;
    this.x0 = new Float32Array(cap * inDim);
    this.acts = layers.map((l) => new Float32Array(cap * l.outDim));
    this.dAct = layers.map((l) => new Float32Array(cap * l.outDim));
    this.out = new Float32Array(cap * outDim);
    this.norms = new Float32Array(cap);
    this.dx0 = new Float32Array(cap * inDim);
    this.featRows = feats.length ? [new Float32Array(cap * idDim), ...feats.map((f) => new Float32Array(cap * f.dim))] : [];
    this.featIds = feats.map(() => new Int32Array(cap));
  }
}

export class Tower {
  readonly idTable: EmbeddingTable;
  readonly featTables: EmbeddingTable[];
  readonly layers: DenseLayer[];
  readonly inDim: number;
  readonly outDim: number;
  /** Per feature, the value index of every entity (length vocabSize). */
  featureValues: Int32Array[];
  private readonly train = new Workspace();
  private readonly infer = new Workspace();

  constructor(
    readonly name: string,
    readonly config: TowerConfig,
    readonly optim: TowerOptim,
    featureValues: Int32Array[] = [],
  ) {
    if (featureValues.length !== config.features.length) {
      throw new Error(`${name} tower: ${config.features.length} features configured but ${featureValues.length} value arrays given`);
    }
    this.featureValues = featureValues;
    this.idTable = new EmbeddingTable(`${name}.id`, config.vocabSize, config.idDim, optim.sparse);
    this.featTables = config.features.map((f) => new EmbeddingTable(`${name}.${f.name}`, f.cardinality, f.dim, optim.sparse));
    this.inDim = config.idDim + config.features.reduce((s, f) => s + f.dim, 0);
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

  /** Embeddings of every entity of the vocabulary, vocabSize×outDim. */
  embedAll(backend: Backend): Float32Array {
    const ids = new Int32Array(this.config.vocabSize);
    for (let i = 0; i < ids.length; i++) ids[i] = i;
    const out = new Float32Array(ids.length * this.outDim);
    this.embed(backend, ids, out);
    return out;
  }

  private run(backend: Backend, ids: Int32Array, ws: Workspace): Float32Array {
    const n = ids.length;
    const feats = this.config.features;
    ws.ensure(n, this.inDim, this.layers, this.outDim, feats, this.config.idDim);
    ws.n = n;
    ws.ids = ids;
    if (feats.length === 0) {
      backend.gatherRows(this.idTable.data, ids, ws.x0, this.config.idDim);
    } else {
      backend.gatherRows(this.idTable.data, ids, ws.featRows[0], this.config.idDim);
      for (let f = 0; f < feats.length; f++) {
        const vals = this.featureValues[f];
        const fid = ws.featIds[f];
        for (let r = 0; r < n; r++) fid[r] = vals[ids[r]];
        backend.gatherRows(this.featTables[f].data, fid.subarray(0, n), ws.featRows[f + 1], feats[f].dim);
      }
      this.interleave(ws, n, false);
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
    const dims = [this.config.idDim, ...this.config.features.map((f) => f.dim)];
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
    if (this.config.features.length === 0) {
      this.idTable.applyGradients(backend, ids, ws.dx0.subarray(0, n * this.inDim));
    } else {
      this.interleave(ws, n, true);
      this.idTable.applyGradients(backend, ids, ws.featRows[0].subarray(0, n * this.config.idDim));
      for (let f = 0; f < this.featTables.length; f++) {
        this.featTables[f].applyGradients(backend, ws.featIds[f].subarray(0, n), ws.featRows[f + 1].subarray(0, n * this.config.features[f].dim));
      }
    }
  }

  /** Dense optimizer step (Adam) on the MLP, then clears the accumulated gradients. */
  stepDense(backend: Backend): void {
    for (const l of this.layers) {
      l.adamStep(backend, this.optim.denseLr, 0.9, 0.999, 1e-8, this.optim.l2 ?? 0);
      l.zeroGrad();
    }
  }
}
