/**
 * Plain float64 reference implementations of every Backend method, written straight from the doc comments
 * in src/compute/backend.ts (no blocking, no tricks), for checking the fast backends against.
 * Each returns fresh Float64Arrays instead of writing in place, plus error bounds where rounding depends on
 * the data (GEMM-like sums).
 */
import type { ContrastiveArgs } from '../../src/compute/backend.ts';

type Arr = ArrayLike<number>;

/**
 * C = alpha·op(A)·op(B) + beta·C. `bound` is Σ|alpha·a·b| + |beta·c| per entry, the scale of float32
 * rounding error for that entry.
 */
export function gemm64(
  transA: boolean,
  transB: boolean,
  M: number,
  N: number,
  K: number,
  alpha: number,
  a: Arr,
  b: Arr,
  beta: number,
  c: Arr,
): { out: Float64Array; bound: Float64Array } {
  const out = new Float64Array(M * N);
  const bound = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      let sa = 0;
      for (let k = 0; k < K; k++) {
        const av = transA ? a[k * M + i] : a[i * K + k];
        const bv = transB ? b[j * K + k] : b[k * N + j];
        s += av * bv;
        sa += Math.abs(av * bv);
      }
      const cv = beta === 0 ? 0 : beta * c[i * N + j];
      out[i * N + j] = alpha * s + cv;
      bound[i * N + j] = Math.abs(alpha) * sa + Math.abs(cv);
    }
  }
  return { out, bound };
}

export function linearForward64(x: Arr, w: Arr, bias: Arr, rows: number, inDim: number, outDim: number, relu: boolean) {
  const { out, bound } = gemm64(false, false, rows, outDim, inDim, 1, x, w, 0, []);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < outDim; j++) {
      const v = out[i * outDim + j] + bias[j];
      out[i * outDim + j] = relu ? Math.max(0, v) : v;
      bound[i * outDim + j] += Math.abs(bias[j]);
    }
  }
  return { y: out, bound };
}

/** dyMasked, dw (accumulated onto dw0), dbias (accumulated onto dbias0), dx. */
export function linearBackward64(
  x: Arr,
  w: Arr,
  y: Arr,
  dy: Arr,
  dw0: Arr,
  dbias0: Arr,
  rows: number,
  inDim: number,
  outDim: number,
  relu: boolean,
) {
  const g = new Float64Array(rows * outDim);
  for (let i = 0; i < g.length; i++) g[i] = relu && !(y[i] > 0) ? 0 : dy[i];
  const dw = gemm64(true, false, inDim, outDim, rows, 1, x, g, 1, dw0);
  const dx = gemm64(false, true, rows, inDim, outDim, 1, g, w, 0, []);
  const dbias = new Float64Array(outDim);
  const dbiasBound = new Float64Array(outDim);
  for (let j = 0; j < outDim; j++) {
    let s = dbias0[j];
    let sa = Math.abs(dbias0[j]);
    for (let i = 0; i < rows; i++) {
      s += g[i * outDim + j];
      sa += Math.abs(g[i * outDim + j]);
    }
    dbias[j] = s;
    dbiasBound[j] = sa;
  }
  return { dy: g, dw: dw.out, dwBound: dw.bound, dx: dx.out, dxBound: dx.bound, dbias, dbiasBound };
}

export function l2normForward64(x: Arr, rows: number, dim: number) {
  const y = new Float64Array(rows * dim);
  const norms = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[i * dim + j] ** 2;
    const n = Math.max(Math.sqrt(s), 1e-12);
    norms[i] = n;
    for (let j = 0; j < dim; j++) y[i * dim + j] = x[i * dim + j] / n;
  }
  return { y, norms };
}

export function l2normBackward64(y: Arr, norms: Arr, dy: Arr, rows: number, dim: number) {
  const dx = new Float64Array(rows * dim);
  for (let i = 0; i < rows; i++) {
    let yg = 0;
    for (let j = 0; j < dim; j++) yg += y[i * dim + j] * dy[i * dim + j];
    for (let j = 0; j < dim; j++) dx[i * dim + j] = (dy[i * dim + j] - y[i * dim + j] * yg) / norms[i];
  }
  return dx;
}

