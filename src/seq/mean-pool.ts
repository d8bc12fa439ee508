/**
 * The cheap sequence baseline: the running mean of the history's item embeddings through one dense layer,
 *   c_t = (1/(t+1)) Σ_{s ≤ t} E[item_s],   h_t = c_t W + b,
 * causal by construction (h_t depends on items 0..t only). Backward: dc = dh Wᵀ, and each input row gets
 * dE[item_s] = Σ_{t ≥ s} dc_t / (t+1) (a reverse running sum).
 */
import type { Backend } from '../compute/backend.ts';
import { DenseLayer } from '../model/dense-layer.ts';
import { EmbeddingTable, type SparseOptimizerConfig } from '../model/embedding-table.ts';
import { Rng } from '../util/rng.ts';
import { Buffers } from '../nn/buffers.ts';
import type { PackedBatch } from './packed.ts';
import { towerOptimizerState, type DenseOptim, type SeqTower } from './tower.ts';

export interface MeanPoolConfig {
  numItems: number;
  dim: number;
  maxLen: number;
  seed: number;
}

export class MeanPoolTower implements SeqTower {
  readonly kind = 'meanpool';
  readonly dim: number;
  readonly maxLen: number;
  readonly items: EmbeddingTable;
  readonly proj: DenseLayer;
  private readonly buf = new Buffers();
  private batch: PackedBatch | null = null;

  constructor(
    readonly config: MeanPoolConfig,
    sparse: SparseOptimizerConfig,
    readonly optim: DenseOptim,
  ) {
    this.dim = config.dim;
    this.maxLen = config.maxLen;
    const rng = new Rng(config.seed);
    this.items = new EmbeddingTable('item.emb', config.numItems, config.dim, sparse);
    this.items.initNormal(rng, Math.sqrt(2 / (config.numItems + config.dim)));
    this.proj = new DenseLayer(config.dim, config.dim, false);
    const std = Math.sqrt(1 / config.dim);
    for (let i = 0; i < this.proj.w.length; i++) this.proj.w[i] = rng.normal() * std;
  }

  forward(b: Backend, batch: PackedBatch, _train: boolean, _rng: Rng): Float32Array {
    const d = this.dim;
    const R = batch.tokens;
    this.batch = batch;
    const e = this.buf.f32('e', R * d);
    const c = this.buf.f32('c', R * d);
    const h = this.buf.f32('h', R * d);
    b.gatherRows(this.items.data, batch.items, e, d);
    for (let s = 0; s < batch.n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      for (let t = lo; t < hi; t++) {
        const k = t - lo + 1;
        const o = t * d;
        for (let j = 0; j < d; j++) {
          const prev = t > lo ? c[o - d + j] * (k - 1) : 0;
          c[o + j] = (prev + e[o + j]) / k;
        }
      }
    }
    this.proj.forward(b, c, h, R);
    return h;
  }

  backward(b: Backend, dH: Float32Array): void {
    const d = this.dim;
    const batch = this.batch!;
    const R = batch.tokens;
    const c = this.buf.f32('c', R * d);
    const h = this.buf.f32('h', R * d);
    const dc = this.buf.f32('dc', R * d);
    const dE = this.buf.f32('dE', R * d);
    this.proj.backward(b, c, h, dH, dc, R);
    const run = this.buf.f32('run', d);
    for (let s = 0; s < batch.n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      run.fill(0);
      for (let t = hi - 1; t >= lo; t--) {
        const k = t - lo + 1;
        const o = t * d;
        for (let j = 0; j < d; j++) {
          run[j] += dc[o + j] / k;
          dE[o + j] = run[j];
        }
      }
    }
  }

  inputGrads(): Float32Array {
    return this.buf.f32('dE', (this.batch?.tokens ?? 0) * this.dim);
  }

  stepDense(b: Backend): void {
    this.proj.adamStep(b, this.optim.lr, this.optim.beta1, this.optim.beta2);
    this.proj.zeroGrad();
  }

  optimizerState() {
    return towerOptimizerState(this.items, [], [['proj', this.proj]]);
  }

  tensors(): Array<[string, Float32Array]> {
    return [
      ['item.emb', this.items.data],
      ['proj.w', this.proj.w],
      ['proj.b', this.proj.b],
    ];
  }
}
