/**
 * The portable backend's row kernels: duplicate-row merging for sparse table updates and the per-row pairwise
 * losses (BCE, BPR). Semantics in backend.ts; native/rows.cc computes the same.
 */
import type { Backend } from './backend.ts';

export const mergeRowsJs: Backend['mergeRows'] = (ids, grads, n, dim, slot, uniq, summed, u0) => {
  let u = u0;
  // First occurrences are copied in runs (grads rows and summed slots advance together): one native copy per run.
  let runR = 0;
  let runLen = 0;
  const flush = () => {
    if (runLen > 0) summed.set(grads.subarray(runR * dim, (runR + runLen) * dim), (u - runLen) * dim);
    runLen = 0;
  };
  for (let r = 0; r < n; r++) {
    const id = ids[r];
    const s = slot[id];
    if (s < 0) {
      if (runLen === 0) runR = r;
      slot[id] = u;
      uniq[u++] = id;
      runLen++;
    } else {
      flush();
      const so = s * dim;
      const go = r * dim;
      for (let j = 0; j < dim; j++) summed[so + j] += grads[go + j];
    }
  }
  flush();
  return u;
};

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[ao + k] * b[bo + k];
  return s;
}

export const pairwiseLossJs: Backend['pairwiseLoss'] = (kind, q, c, R, K, d, dq, dc) => (kind === 'bce' ? bce(q, c, R, d, dq, dc) : bpr(q, c, R, K, d, dq, dc));

function bce(H: Float32Array, c: Float32Array, R: number, d: number, dH: Float32Array, dc: Float32Array): number {
  let loss = 0;
  for (let t = 0; t < R; t++) {
    const ho = t * d;
    const po = t * d;
    const no = (R + t) * d;
    const sp = dot(H, ho, c, po, d);
    const sn = dot(H, ho, c, no, d);
    loss += softplus(-sp) + softplus(sn);
    const gp = (sigmoid(sp) - 1) / R;
    const gn = sigmoid(sn) / R;
    for (let k = 0; k < d; k++) {
      dH[ho + k] = gp * c[po + k] + gn * c[no + k];
      dc[po + k] = gp * H[ho + k];
      dc[no + k] = gn * H[ho + k];
    }
  }
  return loss / R;
}

function bpr(H: Float32Array, c: Float32Array, R: number, K: number, d: number, dH: Float32Array, dc: Float32Array): number {
  let loss = 0;
  const inv = 1 / (R * K);
  for (let t = 0; t < R; t++) {
    const ho = t * d;
    const po = t * d;
    const sp = dot(H, ho, c, po, d);
    for (let k = 0; k < d; k++) dH[ho + k] = 0;
    let gPos = 0;
    for (let k = 0; k < K; k++) {
      const qo = (R + t * K + k) * d;
      const diff = sp - dot(H, ho, c, qo, d);
      loss += softplus(-diff);
      const g = (sigmoid(diff) - 1) * inv; // dL/d diff
      gPos += g;
      for (let z = 0; z < d; z++) {
        dH[ho + z] += g * (c[po + z] - c[qo + z]);
        dc[qo + z] = -g * H[ho + z];
      }
    }
    for (let z = 0; z < d; z++) dc[po + z] = gPos * H[ho + z];
  }
  return loss * inv;
}
