/**
 * A small bidirectional transformer text tower over hashed unigram tokens (pre-LN blocks, Xiong et al. 2020):
 *   x⁰_t = E[id_t] + P[t]                         (t = position inside the chunk, < maxLen)
 *   block:  a = LN₁(x);  y₁ = x + W_o · Attn(a W_q, a W_k, a W_v)     (no causal mask: packing is the only mask)
 *           c = LN₂(y₁); x ← y₁ + W₂ · ReLU(W₁ c)
 *   h_t = LN_f(x_t),   p_s = mean_{t ∈ s} h_t,   y_s = p_s / ‖p_s‖.
 * The attention core is src/nn/attention.ts (SASRec's, hand-written backward) with causal = false; layer norms
 * and dense layers are SASRec's too. Backward is written by hand and checked against finite differences.
 */
import type { Backend } from '../compute/backend.ts';
import { DenseLayer, xavier } from '../model/dense-layer.ts';
import { EmbeddingTable } from '../model/embedding-table.ts';
import { CausalAttention } from '../nn/attention.ts';
import { Buffers } from '../nn/buffers.ts';
import { LayerNorm } from '../nn/layer-norm.ts';
import { Param } from '../nn/param.ts';
import { Rng } from '../util/rng.ts';
import type { NamedArray, StateArrays } from '../util/state.ts';
import { loadInto, optimizerStateOf, restoreOptimizerOf, type PackedText, type TextTower, type TowerOptim } from './tower.ts';

export interface TransformerConfig {
  buckets: number;
  dim: number;
  heads: number;
  blocks: number;
  /** Longest sequence (the chunk window); positions ≥ maxLen are an error. */
  maxLen: number;
  seed: number;
}


export class EncoderBlock {
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly wq: DenseLayer;
  readonly wk: DenseLayer;
  readonly wv: DenseLayer;
  readonly wo: DenseLayer;
  readonly ff1: DenseLayer;
  readonly ff2: DenseLayer;
  readonly attn: CausalAttention;
  private readonly buf = new Buffers();
  private R = 0;

  constructor(
    readonly name: string,
    readonly d: number,
    heads: number,
    rng: Rng,
  ) {
    this.ln1 = new LayerNorm(`${name}.ln1`, d, 1e-6);
    this.ln2 = new LayerNorm(`${name}.ln2`, d, 1e-6);
    this.wq = xavier(new DenseLayer(d, d, false), rng);
    this.wk = xavier(new DenseLayer(d, d, false), rng);
    this.wv = xavier(new DenseLayer(d, d, false), rng);
    this.wo = xavier(new DenseLayer(d, d, false), rng);
    this.ff1 = xavier(new DenseLayer(d, 2 * d, true), rng);
    this.ff2 = xavier(new DenseLayer(2 * d, d, false), rng);
    this.attn = new CausalAttention(d, heads, 0, false);
  }

  layers(): Array<[string, DenseLayer]> {
    return [['wq', this.wq], ['wk', this.wk], ['wv', this.wv], ['wo', this.wo], ['ff1', this.ff1], ['ff2', this.ff2]];
  }

  params(): Param[] {
    return [...this.ln1.params(), ...this.ln2.params()];
  }

  /** Block output (R×d, owned by the block); x is not modified. */
  forward(b: Backend, x: Float32Array, offsets: Int32Array, R: number, rng: Rng): Float32Array {
    const d = this.d;
    const n = R * d;
    const B = this.buf;
    this.R = R;
    const a = B.f32('a', n), Q = B.f32('Q', n), K = B.f32('K', n), V = B.f32('V', n), O = B.f32('O', n);
    const y1 = B.f32('y1', n), c = B.f32('c', n), f1 = B.f32('f1', 2 * n), y = B.f32('y', n);
    this.ln1.forward(b, x, a, R);
    this.wq.forward(b, a, Q, R);
    this.wk.forward(b, a, K, R);
    this.wv.forward(b, a, V, R);
    this.attn.forward(b, offsets, Q, K, V, O, false, rng);
    this.wo.forward(b, O, y1, R);
    for (let i = 0; i < n; i++) y1[i] += x[i];
    this.ln2.forward(b, y1, c, R);
    this.ff1.forward(b, c, f1, R);
    this.ff2.forward(b, f1, y, R);
    for (let i = 0; i < n; i++) y[i] += y1[i];
    return y;
  }

