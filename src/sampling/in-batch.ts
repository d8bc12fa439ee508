/**
 * In-batch negatives: every other row's positive item is a negative for this row. The positives are drawn
 * with the data's item frequency, hence popular items are over-represented as negatives: logq carries
 * log(B·p_j) from the frequency estimator so logQ correction can undo it (Yi et al. 2019).
 */
import type { FrequencyEstimator } from './frequency.ts';
import type { BatchContext, Candidates, NegativeSource } from './source.ts';

export class InBatchSource implements NegativeSource {
  readonly name = 'in-batch';
  readonly usesPositives = true;
  private logq = new Float32Array(0);

  constructor(readonly freq: FrequencyEstimator) {}

  sample(ctx: BatchContext): Candidates {
    const B = ctx.items.length;
    if (this.logq.length !== B) this.logq = new Float32Array(B);
    this.freq.logExpectedCount(ctx.items, B, this.logq);
    return { ids: ctx.items, logq: this.logq, userKey: ctx.users, embeddings: null };
  }

  logExpectedCount(ids: Int32Array, batchSize: number, out: Float32Array): void {
    this.freq.logExpectedCount(ids, batchSize, out);
  }
}
