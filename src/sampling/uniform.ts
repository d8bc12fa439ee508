/**
 * Uniform random negatives shared by the whole batch (the "B′" of Mixed Negative Sampling, Yang et al. 2020):
 * n item ids drawn with replacement from the whole catalogue, so tail items get to be negatives too.
 * Each item has expected count n/N per batch, hence logq = log(n/N).
 */
import type { BatchContext, Candidates, NegativeSource } from './source.ts';
import type { SourceLimits } from '../recipe/limits.ts';

export class UniformSource implements NegativeSource {
  readonly name = 'uniform';
  readonly usesPositives = false;

  /** Memory estimate of the recipe's sizes (recipe/limits.ts). */
  static limits(s: { n: number }, lim: SourceLimits, field: (k: string) => string): void {
    lim.check(field('n'), `${s.n} negatives per batch`, lim.columnBytes(s.n), s.n * Math.max(lim.d, lim.B));
  }
  private readonly ids: Int32Array;
  private readonly logq: Float32Array;
  private readonly logCount: number;

  constructor(
    private readonly numItems: number,
    readonly n: number,
  ) {
    this.ids = new Int32Array(n);
    this.logCount = Math.log(n / numItems);
    this.logq = new Float32Array(n).fill(this.logCount);
  }

  sample(ctx: BatchContext): Candidates {
    for (let r = 0; r < this.n; r++) this.ids[r] = ctx.rng.int(this.numItems);
    return { ids: this.ids, logq: this.logq, userKey: null, embeddings: null };
  }

  logExpectedCount(ids: Int32Array, _batchSize: number, out: Float32Array): void {
    out.fill(this.logCount, 0, ids.length);
  }
}
