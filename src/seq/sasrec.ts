/**
 * SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item history, trained to predict the
 * next item at every position. Architecture as the reference implementations (the TF original and the widely
 * used PyTorch port), per token t of a sequence of length T ≤ L:
 *   x⁰_t = √d · E[item_t] + P[L − T + t],   dropout
 *   block (× n_blocks):  a = LN₁(x);  Q = a W_q, K = x W_k, V = x W_v (+ biases);
 *                        y₁ = a + W_o · CausalAttention(Q, K, V)         (attention-probability dropout)
 *                        b = LN₂(y₁);  x ← b + dropout(W₂ · dropout(ReLU(W₁ b)))
 *   h_t = LN_final(x_t)
 * Positions are left-aligned as with left padding (the last item sits at L − 1); the batch is packed, so no
 * padding token ever enters attention (see packed.ts). Forward/backward are written by hand on the backend's
 * GEMM kernels (dense layers, per-sequence attention GEMMs); gradients are checked by finite differences.
 */
import type { Backend } from '../compute/backend.ts';
import { DenseLayer, xavier } from '../model/dense-layer.ts';
import { EmbeddingTable, type SparseOptimizerConfig } from '../model/embedding-table.ts';
import { Rng } from '../util/rng.ts';
import { CausalAttention } from '../nn/attention.ts';
import { Buffers } from '../nn/buffers.ts';
import { Dropout } from '../nn/dropout.ts';
import { LayerNorm } from '../nn/layer-norm.ts';
import type { PackedBatch } from './packed.ts';
import { Param } from '../nn/param.ts';
import { towerOptimizerState, type DenseOptim, type SeqTower } from './tower.ts';

export interface SasRecConfig {
  numItems: number;
  dim: number;
  maxLen: number;
  blocks: number;
  heads: number;
  dropout: number;
  seed: number;
}


class Block {
  readonly ln1: LayerNorm;
  readonly ln2: LayerNorm;
  readonly wq: DenseLayer;
  readonly wk: DenseLayer;
  readonly wv: DenseLayer;
  readonly wo: DenseLayer;
  readonly ff1: DenseLayer;
  readonly ff2: DenseLayer;
  readonly attn: CausalAttention;
  private readonly dropHidden: Dropout;
  private readonly dropOut: Dropout;
  private readonly buf = new Buffers();
  private x: Float32Array = new Float32Array(0);
  private R = 0;

  constructor(
    readonly name: string,
    readonly d: number,
    heads: number,
    dropout: number,
    rng: Rng,
  ) {
    this.ln1 = new LayerNorm(`${name}.ln1`, d);
    this.ln2 = new LayerNorm(`${name}.ln2`, d);
    this.wq = xavier(new DenseLayer(d, d, false), rng);
    this.wk = xavier(new DenseLayer(d, d, false), rng);
    this.wv = xavier(new DenseLayer(d, d, false), rng);
    this.wo = xavier(new DenseLayer(d, d, false), rng);
    this.ff1 = xavier(new DenseLayer(d, d, true), rng);
    this.ff2 = xavier(new DenseLayer(d, d, false), rng);
    this.attn = new CausalAttention(d, heads, dropout);
    this.dropHidden = new Dropout(dropout);
    this.dropOut = new Dropout(dropout);
  }

  layers(): Array<[string, DenseLayer]> {
    return [
      ['wq', this.wq],
      ['wk', this.wk],
      ['wv', this.wv],
      ['wo', this.wo],
      ['ff1', this.ff1],
      ['ff2', this.ff2],
    ];
  }

