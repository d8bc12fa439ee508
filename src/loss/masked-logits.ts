/**
 * The logits of the loss chain materialised as a B×N matrix (scale → bias → masks; masked = −∞), for the
 * parts that need to look at whole rows outside the fused kernel: the debiased loss and training
 * diagnostics. Same semantics as Backend.contrastive (see backend.ts), so both see identical masks.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';

export interface MaskedLogits {
  /** z_ij (masked → −∞), B×N. */
  z: Float32Array;
  /** Raw similarities q_i·c_j, B×N. */
  sim: Float32Array;
}

export function maskedLogits(backend: Backend, a: ContrastiveArgs, into?: MaskedLogits): MaskedLogits {
  const { B, N, d, pos, scale, colBias, masks } = a;
  const size = B * N;
  const out = into && into.z.length >= size ? into : { z: new Float32Array(size), sim: new Float32Array(size) };
  const sim = out.sim.subarray(0, size);
  const z = out.z.subarray(0, size);
  backend.gemm(false, true, B, N, d, 1, a.q, a.c, 0, sim);
  const absT = a.fnMask?.absThreshold ?? Infinity;
  const margin = a.fnMask?.margin ?? Infinity;
  for (let i = 0; i < B; i++) {
    const o = i * N;
    const p = pos[i];
    const sPos = sim[o + p];
    let masked = 0;
    for (let j = 0; j < N; j++) {
      const s = sim[o + j];
      let off = false;
      if (j !== p) {
        for (const m of masks) if (m.rowKey[i] >= 0 && m.rowKey[i] === m.colKey[j]) off = true;
        if (s > absT || (margin !== Infinity && s > sPos - margin)) off = true;
      }
      if (off) masked++;
      z[o + j] = off ? -Infinity : scale * s + (colBias ? colBias[j] : 0);
    }
    if (a.maskedCount) a.maskedCount[i] = masked;
  }
  return out;
}
