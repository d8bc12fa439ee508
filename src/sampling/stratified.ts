/**
 * Per-stratum random negatives: for every stratum of an item column (category, area, ...), n ids drawn
 * uniformly from that stratum's items, so every stratum is represented as negatives whatever its share of
 * traffic. Expected count of item j per batch is n / |stratum(j)|, hence logq = log(n / |stratum(j)|):
 * with logQ on, each stratum's sampling bias is corrected on its own.
 */
import type { BatchContext, Candidates, NegativeSource } from './source.ts';
import type { SourceLimits } from '../recipe/limits.ts';

export class StratifiedSource implements NegativeSource {
  readonly name = 'stratified';
  readonly usesPositives = false;

  /** Memory estimate (recipe/limits.ts): n per stratum, at most one stratum per item. */
  static limits(s: { n: number }, lim: SourceLimits, field: (k: string) => string): void {
    const strata = Math.min(lim.N, 1024);
    lim.check(field('n'), `${s.n} negatives per stratum per batch (up to ${lim.N} strata)`, lim.columnBytes(s.n * strata), s.n * strata * Math.max(lim.d, lim.B));
  }
  private readonly members: Int32Array[];
  private readonly logCount: Float32Array;
  private readonly ids: Int32Array;
  private readonly logq: Float32Array;

  /** `stratumOf[j]` is item j's stratum index (any non-negative integers). */
  constructor(stratumOf: Int32Array, readonly n: number) {
    const groups = new Map<number, number[]>();
    for (let j = 0; j < stratumOf.length; j++) {
      const g = groups.get(stratumOf[j]);
      if (g) g.push(j);
      else groups.set(stratumOf[j], [j]);
    }
    this.members = [...groups.keys()].sort((a, b) => a - b).map((k) => Int32Array.from(groups.get(k)!));
    this.logCount = new Float32Array(stratumOf.length);
    for (const m of this.members) for (const j of m) this.logCount[j] = Math.log(n / m.length);
    this.ids = new Int32Array(n * this.members.length);
    this.logq = new Float32Array(n * this.members.length);
  }

  get strata(): number {
    return this.members.length;
  }

  sample(ctx: BatchContext): Candidates {
    let r = 0;
    for (const m of this.members) {
      for (let k = 0; k < this.n; k++) {
        const j = m[ctx.rng.int(m.length)];
        this.ids[r] = j;
        this.logq[r++] = this.logCount[j];
      }
    }
    return { ids: this.ids, logq: this.logq, userKey: null, embeddings: null };
  }

  logExpectedCount(ids: Int32Array, _b: number, out: Float32Array): void {
    for (let r = 0; r < ids.length; r++) out[r] = this.logCount[ids[r]];
  }
}
