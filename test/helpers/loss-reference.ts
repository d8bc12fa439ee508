/**
 * Float64 reference of the loss chain, one small pure step at a time, for tests: every backend's fused
 * kernel must agree with it. Matrices are row-major number arrays.
 */

/** z_ij = scale · q_i·c_j (B×N). */
export function logits(q: ArrayLike<number>, c: ArrayLike<number>, B: number, N: number, d: number, scale: number): Float64Array {
  const z = new Float64Array(B * N);
  for (let i = 0; i < B; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q[i * d + k] * c[j * d + k];
      z[i * N + j] = scale * s;
    }
  return z;
}

/** logQ correction (Yi et al. 2019): z_ij −= logQ_j. */
export function applyLogQ(z: Float64Array, B: number, N: number, logq: ArrayLike<number>): Float64Array {
  const out = z.slice();
  for (let i = 0; i < B; i++) for (let j = 0; j < N; j++) out[i * N + j] -= logq[j];
  return out;
}

/** Softmax cross-entropy with the positive at pos[i]; returns the weighted mean loss and dL/dz. */
export function softmaxCrossEntropy(
  z: Float64Array,
  B: number,
  N: number,
  pos: ArrayLike<number>,
  weight?: ArrayLike<number>,
): { loss: number; dz: Float64Array } {
  let wsum = 0;
  for (let i = 0; i < B; i++) wsum += weight ? weight[i] : 1;
  const dz = new Float64Array(B * N);
  let loss = 0;
  for (let i = 0; i < B; i++) {
    let m = -Infinity;
    for (let j = 0; j < N; j++) m = Math.max(m, z[i * N + j]);
    let s = 0;
    for (let j = 0; j < N; j++) s += Math.exp(z[i * N + j] - m);
    const lse = m + Math.log(s);
    const w = (weight ? weight[i] : 1) / wsum;
    loss += w * (lse - z[i * N + pos[i]]);
    for (let j = 0; j < N; j++) dz[i * N + j] = w * Math.exp(z[i * N + j] - lse);
    dz[i * N + pos[i]] -= w;
  }
  return { loss, dz };
}

/** Chain rule through z = scale · q cᵀ: dq = scale · dz c, dc = scale · dzᵀ q. */
export function logitsBackward(
  dz: Float64Array,
  q: ArrayLike<number>,
  c: ArrayLike<number>,
  B: number,
  N: number,
  d: number,
  scale: number,
): { dq: Float64Array; dc: Float64Array } {
  const dq = new Float64Array(B * d);
  const dc = new Float64Array(N * d);
  for (let i = 0; i < B; i++)
    for (let j = 0; j < N; j++) {
      const g = scale * dz[i * N + j];
      if (g === 0) continue;
      for (let k = 0; k < d; k++) {
        dq[i * d + k] += g * c[j * d + k];
        dc[j * d + k] += g * q[i * d + k];
      }
    }
  return { dq, dc };
}
