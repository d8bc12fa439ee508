/**
 * The portable backend's transformer-block kernels (layer norm, dropout, attention over packed sequences):
 * plain loops, with the attention products on the backend's GEMM. Semantics in backend.ts; the native addon
 * computes the same (native/seq_layers.cc).
 */
import type { AttentionArgs, Backend } from './backend.ts';

export function layerNormForwardJs(x: Float32Array, g: Float32Array, b: Float32Array, y: Float32Array, xh: Float32Array, rstd: Float32Array, rows: number, d: number, eps: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let sum = 0;
    for (let k = 0; k < d; k++) sum += x[o + k];
    const mu = sum / d;
    let sq = 0;
    for (let k = 0; k < d; k++) sq += (x[o + k] - mu) * (x[o + k] - mu);
    const rs = 1 / Math.sqrt(sq / d + eps);
    rstd[r] = rs;
    for (let k = 0; k < d; k++) {
      const h = (x[o + k] - mu) * rs;
      xh[o + k] = h;
      y[o + k] = g[k] * h + b[k];
    }
  }
}

export function layerNormBackwardJs(dy: Float32Array, g: Float32Array, xh: Float32Array, rstd: Float32Array, dx: Float32Array, dg: Float32Array, db: Float32Array, rows: number, d: number, accumulate: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    let mg = 0;
    let mgx = 0;
    for (let k = 0; k < d; k++) {
      const dyk = dy[o + k];
      const h = xh[o + k];
      dg[k] += dyk * h;
      db[k] += dyk;
      const gk = dyk * g[k];
      mg += gk;
      mgx += gk * h;
    }
    mg /= d;
    mgx /= d;
    const rs = rstd[r];
    if (accumulate) for (let k = 0; k < d; k++) dx[o + k] += (dy[o + k] * g[k] - mg - xh[o + k] * mgx) * rs;
    else for (let k = 0; k < d; k++) dx[o + k] = (dy[o + k] * g[k] - mg - xh[o + k] * mgx) * rs;
  }
}

/** The keep mask of dropoutForward (backend.ts): a local xorshift32 stream, two 16-bit uniforms per step. */
export function dropoutMaskJs(mask: Uint8Array, n: number, p: number, seed: number): void {
  const thr = Math.round(p * 65536);
  let z = seed | 0;
  for (let i = 0; i < n; i += 2) {
    z ^= z << 13;
    z ^= z >>> 17;
    z ^= z << 5;
    mask[i] = (z & 0xffff) >= thr ? 1 : 0;
    if (i + 1 < n) mask[i + 1] = z >>> 16 >= thr ? 1 : 0;
  }
}

export function dropoutForwardJs(x: Float32Array, mask: Uint8Array, n: number, p: number, seed: number): void {
  dropoutMaskJs(mask, n, p, seed);
  applyMask(x, mask, x, n, 1 / (1 - p));
}

export function dropoutBackwardJs(dy: Float32Array, mask: Uint8Array, out: Float32Array, n: number, p: number): void {
  applyMask(dy, mask, out, n, 1 / (1 - p));
}

function applyMask(x: Float32Array, m: Uint8Array, out: Float32Array, n: number, s: number): void {
  for (let i = 0; i < n; i++) out[i] = m[i] ? x[i] * s : 0;
}

/** Grow-only scratch (compute/ sits below nn/, so not nn/buffers.ts). */
class Scratch {
  private readonly f = new Map<string, Float32Array>();
  get(name: string, n: number): Float32Array {
    let a = this.f.get(name);
    if (!a || a.length < n) this.f.set(name, (a = new Float32Array(Math.max(n, Math.ceil((a?.length ?? 0) * 1.5)))));
    return a.subarray(0, n);
  }
}