  /** dx (R×d, overwritten) from dy (R×d, not modified). */
  backward(b: Backend, dy: Float32Array, dx: Float32Array): void {
    const d = this.d;
    const R = this.R;
    const n = R * d;
    const B = this.buf;
    const a = B.f32('a', n), Q = B.f32('Q', n), K = B.f32('K', n), V = B.f32('V', n), O = B.f32('O', n);
    const y1 = B.f32('y1', n), c = B.f32('c', n), f1 = B.f32('f1', 2 * n), y = B.f32('y', n);
    const df1 = B.f32('df1', 2 * n), dc = B.f32('dc', n), dO = B.f32('dO', n);
    const dQ = B.f32('dQ', n), dK = B.f32('dK', n), dV = B.f32('dV', n), da = B.f32('da', n);
    // y = y₁ + FF(LN₂(y₁)): dy₁ = dy + LN₂ᵀ(FFᵀ dy), kept in dx.
    dx.set(dy.subarray(0, n));
    this.ff2.backward(b, f1, y, dx, df1, R); // no ReLU: dx is not modified
    this.ff1.backward(b, c, f1, df1, dc, R);
    this.ln2.backward(b, dc, dx, true);
    // y₁ = x + W_o Attn(...): dx = dy₁ + LN₁ᵀ(d a).
    this.wo.backward(b, O, y1, dx, dO, R);
    this.attn.backward(b, dO, dQ, dK, dV);
    this.wq.backward(b, a, Q, dQ, da, R);
    this.wk.backward(b, a, K, dK, null, R);
    b.gemm(false, true, R, d, d, 1, dK, this.wk.w, 1, da);
    this.wv.backward(b, a, V, dV, null, R);
    b.gemm(false, true, R, d, d, 1, dV, this.wv.w, 1, da);
    this.ln1.backward(b, da, dx, true);
  }
}

export class TransformerTower implements TextTower {
  readonly kind = 'transformer';
  readonly outDim: number;
  readonly table: EmbeddingTable;
  readonly pos: Param;
  readonly blocks: EncoderBlock[];
  readonly lnFinal: LayerNorm;
  private readonly buf = new Buffers();
  private batch: PackedText | null = null;
  private pending = false;
  /** Learning rate of the dense weights now (the configured one times the schedule's factor). */
  private lrDense: number;

