/**
 * Debiased contrastive loss (Chuang et al., NeurIPS 2020): in-batch "negatives" contain positives of the same
 * latent class with prior τ⁺; the negative term is corrected by subtracting their expected share:
 *   P = e^{z_pos},  Σ = Σ_{k unmasked negatives} e^{z_k},  M = number of those negatives,
 *   N_g = max( (Σ − τ⁺·M·P) / (1 − τ⁺),  M·e^{−scale} ),   ℓ_i = −log( P / (P + N_g) ),
 * the clamp being the theoretical minimum e^{−1/t} per negative (as in the authors' code, estimator='debias').
 * Gradients (unclamped): dℓ/dz_pos = −1 + (P − τ⁺·M·P/(1−τ⁺)) / (P + N_g),  dℓ/dz_k = e^{z_k}/((1−τ⁺)(P + N_g));
 * clamped: dℓ/dz_pos = −1 + P/(P + N_g) and no gradient to the negatives.
 * Same masks, bias (logQ) and outputs as the InfoNCE kernel; logits via the backend GEMM, rows in TypeScript.
 * τ⁺ = 0 gives InfoNCE with the positive excluded from nothing but the denominator's negatives, i.e. InfoNCE.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import { maskedLogits, type MaskedLogits } from './masked-logits.ts';

export class DebiasedLoss {
  private buf: MaskedLogits | undefined;

  constructor(readonly tauPlus: number) {
    if (!(tauPlus >= 0 && tauPlus < 1)) throw new Error(`debiased loss: tauPlus must be in [0, 1), got ${tauPlus}`);
  }

  run(backend: Backend, a: ContrastiveArgs): number {
    const { B, N, d, pos, scale } = a;
    this.buf = maskedLogits(backend, a, this.buf);
    const z = this.buf.z;
    // Reuse the similarity buffer for dL/dz (it is no longer needed).
    const g = this.buf.sim;
    const tp = this.tauPlus;
    const w = a.rowWeight ?? null;
    let wsum = 0;
    for (let i = 0; i < B; i++) wsum += w ? w[i] : 1;
    let loss = 0;
    for (let i = 0; i < B; i++) {
      const o = i * N;
      const p = pos[i];
      let m = z[o + p];
      for (let j = 0; j < N; j++) if (z[o + j] > m) m = z[o + j];
      // Everything below is scaled by e^{−m} for stability; the ratios are unchanged.
      const P = Math.exp(z[o + p] - m);
      let S = 0;
      let M = 0;
      for (let j = 0; j < N; j++) {
        if (j === p || z[o + j] === -Infinity) continue;
        S += Math.exp(z[o + j] - m);
        M++;
      }
      const floor = M * Math.exp(-scale - m);
      const raw = (S - tp * M * P) / (1 - tp);
      const clamped = raw < floor;
      const Ng = clamped ? floor : raw;
      const D = P + Ng;
      const wi = (w ? w[i] : 1) / wsum;
      loss += wi * -Math.log(P / D);
      for (let j = 0; j < N; j++) g[o + j] = 0;
      if (clamped) {
        g[o + p] = wi * (-1 + P / D);
      } else {
        g[o + p] = wi * (-1 + (P - (tp * M * P) / (1 - tp)) / D);
        const f = wi / ((1 - tp) * D);
        for (let j = 0; j < N; j++) if (j !== p && z[o + j] !== -Infinity) g[o + j] = f * Math.exp(z[o + j] - m);
      }
    }
    if (a.dq) backend.gemm(false, false, B, d, N, scale, g, a.c, 0, a.dq);
    if (a.dc) backend.gemm(true, false, N, d, B, scale, g, a.q, 0, a.dc);
    return loss;
  }
}
