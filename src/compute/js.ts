/**
 * The portable backend: plain TypeScript loops for the light work, TF.js on its WASM backend (XNNPACK)
 * for large matrix products. Used where the native addon could not be built; slower, same results
 * (within float32 rounding).
 */
import type { Backend, ContrastiveArgs, FullSoftmaxArgs } from './backend.ts';
import { roundBf16, roundBf16Array } from './bf16.ts';
import { historyPoolBackwardJs, historyPoolForwardJs } from './js-history.ts';
import { mergeRowsJs, pairwiseLossJs } from './js-rows.ts';
import { createJsAttention, dropoutBackwardJs, dropoutForwardJs, layerNormBackwardJs, layerNormForwardJs } from './js-seq.ts';
import { tfjsMatmul } from './tfjs-matmul.ts';

/** Below this many multiply-adds a plain loop beats the copy in and out of WASM memory. */
const WASM_MIN_WORK = 1 << 18;

const gemmLoops: Backend['gemm'] = (transA, transB, M, N, K, alpha, a, b, beta, c) => {
  if (beta === 0) c.fill(0, 0, M * N);
  else if (beta !== 1) for (let i = 0; i < M * N; i++) c[i] *= beta;
  for (let i = 0; i < M; i++) {
    const ci = i * N;
    for (let k = 0; k < K; k++) {
      const av = alpha * (transA ? a[k * M + i] : a[i * K + k]);
      if (av === 0) continue;
      if (transB) {
        for (let j = 0; j < N; j++) c[ci + j] += av * b[j * K + k];
      } else {
        const bk = k * N;
        for (let j = 0; j < N; j++) c[ci + j] += av * b[bk + j];
      }
    }
  }
};

