/**
 * Bag-of-embeddings text tower: the pooled rows of a hashed n-gram embedding table, an optional dense layer,
 * L2 normalisation:
 *   p_s = Σ_{t ∈ s} E[id_t] / z_s   (z_s = |s| for 'mean', √|s| for 'sqrt' — fastText / StarSpace style),
 *   h_s = p_s W + b (optional),   y_s = h_s / ‖h_s‖.
 * Backward: dh = (dy − y (y·dy)) / ‖h‖,  dp = dh Wᵀ,  dE[id_t] += dp_s / z_s (sparse rows, lazy Adam).
 */
import type { Backend } from '../compute/backend.ts';
import { DenseLayer } from '../model/dense-layer.ts';
import { EmbeddingTable } from '../model/embedding-table.ts';
import { Buffers } from '../nn/buffers.ts';
import { Rng } from '../util/rng.ts';
import type { NamedArray, StateArrays } from '../util/state.ts';
import { loadInto, optimizerStateOf, restoreOptimizerOf, type PackedText, type TextTower, type TowerOptim } from './tower.ts';

export interface BoeConfig {
  buckets: number;
  dim: number;
  pooling: 'mean' | 'sqrt';
  /** Output size of the dense layer after pooling; 0 = no dense layer. */
  proj: number;
  seed: number;
}

export class BoeTower implements TextTower {
  readonly kind = 'boe';
  readonly outDim: number;
  readonly table: EmbeddingTable;
  readonly dense: DenseLayer | null;
  private readonly buf = new Buffers();
  private batch: PackedText | null = null;
  /** Learning rate of the dense layer now (the configured one times the schedule's factor). */
  private lrDense: number;

  constructor(
    readonly config: BoeConfig,
    readonly optim: TowerOptim,
  ) {
    const rng = new Rng(config.seed);
    this.table = new EmbeddingTable('emb', config.buckets, config.dim, { kind: 'lazyadam', lr: optim.lrSparse, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    this.table.initNormal(rng, 1 / Math.sqrt(config.dim));
    this.dense = config.proj > 0 ? new DenseLayer(config.dim, config.proj, false) : null;
    if (this.dense) {
      // Near-identity start when square, so training begins from the lexical-overlap geometry of the bag.
      const std = 0.1 / Math.sqrt(config.dim);
      for (let i = 0; i < this.dense.w.length; i++) this.dense.w[i] = rng.normal() * std;
      if (config.proj === config.dim) for (let i = 0; i < config.dim; i++) this.dense.w[i * config.dim + i] += 1;
      this.dense.b.fill(0);
    }
    this.outDim = config.proj > 0 ? config.proj : config.dim;
    this.lrDense = optim.lrDense;
  }

  setLrScale(factor: number): void {
    this.table.opt.lr = this.optim.lrSparse * factor;
    this.lrDense = this.optim.lrDense * factor;
  }

  optimizerState(): StateArrays {
    return optimizerStateOf(this.table, this.dense ? [['dense', this.dense]] : [], []);
  }

  restoreOptimizer(get: (name: string) => NamedArray | undefined): void {
    restoreOptimizerOf(get, this.table, this.dense ? [['dense', this.dense]] : [], []);
  }

  private z(len: number): number {
    if (len === 0) return 1;
    return this.config.pooling === 'mean' ? len : Math.sqrt(len);
  }

  forward(b: Backend, batch: PackedText, _train: boolean, _rng: Rng): Float32Array {
    const d = this.config.dim;
    const n = batch.n;
    this.batch = batch;
    const p = this.buf.f32('p', n * d);
    p.fill(0);
    const E = this.table.data;
    for (let s = 0; s < n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      const o = s * d;
      for (let t = lo; t < hi; t++) {
        const e = batch.ids[t] * d;
        for (let j = 0; j < d; j++) p[o + j] += E[e + j];
      }
      const inv = 1 / this.z(hi - lo);
      for (let j = 0; j < d; j++) p[o + j] *= inv;
    }
    let h = p;
    if (this.dense) {
      h = this.buf.f32('h', n * this.outDim);
      this.dense.forward(b, p, h, n);
    }
    const y = this.buf.f32('y', n * this.outDim);
    const norms = this.buf.f32('norms', n);
    b.l2normForward(h, y, norms, n, this.outDim);
    return y;
  }

  backward(b: Backend, dOut: Float32Array): void {
    const batch = this.batch!;
    const n = batch.n;
    const d = this.config.dim;
    const D = this.outDim;
    const y = this.buf.f32('y', n * D);
    const norms = this.buf.f32('norms', n);
    const dh = this.buf.f32('dh', n * D);
    b.l2normBackward(y, norms, dOut.subarray(0, n * D), dh, n, D);
    let dp = dh;
    if (this.dense) {
      dp = this.buf.f32('dp', n * d);
      this.dense.backward(b, this.buf.f32('p', n * d), this.buf.f32('h', n * D), dh, dp, n);
    }
    // Per-token row gradients; the table sums duplicates and updates each touched row once in step().
    const R = batch.offsets[n];
    const g = this.buf.f32('g', R * d);
    for (let s = 0; s < n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      const inv = 1 / this.z(hi - lo);
      const o = s * d;
      for (let t = lo; t < hi; t++) for (let j = 0; j < d; j++) g[t * d + j] = dp[o + j] * inv;
    }
    this.pendingIds = batch.ids.subarray(0, R);
    this.pendingGrads = g;
  }

  private pendingIds: Int32Array | null = null;
  private pendingGrads: Float32Array | null = null;

  /** The per-token input gradients of the last backward (R × dim), for gradient checks. */
  inputGrads(): Float32Array {
    return this.pendingGrads ?? new Float32Array(0);
  }

  step(b: Backend): void {
    if (this.pendingIds && this.pendingIds.length) this.table.applyGradients(b, this.pendingIds, this.pendingGrads!);
    this.pendingIds = null;
    this.pendingGrads = null;
    if (this.dense) {
      this.dense.adamStep(b, this.lrDense);
      this.dense.zeroGrad();
    }
  }

  tensors(): Array<[string, Float32Array]> {
    const out: Array<[string, Float32Array]> = [['emb', this.table.data]];
    if (this.dense) out.push(['dense.w', this.dense.w], ['dense.b', this.dense.b]);
    return out;
  }

  load(arrays: Map<string, Float32Array | Int32Array>): void {
    for (const [name, dst] of this.tensors()) loadInto(arrays, name, dst);
  }
}
