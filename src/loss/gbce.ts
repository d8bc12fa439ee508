/**
 * gBCE (gSASRec, Petrov & Macdonald, RecSys 2023): binary cross-entropy over each row's positive and its k
 * negative columns, with the positive's probability raised to β so a model trained on few sampled negatives
 * is not overconfident:
 *   α = k / (numItems − 1),  β = α (t (1 − 1/α) + 1/α) = 1 − t (1 − α)   (official code, gbce.py; t = 0 → BCE),
 *   'sum' (gSASRec's code):  ℓ_i = [β·softplus(−z_i,pos) + Σ_{j negative} softplus(z_ij)] / (k + 1),
 *   'mean' (the default):    ℓ_i = β·softplus(−z_i,pos) + (1/k) Σ_{j negative} softplus(z_ij),   L = Σ w_i ℓ_i / Σ w_i,
 * z = scale·q·c + colBias, negatives = every column but the positive that no mask removes (k counted per row).
 * The 1/(k + 1) is the official code's mean over the positive and negative logits. 'mean' only reweights the
 * positive against the negatives (it weighs as much as all negatives together instead of as much as each): the
 * minimiser's logits shift by the constant log k, the ranking it induces does not change, but with k in the hundreds
 * 'sum' gives the positive ≤ 1/k of the gradient and training settles on a popularity-like ranking (measured on
 * planted chains and on Beauty, docs/sequential.md "gBCE"). Same arguments and outputs
 * as the fused softmax (ContrastiveArgs), tiled over rows so at most a rows×N tile of logits exists.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** β of gBCE for k negatives out of numItems items (α capped at 1: more negatives than items → plain BCE). */
export function gbceBeta(k: number, numItems: number, t: number): number {
  const alpha = Math.min(1, k / Math.max(1, numItems - 1));
  if (alpha <= 0) return 1;
  return alpha * (t * (1 - 1 / alpha) + 1 / alpha);
}

let tileBuf = new Float32Array(0);

export function gbceLoss(backend: Backend, a: ContrastiveArgs, t: number, numItems: number, reduction: 'sum' | 'mean' = 'sum'): number {
  const { q, c, B, N, d, pos, scale, colBias, masks, dq, dc } = a;
  const w = a.rowWeight ?? null;
  const absT = a.fnMask?.absThreshold ?? Infinity;
  const margin = a.fnMask?.margin ?? Infinity;
  const maskedCount = a.maskedCount ?? null;
  let wsum = 0;
  for (let i = 0; i < B; i++) wsum += w ? w[i] : 1;
  if (dc) dc.fill(0, 0, N * d);
  if (dq) dq.fill(0, 0, B * d);
  if (B === 0 || N === 0 || wsum === 0) return 0;
  const tile = Math.max(1, Math.min(B, Math.floor((1 << 20) / Math.max(N, 1))));
  if (tileBuf.length < tile * N) tileBuf = new Float32Array(tile * N);
  const s = tileBuf;
  let loss = 0;
  for (let r0 = 0; r0 < B; r0 += tile) {
    const rows = Math.min(tile, B - r0);
    const qt = q.subarray(r0 * d, (r0 + rows) * d);
    backend.gemm(false, true, rows, N, d, 1, qt, c, 0, s);
    for (let r = 0; r < rows; r++) {
      const i = r0 + r;
      const o = r * N;
      const p = pos[i];
      const sPos = s[o + p];
      let k = 0;
      let masked = 0;
      // First pass: mask (masked columns become NaN markers) and count the negatives.
      for (let j = 0; j < N; j++) {
        if (j === p) continue;
        const raw = s[o + j];
        let off = false;
        for (const m of masks) if (m.rowKey[i] >= 0 && m.rowKey[i] === m.colKey[j]) off = true;
        if (raw > absT || (margin !== Infinity && raw > sPos - margin)) off = true;
        if (off) {
          masked++;
          s[o + j] = Number.NaN;
        } else k++;
      }
      if (maskedCount) maskedCount[i] = masked;
      const beta = gbceBeta(k, numItems, t);
      const wi = (w ? w[i] : 1) / wsum;
      // 'sum': every term over k + 1; 'mean': the positive's term as is, the negatives' averaged over k.
      const posW = reduction === 'sum' ? 1 / (k + 1) : 1;
      const negW = reduction === 'sum' ? 1 / (k + 1) : 1 / Math.max(k, 1);
      const zPos = scale * sPos + (colBias ? colBias[p] : 0);
      let negSum = 0;
      for (let j = 0; j < N; j++) {
        if (j === p) continue;
        const raw = s[o + j];
        if (Number.isNaN(raw)) {
          s[o + j] = 0;
          continue;
        }
        const z = scale * raw + (colBias ? colBias[j] : 0);
        negSum += softplus(z);
        s[o + j] = wi * negW * scale * sigmoid(z);
      }
      s[o + p] = -wi * posW * scale * beta * sigmoid(-zPos);
      loss += wi * (posW * beta * softplus(-zPos) + negW * negSum);
    }
    if (dq) backend.gemm(false, false, rows, d, N, 1, s, c, 0, dq.subarray(r0 * d, (r0 + rows) * d));
    if (dc) backend.gemm(true, false, N, d, rows, 1, s, qt, 1, dc);
  }
  return loss;
}
