/**
 * In-batch negatives: every other row's positive item is a negative for this row. The positives are drawn
 * with the data's item frequency, hence popular items are over-represented as negatives: logq carries
 * log(B·p_j) from the frequency estimator so logQ correction can undo it (Yi et al. 2019).
 */
import type { FrequencyEstimator } from './frequency.ts';
import type { AfterStepContext, NegativeSource } from './source.ts';

export class InBatchSource implements NegativeSource {
  readonly name = 'in-batch';
  readonly usesPositives = true;

  constructor(readonly freq: FrequencyEstimator) {}

  logExpectedCount(ids: Int32Array, batchSize: number, out: Float32Array): void {
    this.freq.logExpectedCount(ids, batchSize, out);
  }

  /** Streaming frequency: records the batch's positives (once per step, however many sources share it). */
  afterStep(ctx: AfterStepContext): void {
    this.freq.observe(ctx.items, ctx.step);
  }
}
