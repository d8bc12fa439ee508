/**
 * Causal multi-head self-attention over packed sequences (Vaswani et al. 2017; causal as in SASRec, Kang &
 * McAuley 2018). For each sequence and head h (width d_h = d/H), with Q, K, V the sequence's T×d_h slices:
 *   S = Q Kᵀ / √d_h,   S_ij = −∞ for j > i (a token never sees a later one),
 *   P = softmax_rows(S),   P̃ = dropout(P),   O = P̃ V.
 * Backward:  dP̃ = dO Vᵀ,  dV = P̃ᵀ dO,  dP = dropoutᵀ(dP̃),  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
 *            dQ = dS K / √d_h,  dK = dSᵀ Q / √d_h.
 * Sequences are attended separately, so padding never exists (see packed.ts): each (sequence, head) pair is
 * six small GEMMs on the backend (two forward, four backward). With H > 1 the heads are first gathered into
 * head-major buffers so every slice is contiguous.
 * With causal = false the mask is dropped (a bidirectional text encoder over packed sequences).
 * This module is only the attention core; the Q/K/V/output projections are dense layers of the block.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';
import { Buffers } from './buffers.ts';
import { Dropout } from './dropout.ts';

export class CausalAttention {
  readonly dh: number;
  private readonly drop: Dropout;
  private readonly buf = new Buffers();
  // State of the last forward.
  private offsets: Int32Array = new Int32Array(0);
  private tokens = 0;
  private pOff: Int32Array = new Int32Array(0);
  private q: Float32Array = new Float32Array(0);
  private k: Float32Array = new Float32Array(0);
  private v: Float32Array = new Float32Array(0);

  constructor(
    readonly dim: number,
    readonly heads: number,
    dropout: number,
    /** false: every token attends to every token of its own sequence (a text encoder; packing is the only mask). */
    readonly causal = true,
  ) {
    if (dim % heads !== 0) throw new RangeError(`attention: dim ${dim} is not a multiple of heads ${heads}`);
    this.dh = dim / heads;
    this.drop = new Dropout(dropout);
  }

  /** O (tokens×d) from Q, K, V (tokens×d, token-major); keeps what backward needs (Q, K, V by reference). */
  forward(backend: Backend, offsets: Int32Array, Q: Float32Array, K: Float32Array, V: Float32Array, O: Float32Array, train: boolean, rng: Rng): void {
    const H = this.heads;
    const dh = this.dh;
    const n = offsets.length - 1;
    const R = offsets[n];
    this.offsets = offsets;
    this.tokens = R;
    // P blocks: sequence s, head h at pOff[s] + h·T².
    const pOff = (this.pOff = this.buf.i32('pOff', n + 1));
    let tot = 0;
    for (let s = 0; s < n; s++) {
      pOff[s] = tot;
      const T = offsets[s + 1] - offsets[s];
      tot += H * T * T;
    }
    pOff[n] = tot;
    const P = this.buf.f32('P', tot);
    const Pd = this.buf.f32('Pd', tot);
    const [q, k, v] = H === 1 ? [Q, K, V] : [this.split('q', Q, R), this.split('k', K, R), this.split('v', V, R)];
    this.q = q;
    this.k = k;
    this.v = v;
    const alpha = 1 / Math.sqrt(dh);
    for (let s = 0; s < n; s++) {
      const t0 = offsets[s];
      const T = offsets[s + 1] - t0;
      for (let h = 0; h < H; h++) {
        const base = h * R * dh + t0 * dh;
        const S = P.subarray(pOff[s] + h * T * T, pOff[s] + (h + 1) * T * T);
        backend.gemm(false, true, T, T, dh, alpha, q.subarray(base, base + T * dh), k.subarray(base, base + T * dh), 0, S);
        if (this.causal) causalSoftmax(S, T);
        else fullSoftmax(S, T);
      }
    }
    Pd.set(P);
    this.drop.forward(Pd, tot, train, rng);
    const o = H === 1 ? O : this.buf.f32('o', R * this.dim);
    for (let s = 0; s < n; s++) {
      const t0 = offsets[s];
      const T = offsets[s + 1] - t0;
      for (let h = 0; h < H; h++) {
        const base = h * R * dh + t0 * dh;
        const pd = Pd.subarray(pOff[s] + h * T * T, pOff[s] + (h + 1) * T * T);
        backend.gemm(false, false, T, dh, T, 1, pd, v.subarray(base, base + T * dh), 0, o.subarray(base, base + T * dh));
      }
    }
    if (H > 1) this.merge(o, O, R);
  }

  /** dQ, dK, dV (tokens×d, overwritten) from dO (tokens×d) of the last forward. dO is not modified. */
  backward(backend: Backend, dO: Float32Array, dQ: Float32Array, dK: Float32Array, dV: Float32Array): void {
    const H = this.heads;
    const dh = this.dh;
    const offsets = this.offsets;
    const n = offsets.length - 1;
    const R = this.tokens;
    const pOff = this.pOff;
    const tot = pOff[n];
    const P = this.buf.f32('P', tot);
    const Pd = this.buf.f32('Pd', tot);
    const dP = this.buf.f32('dP', tot);
    const dO_ = H === 1 ? dO : this.split('dO', dO, R);
    const dq = H === 1 ? dQ : this.buf.f32('dq', R * this.dim);
    const dk = H === 1 ? dK : this.buf.f32('dk', R * this.dim);
    const dv = H === 1 ? dV : this.buf.f32('dv', R * this.dim);
    const { q, k, v } = this;
    for (let s = 0; s < n; s++) {
      const t0 = offsets[s];
      const T = offsets[s + 1] - t0;
      for (let h = 0; h < H; h++) {
        const base = h * R * dh + t0 * dh;
        const blk = pOff[s] + h * T * T;
        const dOs = dO_.subarray(base, base + T * dh);
        backend.gemm(false, true, T, T, dh, 1, dOs, v.subarray(base, base + T * dh), 0, dP.subarray(blk, blk + T * T));
        backend.gemm(true, false, T, dh, T, 1, Pd.subarray(blk, blk + T * T), dOs, 0, dv.subarray(base, base + T * dh));
      }
    }
    this.drop.backward(dP);
    const alpha = 1 / Math.sqrt(dh);
    for (let s = 0; s < n; s++) {
      const t0 = offsets[s];
      const T = offsets[s + 1] - t0;
      for (let h = 0; h < H; h++) {
        const base = h * R * dh + t0 * dh;
        const blk = pOff[s] + h * T * T;
        const dS = dP.subarray(blk, blk + T * T);
        if (this.causal) softmaxBackward(P.subarray(blk, blk + T * T), dS, T);
        else fullSoftmaxBackward(P.subarray(blk, blk + T * T), dS, T);
        backend.gemm(false, false, T, dh, T, alpha, dS, k.subarray(base, base + T * dh), 0, dq.subarray(base, base + T * dh));
        backend.gemm(true, false, T, dh, T, alpha, dS, q.subarray(base, base + T * dh), 0, dk.subarray(base, base + T * dh));
      }
    }
    if (H > 1) {
      this.merge(dq, dQ, R);
      this.merge(dk, dK, R);
      this.merge(dv, dV, R);
    }
  }

  /** The attention probabilities P (before dropout) of sequence s, head h, from the last forward: T×T. */
  probabilities(s: number, h: number): Float32Array {
    const T = this.offsets[s + 1] - this.offsets[s];
    const o = this.pOff[s] + h * T * T;
    return this.buf.f32('P', this.pOff[this.offsets.length - 1]).slice(o, o + T * T);
  }

  /** Token-major (R×d) → head-major (H×R×d_h) copy into a named buffer. */
  private split(name: string, X: Float32Array, R: number): Float32Array {
    const H = this.heads;
    const dh = this.dh;
    const d = this.dim;
    const out = this.buf.f32(name, R * d);
    for (let t = 0; t < R; t++) for (let h = 0; h < H; h++) out.set(X.subarray(t * d + h * dh, t * d + (h + 1) * dh), h * R * dh + t * dh);
    return out;
  }

  /** Head-major → token-major. */
  private merge(X: Float32Array, out: Float32Array, R: number): void {
    const H = this.heads;
    const dh = this.dh;
    const d = this.dim;
    for (let t = 0; t < R; t++) for (let h = 0; h < H; h++) out.set(X.subarray(h * R * dh + t * dh, h * R * dh + (t + 1) * dh), t * d + h * dh);
  }
}