  /** Returns the block output (R×d, a buffer owned by the block). x must stay unchanged until backward. */
  forward(b: Backend, x: Float32Array, offsets: Int32Array, R: number, train: boolean, rng: Rng): Float32Array {
    const n = R * this.d;
    const B = this.buf;
    this.x = x;
    this.R = R;
    const a = B.f32('a', n);
    const Q = B.f32('Q', n);
    const K = B.f32('K', n);
    const V = B.f32('V', n);
    const O = B.f32('O', n);
    const m = B.f32('m', n);
    const bb = B.f32('b', n);
    const f1 = B.f32('f1', n);
    const f1d = B.f32('f1d', n);
    const f2 = B.f32('f2', n);
    const y = B.f32('y', n);
    this.ln1.forward(b, x, a, R);
    this.wq.forward(b, a, Q, R);
    this.wk.forward(b, x, K, R);
    this.wv.forward(b, x, V, R);
    this.attn.forward(b, offsets, Q, K, V, O, train, rng);
    this.wo.forward(b, O, m, R);
    for (let i = 0; i < n; i++) m[i] += a[i]; // y₁ = a + attention output (kept in m)
    this.ln2.forward(b, m, bb, R);
    this.ff1.forward(b, bb, f1, R);
    f1d.set(f1);
    this.dropHidden.forward(b, f1d, n, train, rng);
    this.ff2.forward(b, f1d, f2, R);
    this.dropOut.forward(b, f2, n, train, rng);
    for (let i = 0; i < n; i++) y[i] = bb[i] + f2[i];
    return y;
  }

  /** dx (R×d, overwritten) from dy (R×d; not modified). */
  backward(b: Backend, dy: Float32Array, dx: Float32Array): void {
    const R = this.R;
    const d = this.d;
    const n = R * d;
    const B = this.buf;
    const a = B.f32('a', n);
    const Q = B.f32('Q', n);
    const K = B.f32('K', n);
    const V = B.f32('V', n);
    const O = B.f32('O', n);
    const m = B.f32('m', n);
    const bb = B.f32('b', n);
    const f1 = B.f32('f1', n);
    const f1d = B.f32('f1d', n);
    const f2 = B.f32('f2', n);
    const dB = B.f32('dB', n);
    const dT = B.f32('dT', n);
    const dT2 = B.f32('dT2', n);
    const dQ = B.f32('dQ', n);
    const dK = B.f32('dK', n);
    const dV = B.f32('dV', n);
    // y = b + dropout(ff2(...)): both paths get dy. Input gradients of the dense layers are accumulated
    // straight into the residual stream with GEMM's beta = 1 (dx += dy·Wᵀ) instead of a temporary and an add.
    dB.set(dy.subarray(0, n));
    this.dropOut.backwardInto(b, dy, dT);
    this.ff2.backward(b, f1d, f2, dT, dT2, R); // dT2 = d f1d
    this.dropHidden.backward(b, dT2);
    this.ff1.backward(b, bb, f1, dT2, null, R); // ReLU gate on f1, weights only
    b.gemm(false, true, R, d, d, 1, dT2, this.ff1.w, 1, dB); // dB += d(ff1 input)
    this.ln2.backward(b, dB, dT); // dT = d y₁ = dA (residual) = d(attention output)
    this.wo.backward(b, O, m, dT, dT2, R); // dT2 = dO (no ReLU: dT unchanged)
    this.attn.backward(b, dT2, dQ, dK, dV);
    this.wq.backward(b, a, Q, dQ, null, R);
    b.gemm(false, true, R, d, d, 1, dQ, this.wq.w, 1, dT); // dA += dQ·W_qᵀ
    this.wk.backward(b, this.x, K, dK, dx, R);
    this.wv.backward(b, this.x, V, dV, null, R);
    b.gemm(false, true, R, d, d, 1, dV, this.wv.w, 1, dx); // dx += dV·W_vᵀ
    this.ln1.backward(b, dT, dx, true); // dx += LN₁ᵀ(dA)
  }
}

export class SasRecTower implements SeqTower {
  readonly kind = 'sasrec';
  readonly dim: number;
  readonly maxLen: number;
  readonly items: EmbeddingTable;
  readonly pos: Param;
  readonly blocks: Block[];
  readonly lnFinal: LayerNorm;
  private readonly embDrop: Dropout;
  private readonly buf = new Buffers();
  private batch: PackedBatch | null = null;