export async function createJsBackend(options: { wasm?: boolean } = {}): Promise<Backend> {
  const matmul = options.wasm === false ? null : await tfjsMatmul();

  const gemm: Backend['gemm'] = (transA, transB, M, N, K, alpha, a, b, beta, c) => {
    if (matmul && M * N * K >= WASM_MIN_WORK) matmul(transA, transB, M, N, K, alpha, a, b, beta, c);
    else gemmLoops(transA, transB, M, N, K, alpha, a, b, beta, c);
  };

  const backend: Backend = {
    name: matmul ? 'js+wasm' : 'js',
    gemm,

    linearForward(x, w, bias, y, rows, inDim, outDim, relu) {
      for (let r = 0; r < rows; r++) y.set(bias.subarray(0, outDim), r * outDim);
      gemm(false, false, rows, outDim, inDim, 1, x, w, 1, y);
      if (relu) for (let i = 0; i < rows * outDim; i++) if (y[i] < 0) y[i] = 0;
    },

    linearBackward(x, w, y, dy, dx, dw, dbias, rows, inDim, outDim, relu) {
      const n = rows * outDim;
      if (relu) for (let i = 0; i < n; i++) if (y[i] <= 0) dy[i] = 0;
      for (let r = 0; r < rows; r++) {
        const o = r * outDim;
        for (let j = 0; j < outDim; j++) dbias[j] += dy[o + j];
      }
      gemm(true, false, inDim, outDim, rows, 1, x, dy, 1, dw);
      if (dx) gemm(false, true, rows, inDim, outDim, 1, dy, w, 0, dx);
    },

    l2normForward(x, y, norms, rows, dim) {
      for (let r = 0; r < rows; r++) {
        const o = r * dim;
        let s = 0;
        for (let j = 0; j < dim; j++) s += x[o + j] * x[o + j];
        const n = Math.max(Math.sqrt(s), 1e-12);
        norms[r] = n;
        const inv = 1 / n;
        for (let j = 0; j < dim; j++) y[o + j] = x[o + j] * inv;
      }
    },

    l2normBackward(y, norms, dy, dx, rows, dim) {
      for (let r = 0; r < rows; r++) {
        const o = r * dim;
        let dot = 0;
        for (let j = 0; j < dim; j++) dot += y[o + j] * dy[o + j];
        const inv = 1 / norms[r];
        for (let j = 0; j < dim; j++) dx[o + j] = (dy[o + j] - y[o + j] * dot) * inv;
      }
    },

    gatherRows(table, ids, out, dim) {
      for (let r = 0; r < ids.length; r++) out.set(table.subarray(ids[r] * dim, ids[r] * dim + dim), r * dim);
    },

    adam(p, g, m, v, lr, b1, b2, eps, step) {
      const c1 = 1 - Math.pow(b1, step);
      const c2 = 1 - Math.pow(b2, step);
      const a = (lr * Math.sqrt(c2)) / c1;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= (a * m[i]) / (Math.sqrt(v[i]) + eps * Math.sqrt(c2));
      }
    },

    sparseUpdate(kind, table, state1, state2, ids, grads, n, dim, lr, b1, b2, eps, step) {
      if (kind === 'adagrad') {
        for (let r = 0; r < n; r++) {
          const id = ids[r];
          const go = r * dim;
          let sq = 0;
          for (let j = 0; j < dim; j++) sq += grads[go + j] * grads[go + j];
          state1[id] += sq / dim;
          const f = lr / (Math.sqrt(state1[id]) + eps);
          const to = id * dim;
          for (let j = 0; j < dim; j++) table[to + j] -= f * grads[go + j];
        }
        return;
      }
      if (!state2) throw new Error('lazyadam needs a second state table');
      const c1 = 1 - Math.pow(b1, step);
      const c2 = 1 - Math.pow(b2, step);
      const a = (lr * Math.sqrt(c2)) / c1;
      for (let r = 0; r < n; r++) {
        const to = ids[r] * dim;
        const go = r * dim;
        for (let j = 0; j < dim; j++) {
          const gi = grads[go + j];
          const t = to + j;
          state1[t] = b1 * state1[t] + (1 - b1) * gi;
          state2[t] = b2 * state2[t] + (1 - b2) * gi * gi;
          table[t] -= (a * state1[t]) / (Math.sqrt(state2[t]) + eps * Math.sqrt(c2));
        }
      }
    },

    contrastive: (args) => contrastiveJs(args, gemm),

    fullSoftmax: (args) => fullSoftmaxJs(args, gemm),

    mergeRows: mergeRowsJs,
    historyPoolForward: historyPoolForwardJs,
    historyPoolBackward: historyPoolBackwardJs,
    pairwiseLoss: pairwiseLossJs,
    layerNormForward: layerNormForwardJs,
    layerNormBackward: layerNormBackwardJs,
    dropoutForward: dropoutForwardJs,
    dropoutBackward: dropoutBackwardJs,
    ...createJsAttention(gemm),

    topkRows(scores, rows, cols, k, outIdx, outVal) {
      const heapIdx = new Int32Array(k);
      const heapVal = new Float32Array(k);
      for (let r = 0; r < rows; r++) {
        const base = r * cols;
        const size = topkOne(scores, base, cols, k, heapIdx, heapVal);
        // The heap holds the best `size` as a min-heap; pop into best-first order.
        let n = size;
        for (let s = size - 1; s >= 0; s--) {
          outIdx[r * k + s] = heapIdx[0];
          outVal[r * k + s] = heapVal[0];
          n--;
          heapIdx[0] = heapIdx[n];
          heapVal[0] = heapVal[n];
          siftDown(heapIdx, heapVal, n, 0);
        }
        for (let s = size; s < k; s++) {
          outIdx[r * k + s] = -1;
          outVal[r * k + s] = -Infinity;
        }
      }
    },
  };
  return backend;
}

/** "a is worse than b": lower score, or equal score and higher index (ties go to the lower index). */
function worse(va: number, ia: number, vb: number, ib: number): boolean {
  return va < vb || (va === vb && ia > ib);
}

function siftDown(idx: Int32Array, val: Float32Array, n: number, i: number): void {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < n && worse(val[l], idx[l], val[m], idx[m])) m = l;
    if (r < n && worse(val[r], idx[r], val[m], idx[m])) m = r;
    if (m === i) return;
    const ti = idx[i];
    idx[i] = idx[m];
    idx[m] = ti;
    const tv = val[i];
    val[i] = val[m];
    val[m] = tv;
    i = m;
  }
}