/** The portable attention: per (sequence, head) GEMMs on head-major copies (H > 1), softmax in loops. */
export function createJsAttention(gemm: Backend['gemm']): Pick<Backend, 'attentionForward' | 'attentionBackward'> {
  const buf = new Scratch();

  /** Token-major (R×H·dh) → head-major (H×R×dh) copy; the array itself when H = 1. */
  const split = (name: string, X: Float32Array, R: number, H: number, dh: number): Float32Array => {
    if (H === 1) return X;
    const d = H * dh;
    const out = buf.get(name, R * d);
    for (let t = 0; t < R; t++) for (let h = 0; h < H; h++) out.set(X.subarray(t * d + h * dh, t * d + (h + 1) * dh), h * R * dh + t * dh);
    return out;
  };
  const merge = (X: Float32Array, out: Float32Array, R: number, H: number, dh: number): void => {
    const d = H * dh;
    for (let t = 0; t < R; t++) for (let h = 0; h < H; h++) out.set(X.subarray(h * R * dh + t * dh, h * R * dh + (t + 1) * dh), t * d + h * dh);
  };

  return {
    attentionForward(a: AttentionArgs, O: Float32Array): void {
      const { offsets, pOff, nseq: n, heads: H, dh, causal, P } = a;
      const R = offsets[n];
      const tot = pOff[n];
      const q = split('q', a.Q, R, H, dh);
      const k = split('k', a.K, R, H, dh);
      const v = split('v', a.V, R, H, dh);
      const alpha = 1 / Math.sqrt(dh);
      for (let s = 0; s < n; s++) {
        const t0 = offsets[s];
        const T = offsets[s + 1] - t0;
        for (let h = 0; h < H; h++) {
          const base = h * R * dh + t0 * dh;
          const S = P.subarray(pOff[s] + h * T * T, pOff[s] + (h + 1) * T * T);
          gemm(false, true, T, T, dh, alpha, q.subarray(base, base + T * dh), k.subarray(base, base + T * dh), 0, S);
          softmaxRows(S, T, causal);
        }
      }
      let Pv = P;
      if (a.dropout) {
        const { mask, Pd, p, seed } = a.dropout;
        dropoutMaskJs(mask, tot, p, seed);
        applyMask(P, mask, Pd, tot, 1 / (1 - p));
        Pv = Pd;
      }
      const o = H === 1 ? O : buf.get('o', R * H * dh);
      for (let s = 0; s < n; s++) {
        const t0 = offsets[s];
        const T = offsets[s + 1] - t0;
        for (let h = 0; h < H; h++) {
          const base = h * R * dh + t0 * dh;
          const pd = Pv.subarray(pOff[s] + h * T * T, pOff[s] + (h + 1) * T * T);
          gemm(false, false, T, dh, T, 1, pd, v.subarray(base, base + T * dh), 0, o.subarray(base, base + T * dh));
        }
      }
      if (H > 1) merge(o, O, R, H, dh);
    },

    attentionBackward(a: AttentionArgs, dO: Float32Array, dQ: Float32Array, dK: Float32Array, dV: Float32Array): void {
      const { offsets, pOff, nseq: n, heads: H, dh, causal, P } = a;
      const R = offsets[n];
      const tot = pOff[n];
      const Pv = a.dropout ? a.dropout.Pd : P;
      const dP = buf.get('dP', tot);
      // Q, K, V are split again (the forward's head-major copies may have been reused by another call since).
      const q = split('q', a.Q, R, H, dh);
      const k = split('k', a.K, R, H, dh);
      const v = split('v', a.V, R, H, dh);
      const dO_ = split('dO', dO, R, H, dh);
      const dq = H === 1 ? dQ : buf.get('dq', R * H * dh);
      const dk = H === 1 ? dK : buf.get('dk', R * H * dh);
      const dv = H === 1 ? dV : buf.get('dv', R * H * dh);
      for (let s = 0; s < n; s++) {
        const t0 = offsets[s];
        const T = offsets[s + 1] - t0;
        for (let h = 0; h < H; h++) {
          const base = h * R * dh + t0 * dh;
          const blk = pOff[s] + h * T * T;
          const dOs = dO_.subarray(base, base + T * dh);
          gemm(false, true, T, T, dh, 1, dOs, v.subarray(base, base + T * dh), 0, dP.subarray(blk, blk + T * T));
          gemm(true, false, T, dh, T, 1, Pv.subarray(blk, blk + T * T), dOs, 0, dv.subarray(base, base + T * dh));
        }
      }
      if (a.dropout) applyMask(dP, a.dropout.mask, dP, tot, 1 / (1 - a.dropout.p));
      const alpha = 1 / Math.sqrt(dh);
      for (let s = 0; s < n; s++) {
        const t0 = offsets[s];
        const T = offsets[s + 1] - t0;
        for (let h = 0; h < H; h++) {
          const base = h * R * dh + t0 * dh;
          const blk = pOff[s] + h * T * T;
          const dS = dP.subarray(blk, blk + T * T);
          softmaxRowsBackward(P.subarray(blk, blk + T * T), dS, T, causal);
          gemm(false, false, T, dh, T, alpha, dS, k.subarray(base, base + T * dh), 0, dq.subarray(base, base + T * dh));
          gemm(true, false, T, dh, T, alpha, dS, q.subarray(base, base + T * dh), 0, dk.subarray(base, base + T * dh));
        }
      }
      if (H > 1) {
        merge(dq, dQ, R, H, dh);
        merge(dk, dK, R, H, dh);
        merge(dv, dV, R, H, dh);
      }
    },
  };
}

/** In place: row i of the T×T scores becomes a softmax over columns 0..i (causal; later columns 0) or all T. */
export function softmaxRows(S: Float32Array, T: number, causal: boolean): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    const n = causal ? i + 1 : T;
    let m = -Infinity;
    for (let j = 0; j < n; j++) if (S[o + j] > m) m = S[o + j];
    let z = 0;
    for (let j = 0; j < n; j++) {
      const e = Math.exp(S[o + j] - m);
      S[o + j] = e;
      z += e;
    }
    const inv = 1 / z;
    for (let j = 0; j < n; j++) S[o + j] *= inv;
    for (let j = n; j < T; j++) S[o + j] = 0;
  }
}

/** In place: dP (T×T) becomes dS = P ⊙ (dP − rowsum(dP ⊙ P)) over each row's unmasked columns; the rest 0. */
export function softmaxRowsBackward(P: Float32Array, dP: Float32Array, T: number, causal: boolean): void {
  for (let i = 0; i < T; i++) {
    const o = i * T;
    const n = causal ? i + 1 : T;
    let dot = 0;
    for (let j = 0; j < n; j++) dot += dP[o + j] * P[o + j];
    for (let j = 0; j < n; j++) dP[o + j] = P[o + j] * (dP[o + j] - dot);
    for (let j = n; j < T; j++) dP[o + j] = 0;
  }
}