export function adam64(p: Arr, g: Arr, m: Arr, v: Arr, lr: number, b1: number, b2: number, eps: number, step: number) {
  const n = p.length;
  const P = new Float64Array(n);
  const Mo = new Float64Array(n);
  const V = new Float64Array(n);
  const bc1 = 1 - b1 ** step;
  const bc2 = 1 - b2 ** step;
  for (let i = 0; i < n; i++) {
    Mo[i] = b1 * m[i] + (1 - b1) * g[i];
    V[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    P[i] = p[i] - (lr * (Mo[i] / bc1)) / (Math.sqrt(V[i] / bc2) + eps);
  }
  return { p: P, m: Mo, v: V };
}

export function sparseUpdate64(
  kind: 'adagrad' | 'lazyadam',
  table: Arr,
  state1: Arr,
  state2: Arr | null,
  ids: Arr,
  grads: Arr,
  n: number,
  dim: number,
  lr: number,
  b1: number,
  b2: number,
  eps: number,
  step: number,
) {
  const T = Float64Array.from(table);
  const S1 = Float64Array.from(state1);
  const S2 = state2 ? Float64Array.from(state2) : null;
  for (let r = 0; r < n; r++) {
    const id = ids[r];
    if (kind === 'adagrad') {
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += grads[r * dim + j] ** 2;
      S1[id] += ss / dim;
      for (let j = 0; j < dim; j++) T[id * dim + j] -= (lr * grads[r * dim + j]) / (Math.sqrt(S1[id]) + eps);
    } else {
      const bc1 = 1 - b1 ** step;
      const bc2 = 1 - b2 ** step;
      for (let j = 0; j < dim; j++) {
        const e = id * dim + j;
        const g = grads[r * dim + j];
        S1[e] = b1 * S1[e] + (1 - b1) * g;
        S2![e] = b2 * S2![e] + (1 - b2) * g * g;
        T[e] -= (lr * (S1[e] / bc1)) / (Math.sqrt(S2![e] / bc2) + eps);
      }
    }
  }
  return { table: T, state1: S1, state2: S2 };
}

/** Which (i, j) logits are removed from the softmax (accidental hits and false negatives). */
export function contrastiveMask64(a: ContrastiveArgs, s: (i: number, j: number) => number): (i: number, j: number) => boolean {
  const abs = a.fnMask?.absThreshold ?? Infinity;
  const margin = a.fnMask?.margin ?? Infinity;
  return (i, j) => {
    const p = a.pos[i];
    if (j === p) return false;
    for (const m of a.masks) if (m.rowKey[i] >= 0 && m.rowKey[i] === m.colKey[j]) return true;
    const sij = s(i, j);
    if (sij > abs) return true;
    // margin = +Infinity means "off" (the doc's "may be +Infinity to disable it").
    if (margin !== Infinity && sij > s(i, p) - margin) return true;
    return false;
  };
}

/** Loss only, for finite differences: q and c may be perturbed float64 copies. */
export function contrastiveLoss64(a: ContrastiveArgs, q: Arr, c: Arr): number {
  return contrastive64(a, q, c).loss;
}

export function contrastive64(a: ContrastiveArgs, q: Arr = a.q, c: Arr = a.c) {
  const { B, N, d, scale } = a;
  const S = new Float64Array(B * N);
  for (let i = 0; i < B; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q[i * d + k] * c[j * d + k];
      S[i * N + j] = s;
    }
  const masked = contrastiveMask64(a, (i, j) => S[i * N + j]);
  let sumW = 0;
  for (let i = 0; i < B; i++) sumW += a.rowWeight ? a.rowWeight[i] : 1;
  const G = new Float64Array(B * N);
  const maskedCount = new Int32Array(B);
  let loss = 0;
  const z = new Float64Array(N);
  for (let i = 0; i < B; i++) {
    let mx = -Infinity;
    for (let j = 0; j < N; j++) {
      const m = masked(i, j);
      if (m) maskedCount[i]++;
      z[j] = m ? -Infinity : scale * S[i * N + j] + (a.colBias ? a.colBias[j] : 0);
      mx = Math.max(mx, z[j]);
    }
    let sum = 0;
    for (let j = 0; j < N; j++) sum += Math.exp(z[j] - mx);
    const lse = mx + Math.log(sum);
    const w = a.rowWeight ? a.rowWeight[i] : 1;
    loss += w * (lse - z[a.pos[i]]);
    for (let j = 0; j < N; j++) G[i * N + j] = (w * (Math.exp(z[j] - lse) - (j === a.pos[i] ? 1 : 0))) / sumW;
  }
  const dq = new Float64Array(B * d);
  const dc = new Float64Array(N * d);
  for (let i = 0; i < B; i++)
    for (let j = 0; j < N; j++) {
      const g = scale * G[i * N + j];
      if (g === 0) continue;
      for (let k = 0; k < d; k++) {
        dq[i * d + k] += g * c[j * d + k];
        dc[j * d + k] += g * q[i * d + k];
      }
    }
  return { loss: loss / sumW, dq, dc, maskedCount };
}

/** Best-first (value desc, index asc) top-k per row, skipping −Infinity; padding −1 / −Infinity. */
export function topkRows64(scores: Arr, rows: number, cols: number, k: number) {
  const idx = new Int32Array(rows * k).fill(-1);
  const val = new Float64Array(rows * k).fill(-Infinity);
  for (let r = 0; r < rows; r++) {
    const js: number[] = [];
    for (let j = 0; j < cols; j++) if (scores[r * cols + j] > -Infinity) js.push(j);
    js.sort((x, y) => scores[r * cols + y] - scores[r * cols + x] || x - y);
    for (let t = 0; t < Math.min(k, js.length); t++) {
      idx[r * k + t] = js[t];
      val[r * k + t] = scores[r * cols + js[t]];
    }
  }
  return { idx, val };
}
