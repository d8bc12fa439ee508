/**
 * Popularity-proportional random negatives: n ids per batch drawn with probability ∝ (count_j + 1)^α
 * (α = 1: unigram, α = 0.75: word2vec's smoothed unigram, α = 0: uniform). Each item's expected count per
 * batch is n·p_α(j), hence logq = log(n·p_α(j)).
 */
import { AliasTable } from './alias.ts';
import type { BatchContext, Candidates, NegativeSource } from './source.ts';
import type { SourceLimits } from '../recipe/limits.ts';

export class PopularitySource implements NegativeSource {
  readonly name = 'popularity';
  readonly usesPositives = false;

  /** Memory estimate of the recipe's sizes (recipe/limits.ts). */
  static limits(s: { n: number }, lim: SourceLimits, field: (k: string) => string): void {
    lim.check(field('n'), `${s.n} negatives per batch`, lim.columnBytes(s.n), s.n * Math.max(lim.d, lim.B));
  }
  private readonly table: AliasTable;
  private readonly logCount: Float32Array;
  private readonly ids: Int32Array;
  private readonly logq: Float32Array;

  constructor(itemCounts: Float64Array, readonly n: number, alpha: number) {
    const w = new Float64Array(itemCounts.length);
    let total = 0;
    for (let j = 0; j < w.length; j++) total += w[j] = Math.pow(itemCounts[j] + 1, alpha);
    this.table = new AliasTable(w);
    this.logCount = new Float32Array(w.length);
    for (let j = 0; j < w.length; j++) this.logCount[j] = Math.log((n * w[j]) / total);
    this.ids = new Int32Array(n);
    this.logq = new Float32Array(n);
  }

  sample(ctx: BatchContext): Candidates {
    for (let r = 0; r < this.n; r++) {
      const j = this.table.draw(ctx.rng);
      this.ids[r] = j;
      this.logq[r] = this.logCount[j];
    }
    return { ids: this.ids, logq: this.logq, userKey: null, embeddings: null };
  }

  logExpectedCount(ids: Int32Array, _b: number, out: Float32Array): void {
    for (let r = 0; r < ids.length; r++) out[r] = this.logCount[ids[r]];
  }
}
