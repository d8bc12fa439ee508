/**
 * Per-row pairwise losses over each row's own negatives (not shared columns), run by the one contrastive step
 * (train/contrastive-step.ts) through the same encoder pair and optimiser step. Item rows are laid out as
 * [positives (R) ; row t's K negatives at R + t·K …]; scores s = ⟨q_t, c⟩:
 *  - bce (SASRec, Kang & McAuley 2018), K = 1: L = (1/R) Σ_t [softplus(−s(t, j⁺)) + softplus(s(t, j⁻))];
 *  - bpr (GNNO's loss, Fan et al. 2023): L = (1/RK) Σ_t Σ_k softplus(s(t, j_k) − s(t, j⁺)).
 * Which negatives a row gets is the `draw` callback's business (seq/objectives.ts: uniform ∉ the user's history
 * and neighbourhood hard negatives for the row's target).
 */
import type { Backend } from '../compute/backend.ts';
import type { BatchContext } from '../sampling/source.ts';

export interface PairwiseLoss {
  readonly kind: 'bce' | 'bpr';
  /** Item rows of this batch: positives, then each row's negatives (a view valid until the next call). */
  layout(ctx: BatchContext): Int32Array;
  /** Loss of query rows q (R×d) against item rows c (as laid out); writes dL/dq and dL/dc (Backend.pairwiseLoss). */
  loss(b: Backend, q: Float32Array, c: Float32Array, R: number, d: number, dq: Float32Array, dc: Float32Array): number;
}

export class PerRowLoss implements PairwiseLoss {
  private ids = new Int32Array(0);

  constructor(
    readonly kind: 'bce' | 'bpr',
    /** Negatives per row (1 for bce). */
    readonly K: number,
    /** Writes row t's K negatives into out[t·K …] for every row of ctx. */
    private readonly draw: (ctx: BatchContext, K: number, out: Int32Array) => void,
  ) {
    if (kind === 'bce' && K !== 1) throw new RangeError('bce takes one negative per row');
  }

  layout(ctx: BatchContext): Int32Array {
    const R = ctx.items.length;
    const n = R * (1 + this.K);
    if (this.ids.length < n) this.ids = new Int32Array(n);
    const ids = this.ids.subarray(0, n);
    ids.set(ctx.items);
    this.draw(ctx, this.K, ids.subarray(R));
    return ids;
  }

  loss(b: Backend, q: Float32Array, c: Float32Array, R: number, d: number, dq: Float32Array, dc: Float32Array): number {
    return b.pairwiseLoss(this.kind, q, c, R, this.K, d, dq, dc);
  }
}