  constructor(
    readonly config: TransformerConfig,
    readonly optim: TowerOptim,
  ) {
    const { buckets, dim, maxLen } = config;
    const rng = new Rng(config.seed);
    this.outDim = dim;
    this.table = new EmbeddingTable('emb', buckets, dim, { kind: 'lazyadam', lr: optim.lrSparse, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    this.table.initNormal(rng, 1 / Math.sqrt(dim));
    this.pos = new Param('pos', maxLen * dim).normal(rng, 0.02);
    this.blocks = Array.from({ length: config.blocks }, (_, l) => new EncoderBlock(`block${l}`, dim, config.heads, rng));
    this.lnFinal = new LayerNorm('ln.final', dim, 1e-6);
    this.lrDense = optim.lrDense;
  }

  setLrScale(factor: number): void {
    this.table.opt.lr = this.optim.lrSparse * factor;
    this.lrDense = this.optim.lrDense * factor;
  }

  private denseLayers(): Array<[string, DenseLayer]> {
    return this.blocks.flatMap((blk) => blk.layers().map(([n, l]): [string, DenseLayer] => [`${blk.name}.${n}`, l]));
  }

  optimizerState(): StateArrays {
    return optimizerStateOf(this.table, this.denseLayers(), this.denseParams());
  }

  restoreOptimizer(get: (name: string) => NamedArray | undefined): void {
    restoreOptimizerOf(get, this.table, this.denseLayers(), this.denseParams());
  }

  forward(b: Backend, batch: PackedText, _train: boolean, rng: Rng): Float32Array {
    const d = this.outDim;
    const n = batch.n;
    const R = batch.offsets[n];
    this.batch = batch;
    const x0 = this.buf.f32('x0', R * d);
    b.gatherRows(this.table.data, batch.ids.subarray(0, R), x0, d);
    const P = this.pos.p;
    for (let s = 0; s < n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      if (hi - lo > this.config.maxLen) throw new RangeError(`transformer tower: sequence of ${hi - lo} tokens exceeds maxLen ${this.config.maxLen}`);
      for (let t = lo; t < hi; t++) {
        const o = t * d;
        const po = (t - lo) * d;
        for (let k = 0; k < d; k++) x0[o + k] += P[po + k];
      }
    }
    let x = x0;
    for (const blk of this.blocks) x = blk.forward(b, x, batch.offsets, R, rng);
    const h = this.buf.f32('h', R * d);
    this.lnFinal.forward(b, x, h, R);
    const p = this.buf.f32('p', n * d);
    p.fill(0);
    for (let s = 0; s < n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      const inv = 1 / Math.max(1, hi - lo);
      for (let t = lo; t < hi; t++) for (let k = 0; k < d; k++) p[s * d + k] += h[t * d + k] * inv;
    }
    const y = this.buf.f32('y', n * d);
    b.l2normForward(p, y, this.buf.f32('norms', n), n, d);
    return y;
  }

  backward(b: Backend, dOut: Float32Array): void {
    const batch = this.batch!;
    const d = this.outDim;
    const n = batch.n;
    const R = batch.offsets[n];
    const dp = this.buf.f32('dp', n * d);
    b.l2normBackward(this.buf.f32('y', n * d), this.buf.f32('norms', n), dOut.subarray(0, n * d), dp, n, d);
    const dh = this.buf.f32('dh', R * d);
    for (let s = 0; s < n; s++) {
      const lo = batch.offsets[s];
      const hi = batch.offsets[s + 1];
      const inv = 1 / Math.max(1, hi - lo);
      for (let t = lo; t < hi; t++) for (let k = 0; k < d; k++) dh[t * d + k] = dp[s * d + k] * inv;
    }
    let dx = this.buf.f32('dxA', R * d);
    let dy = this.buf.f32('dxB', R * d);
    this.lnFinal.backward(b, dh, dx);
    for (let l = this.blocks.length - 1; l >= 0; l--) {
      this.blocks[l].backward(b, dx, dy);
      [dx, dy] = [dy, dx];
    }
    // dx = d x⁰: to the position table (dense) and the token rows (sparse, applied in step()).
    const gP = this.pos.g;
    for (let s = 0; s < n; s++) {
      const lo = batch.offsets[s];
      for (let t = lo; t < batch.offsets[s + 1]; t++) for (let k = 0; k < d; k++) gP[(t - lo) * d + k] += dx[t * d + k];
    }
    this.buf.f32('dE', R * d).set(dx);
    this.pending = true;
  }

  /** Per-token input gradients of the last backward (R × dim), for gradient checks. */
  inputGrads(): Float32Array {
    return this.buf.f32('dE', (this.batch?.offsets[this.batch.n] ?? 0) * this.outDim);
  }

  denseParams(): Param[] {
    return [this.pos, ...this.blocks.flatMap((blk) => blk.params()), ...this.lnFinal.params()];
  }

  step(b: Backend): void {
    if (this.pending && this.batch) {
      const R = this.batch.offsets[this.batch.n];
      this.table.applyGradients(b, this.batch.ids.subarray(0, R), this.inputGrads());
    }
    this.pending = false;
    const lr = this.lrDense;
    for (const p of this.denseParams()) p.adamStep(b, lr, 0.9, 0.999);
    for (const blk of this.blocks) {
      for (const [, l] of blk.layers()) {
        l.adamStep(b, lr);
        l.zeroGrad();
      }
    }
  }

  tensors(): Array<[string, Float32Array]> {
    const out: Array<[string, Float32Array]> = [['emb', this.table.data]];
    for (const p of this.denseParams()) out.push([p.name, p.p]);
    for (const blk of this.blocks) for (const [name, l] of blk.layers()) out.push([`${blk.name}.${name}.w`, l.w], [`${blk.name}.${name}.b`, l.b]);
    return out;
  }

  load(arrays: Map<string, Float32Array | Int32Array>): void {
    for (const [name, dst] of this.tensors()) loadInto(arrays, name, dst);
  }
}