/** Min-heap of the best k of one row (worst at the root); returns how many it holds. */
function topkOne(s: Float32Array, base: number, cols: number, k: number, idx: Int32Array, val: Float32Array): number {
  let n = 0;
  for (let j = 0; j < cols; j++) {
    const v = s[base + j];
    if (v === -Infinity || Number.isNaN(v)) continue;
    if (n < k) {
      // sift up
      let i = n++;
      idx[i] = j;
      val[i] = v;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(val[i], idx[i], val[p], idx[p])) break;
        const ti = idx[i];
        idx[i] = idx[p];
        idx[p] = ti;
        const tv = val[i];
        val[i] = val[p];
        val[p] = tv;
        i = p;
      }
    } else if (worse(val[0], idx[0], v, j)) {
      idx[0] = j;
      val[0] = v;
      siftDown(idx, val, n, 0);
    }
  }
  return n;
}

/** Row-tiled softmax cross-entropy with masks, bias and gradients; semantics in backend.ts. */
function contrastiveJs(a: ContrastiveArgs, gemm: Backend['gemm']): number {
  const { q, c, B, N, d, pos, scale, colBias, masks, dq, dc } = a;
  const w = a.rowWeight ?? null;
  const absT = a.fnMask?.absThreshold ?? Infinity;
  const margin = a.fnMask?.margin ?? Infinity;
  const maskedCount = a.maskedCount ?? null;
  let wsum = 0;
  for (let i = 0; i < B; i++) wsum += w ? w[i] : 1;
  if (dc) dc.fill(0, 0, N * d);
  const tile = Math.max(1, Math.min(B, Math.floor((1 << 20) / Math.max(N, 1))));
  const s = new Float32Array(tile * N);
  let loss = 0;
  for (let r0 = 0; r0 < B; r0 += tile) {
    const rows = Math.min(tile, B - r0);
    const qt = q.subarray(r0 * d, (r0 + rows) * d);
    gemm(false, true, rows, N, d, 1, qt, c, 0, s);
    for (let t = 0; t < rows; t++) {
      const i = r0 + t;
      const o = t * N;
      const p = pos[i];
      const sPos = s[o + p];
      let masked = 0;
      let max = -Infinity;
      for (let j = 0; j < N; j++) {
        const raw = s[o + j];
        let off = false;
        if (j !== p) {
          for (const m of masks) if (m.rowKey[i] >= 0 && m.rowKey[i] === m.colKey[j]) off = true;
          if (raw > absT || (margin !== Infinity && raw > sPos - margin)) off = true;
        }
        if (off) {
          masked++;
          s[o + j] = -Infinity;
        } else {
          const z = scale * raw + (colBias ? colBias[j] : 0);
          s[o + j] = z;
          if (z > max) max = z;
        }
      }
      if (maskedCount) maskedCount[i] = masked;
      let sum = 0;
      for (let j = 0; j < N; j++) sum += Math.exp(s[o + j] - max);
      const lse = max + Math.log(sum);
      const wi = (w ? w[i] : 1) / wsum;
      loss += wi * (lse - s[o + p]);
      for (let j = 0; j < N; j++) s[o + j] = wi * Math.exp(s[o + j] - lse) * scale;
      s[o + p] -= wi * scale;
    }
    if (dq) gemm(false, false, rows, d, N, 1, s, c, 0, dq.subarray(r0 * d, (r0 + rows) * d));
    if (dc) gemm(true, false, N, d, rows, 1, s, qt, 1, dc);
  }
  return loss;
}

/**
 * Full-catalogue softmax, tiled over rows and items: pass 1 keeps each row's running max and sum-exp across
 * item tiles (online log-sum-exp); pass 2 recomputes every tile's logits, turns them into gradient
 * coefficients and multiplies them out. Only one rows×items tile exists at a time. Semantics in backend.ts.
 */
