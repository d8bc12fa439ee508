/**
 * Per-row pairwise losses over each row's own negatives (not shared columns), run by the one contrastive step
 * (train/contrastive-step.ts) through the same encoder pair and optimiser step. Item rows are laid out as
 * [positives (R) ; row t's K negatives at R + t·K …]; scores s = ⟨q_t, c⟩:
 *  - bce (SASRec, Kang & McAuley 2018), K = 1: L = (1/R) Σ_t [softplus(−s(t, j⁺)) + softplus(s(t, j⁻))];
 *  - bpr (GNNO's loss, Fan et al. 2023): L = (1/RK) Σ_t Σ_k softplus(s(t, j_k) − s(t, j⁺)).
 * Which negatives a row gets is the `draw` callback's business (seq/objectives.ts: uniform ∉ the user's history
 * and neighbourhood hard negatives for the row's target).
 */
import type { BatchContext } from '../sampling/source.ts';

export interface PairwiseLoss {
  readonly kind: 'bce' | 'bpr';
  /** Item rows of this batch: positives, then each row's negatives (a view valid until the next call). */
  layout(ctx: BatchContext): Int32Array;
  /** Loss of query rows q (R×d) against item rows c (as laid out); writes dL/dq and dL/dc. */
  loss(q: Float32Array, c: Float32Array, R: number, d: number, dq: Float32Array, dc: Float32Array): number;
}

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[ao + k] * b[bo + k];
  return s;
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

  loss(q: Float32Array, c: Float32Array, R: number, d: number, dq: Float32Array, dc: Float32Array): number {
    return this.kind === 'bce' ? bce(q, c, R, d, dq, dc) : bpr(q, c, R, this.K, d, dq, dc);
  }
}

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
