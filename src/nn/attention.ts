/**
 * Causal multi-head self-attention over packed sequences (Vaswani et al. 2017; causal as in SASRec, Kang &
 * McAuley 2018). For each sequence and head h (width d_h = d/H), with Q, K, V the sequence's T×d_h slices:
 *   S = Q Kᵀ / √d_h,   S_ij = −∞ for j > i (a token never sees a later one),
 *   P = softmax_rows(S),   P̃ = dropout(P),   O = P̃ V.
 * Backward:  dP̃ = dO Vᵀ,  dV = P̃ᵀ dO,  dP = dropoutᵀ(dP̃),  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
 *            dQ = dS K / √d_h,  dK = dSᵀ Q / √d_h.
 * Sequences are attended separately, so padding never exists (see packed.ts). The whole layer is one backend
 * call each way (Backend.attentionForward/Backward): the native kernel runs every (sequence, head) block —
 * scores GEMM, mask, softmax, dropout, product with V — in one pass while the block is in cache, in parallel
 * over blocks; the portable backend runs the same steps in loops and GEMM calls.
 * With causal = false the mask is dropped (a bidirectional text encoder over packed sequences).
 * This module is only the attention core; the Q/K/V/output projections are dense layers of the block.
 */
import type { AttentionArgs, Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';
import { Buffers } from './buffers.ts';

export class CausalAttention {
  readonly dh: number;
  private readonly buf = new Buffers();
  /** The last forward's arguments (Q, K, V by reference), reused by backward. */
  private args: AttentionArgs | null = null;

  constructor(
    readonly dim: number,
    readonly heads: number,
    readonly dropout: number,
    /** false: every token attends to every token of its own sequence (a text encoder; packing is the only mask). */
    readonly causal = true,
  ) {
    if (dim % heads !== 0) throw new RangeError(`attention: dim ${dim} is not a multiple of heads ${heads}`);
    if (!(dropout >= 0 && dropout < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${dropout}`);
    this.dh = dim / heads;
  }

  /** O (tokens×d, token-major) from Q, K, V (tokens×d); keeps what backward needs (Q, K, V by reference). */
  forward(backend: Backend, offsets: Int32Array, Q: Float32Array, K: Float32Array, V: Float32Array, O: Float32Array, train: boolean, rng: Rng): void {
    const H = this.heads;
    const n = offsets.length - 1;
    // P blocks: sequence s, head h at pOff[s] + h·T².
    const pOff = this.buf.i32('pOff', n + 1);
    let tot = 0;
    for (let s = 0; s < n; s++) {
      pOff[s] = tot;
      const T = offsets[s + 1] - offsets[s];
      tot += H * T * T;
    }
    pOff[n] = tot;
    const drop = train && this.dropout > 0;
    const a: AttentionArgs = {
      Q,
      K,
      V,
      offsets,
      pOff,
      nseq: n,
      heads: H,
      dh: this.dh,
      causal: this.causal,
      P: this.buf.f32('P', tot),
      dropout: drop ? { p: this.dropout, seed: (rng.u32() | 1) >>> 0, mask: this.buf.u8('mask', tot), Pd: this.buf.f32('Pd', tot) } : null,
    };
    this.args = a;
    backend.attentionForward(a, O);
  }

  /** dQ, dK, dV (tokens×d, overwritten) from dO (tokens×d) of the last forward. dO is not modified. */
  backward(backend: Backend, dO: Float32Array, dQ: Float32Array, dK: Float32Array, dV: Float32Array): void {
    if (!this.args) throw new Error('attention: backward before forward');
    backend.attentionBackward(this.args, dO, dQ, dK, dV);
  }

  /** The attention probabilities P (before dropout) of sequence s, head h, from the last forward: T×T. */
  probabilities(s: number, h: number): Float32Array {
    const a = this.args!;
    const T = a.offsets[s + 1] - a.offsets[s];
    const o = a.pOff[s] + h * T * T;
    return a.P.slice(o, o + T * T);
  }
}