function fullSoftmaxJs(a: FullSoftmaxArgs, gemm: Backend['gemm']): number {
  const { R, N, d, target, scale, dq, de } = a;
  // bf16: the products use rounded q, e and coefficients, as the native kernel does (backend.ts).
  const bf16 = a.precision === 'bf16';
  const q = bf16 ? roundBf16Array(a.q.subarray(0, R * d)) : a.q;
  const e = bf16 ? roundBf16Array(a.e.subarray(0, N * d)) : a.e;
  const w = a.rowWeight ?? null;
  const rowLoss = a.rowLoss ?? null;
  for (let i = 0; i < R; i++) {
    if (!(target[i] >= 0 && target[i] < N)) throw new Error(`fullSoftmax: target[${i}] = ${target[i]} is outside [0, N=${N})`);
  }
  let wsum = 0;
  for (let i = 0; i < R; i++) wsum += w ? w[i] : 1;
  if (dq) dq.fill(0, 0, R * d);
  if (R === 0 || N === 0 || wsum === 0) {
    if (rowLoss) rowLoss.fill(0, 0, R);
    return 0;
  }
  const TR = 256;
  const TN = Math.max(16, Math.min(N, Math.floor((1 << 19) / Math.min(TR, R))));
  const s = new Float32Array(Math.min(TR, R) * TN);
  const lse = new Float64Array(R);
  let loss = 0;
  for (let r0 = 0; r0 < R; r0 += TR) {
    const rows = Math.min(TR, R - r0);
    const qt = q.subarray(r0 * d, (r0 + rows) * d);
    const m = new Float64Array(rows).fill(-Infinity);
    const sum = new Float64Array(rows);
    for (let j0 = 0; j0 < N; j0 += TN) {
      const nt = Math.min(TN, N - j0);
      gemm(false, true, rows, nt, d, scale, qt, e.subarray(j0 * d, (j0 + nt) * d), 0, s);
      for (let t = 0; t < rows; t++) {
        const o = t * nt;
        let mt = -Infinity;
        for (let j = 0; j < nt; j++) if (s[o + j] > mt) mt = s[o + j];
        const mNew = Math.max(m[t], mt);
        let acc = 0;
        for (let j = 0; j < nt; j++) acc += Math.exp(s[o + j] - mNew);
        sum[t] = (m[t] === -Infinity ? 0 : sum[t] * Math.exp(m[t] - mNew)) + acc;
        m[t] = mNew;
      }
    }
    for (let t = 0; t < rows; t++) {
      const i = r0 + t;
      lse[i] = m[t] + Math.log(sum[t]);
      let zt = 0;
      for (let k = 0; k < d; k++) zt += q[i * d + k] * e[target[i] * d + k];
      const li = lse[i] - scale * zt;
      if (rowLoss) rowLoss[i] = li;
      loss += (w ? w[i] : 1) * li;
    }
    if (!dq && !de) continue;
    for (let j0 = 0; j0 < N; j0 += TN) {
      const nt = Math.min(TN, N - j0);
      const et = e.subarray(j0 * d, (j0 + nt) * d);
      gemm(false, true, rows, nt, d, scale, qt, et, 0, s);
      for (let t = 0; t < rows; t++) {
        const i = r0 + t;
        const coef = (scale * (w ? w[i] : 1)) / wsum;
        const o = t * nt;
        for (let j = 0; j < nt; j++) s[o + j] = coef * Math.exp(s[o + j] - lse[i]);
        const tj = target[i] - j0;
        if (tj >= 0 && tj < nt) s[o + tj] -= coef;
        if (bf16) for (let j = 0; j < nt; j++) s[o + j] = roundBf16(s[o + j]);
      }
      if (dq) gemm(false, false, rows, d, nt, 1, s, et, 1, dq.subarray(r0 * d, (r0 + rows) * d));
      if (de) gemm(true, false, nt, d, rows, 1, s, qt, 1, de.subarray(j0 * d, (j0 + nt) * d));
    }
  }
  return loss / wsum;
}