  constructor(
    readonly config: SasRecConfig,
    sparse: SparseOptimizerConfig,
    readonly optim: DenseOptim,
  ) {
    const { numItems, dim, maxLen } = config;
    this.dim = dim;
    this.maxLen = maxLen;
    const rng = new Rng(config.seed);
    this.items = new EmbeddingTable('item.emb', numItems, dim, sparse);
    this.items.initNormal(rng, Math.sqrt(2 / (numItems + dim)));
    this.pos = new Param('pos.emb', maxLen * dim).normal(rng, Math.sqrt(2 / (maxLen + dim)));
    this.blocks = Array.from({ length: config.blocks }, (_, l) => new Block(`block${l}`, dim, config.heads, config.dropout, rng));
    this.lnFinal = new LayerNorm('ln.final', dim);
    this.embDrop = new Dropout(config.dropout);
  }

  forward(b: Backend, batch: PackedBatch, train: boolean, rng: Rng): Float32Array {
    const d = this.dim;
    const R = batch.tokens;
    const n = R * d;
    this.batch = batch;
    const x0 = this.buf.f32('x0', n);
    b.gatherRows(this.items.data, batch.items, x0, d);
    const s = Math.sqrt(d);
    const P = this.pos.p;
    for (let t = 0; t < R; t++) {
      const o = t * d;
      const po = batch.positions[t] * d;
      for (let k = 0; k < d; k++) x0[o + k] = x0[o + k] * s + P[po + k];
    }
    this.embDrop.forward(b, x0, n, train, rng);
    let x = x0;
    for (const blk of this.blocks) x = blk.forward(b, x, batch.offsets, R, train, rng);
    const h = this.buf.f32('h', n);
    this.lnFinal.forward(b, x, h, R);
    return h;
  }

  backward(b: Backend, dH: Float32Array): void {
    const d = this.dim;
    const batch = this.batch!;
    const R = batch.tokens;
    const n = R * d;
    let dx = this.buf.f32('dxA', n);
    let dy = this.buf.f32('dxB', n);
    this.lnFinal.backward(b, dH, dx);
    for (let l = this.blocks.length - 1; l >= 0; l--) {
      this.blocks[l].backward(b, dx, dy);
      [dx, dy] = [dy, dx];
    }
    this.embDrop.backward(b, dx);
    const gP = this.pos.g;
    const dE = this.buf.f32('dE', n);
    const s = Math.sqrt(d);
    for (let t = 0; t < R; t++) {
      const o = t * d;
      const po = batch.positions[t] * d;
      for (let k = 0; k < d; k++) {
        gP[po + k] += dx[o + k];
        dE[o + k] = dx[o + k] * s;
      }
    }
  }

  inputGrads(): Float32Array {
    return this.buf.f32('dE', (this.batch?.tokens ?? 0) * this.dim);
  }

  denseParams(): Param[] {
    return [this.pos, ...this.blocks.flatMap((blk) => [...blk.ln1.params(), ...blk.ln2.params()]), ...this.lnFinal.params()];
  }

  stepDense(b: Backend): void {
    const o = this.optim;
    for (const p of this.denseParams()) p.adamStep(b, o.lr, o.beta1, o.beta2);
    for (const blk of this.blocks) {
      for (const [, l] of blk.layers()) {
        l.adamStep(b, o.lr, o.beta1, o.beta2);
        l.zeroGrad();
      }
    }
  }

  optimizerState() {
    return towerOptimizerState(this.items, this.denseParams(), this.blocks.flatMap((blk) => blk.layers().map(([name, l]): [string, DenseLayer] => [`${blk.name}.${name}`, l])));
  }

  tensors(): Array<[string, Float32Array]> {
    const out: Array<[string, Float32Array]> = [['item.emb', this.items.data]];
    for (const p of this.denseParams()) out.push([p.name, p.p]);
    for (const blk of this.blocks) {
      for (const [name, l] of blk.layers()) out.push([`${blk.name}.${name}.w`, l.w], [`${blk.name}.${name}.b`, l.b]);
    }
    return out;
  }
}