/** In place: row i of the T×T scores becomes softmax over columns 0..i; columns > i become 0. */
export function causalSoftmax(S: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    let m = -Infinity;
    for (let j = 0; j <= i; j++) if (S[o + j] > m) m = S[o + j];
    let z = 0;
    for (let j = 0; j <= i; j++) {
      const e = Math.exp(S[o + j] - m);
      S[o + j] = e;
      z += e;
    }
    const inv = 1 / z;
    for (let j = 0; j <= i; j++) S[o + j] *= inv;
    for (let j = i + 1; j < T; j++) S[o + j] = 0;
  }
}

/** In place: dP (T×T) becomes dS = P ⊙ (dP − rowsum(dP ⊙ P)); masked entries (P = 0) become 0. */
export function softmaxBackward(P: Float32Array, dP: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    let dot = 0;
    for (let j = 0; j <= i; j++) dot += dP[o + j] * P[o + j];
    for (let j = 0; j <= i; j++) dP[o + j] = P[o + j] * (dP[o + j] - dot);
    for (let j = i + 1; j < T; j++) dP[o + j] = 0;
  }
}

/** In place: every row of the T×T scores becomes a softmax over all T columns (bidirectional attention). */
export function fullSoftmax(S: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    let m = -Infinity;
    for (let j = 0; j < T; j++) if (S[o + j] > m) m = S[o + j];
    let z = 0;
    for (let j = 0; j < T; j++) {
      const e = Math.exp(S[o + j] - m);
      S[o + j] = e;
      z += e;
    }
    const inv = 1 / z;
    for (let j = 0; j < T; j++) S[o + j] *= inv;
  }
}

/** In place: dP (T×T) becomes dS = P ⊙ (dP − rowsum(dP ⊙ P)) over full rows. */
export function fullSoftmaxBackward(P: Float32Array, dP: Float32Array, T: number): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    let dot = 0;
    for (let j = 0; j < T; j++) dot += dP[o + j] * P[o + j];
    for (let j = 0; j < T; j++) dP[o + j] = P[o + j] * (dP[o + j] - dot);
  }
}
