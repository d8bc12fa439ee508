/**
 * Sampled softmax / InfoNCE over the assembled columns, as the fixed chain
 *   scale (1/τ) → logQ (z_ij −= logQ_j) → masks (accidental hits, same user, block) → softmax cross-entropy,
 * run by the backend's fused kernel so the B×N logits are produced, used and differentiated tile by tile.
 * A float64 step-by-step version of the same chain lives in reference.ts and the tests hold the two together.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import type { Columns } from './columns.ts';

export interface SoftmaxConfig {
  temperature: number;
  logQ: boolean;
  maskSameItem: boolean;
  maskSameUser: boolean;
}

export class SampledSoftmax {
  private bias = new Float32Array(0);
  private pos = new Int32Array(0);
  private zeros = new Int32Array(0);
  dq = new Float32Array(0);
  dc = new Float32Array(0);
  /** Per-row count of masked candidates in the last call (for diagnostics). */
  maskedCount = new Int32Array(0);

  constructor(readonly config: SoftmaxConfig) {}

  /** Returns the mean loss; gradients are left in `dq` (B×d) and `dc` (N×d). */
  run(backend: Backend, q: Float32Array, c: Float32Array, d: number, users: Int32Array, posItems: Int32Array, cols: Columns): number {
    const B = users.length;
    const N = cols.N;
    if (this.pos.length < B) {
      this.pos = new Int32Array(B);
      this.zeros = new Int32Array(B);
      this.maskedCount = new Int32Array(B);
      for (let i = 0; i < B; i++) this.pos[i] = i;
      this.dq = new Float32Array(B * d);
    }
    if (this.bias.length < N) this.bias = new Float32Array(N);
    if (this.dc.length < N * d) this.dc = new Float32Array(N * d);
    const bias = this.bias.subarray(0, N);
    if (this.config.logQ) for (let j = 0; j < N; j++) bias[j] = -cols.logq[j];
    const masks: ContrastiveArgs['masks'] = [];
    if (this.config.maskSameItem) masks.push({ rowKey: posItems, colKey: cols.ids });
    if (cols.blockKey) masks.push({ rowKey: this.zeros.subarray(0, B), colKey: cols.blockKey });
    else if (this.config.maskSameUser) masks.push({ rowKey: users, colKey: cols.userKey });
    return backend.contrastive({
      q,
      c,
      B,
      N,
      d,
      pos: this.pos.subarray(0, B),
      scale: 1 / this.config.temperature,
      colBias: this.config.logQ ? bias : null,
      masks,
      fnMask: null,
      rowWeight: null,
      dq: this.dq.subarray(0, B * d),
      dc: this.dc.subarray(0, N * d),
      maskedCount: this.maskedCount.subarray(0, B),
    });
  }
}
