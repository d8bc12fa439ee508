/**
 * Lays out the item columns of one batch's softmax: the B positives first (column i is row i's positive), then
 * the candidates of sources embedded by the item tower, then those that bring fixed embeddings (a queue), so
 * the item tower runs once over columns [0, Nt) and only those columns carry gradient. Also derives, per column, the keys the masks compare and the mixture
 * log-expected-count used by logQ:
 *   logQ_j = log Σ_s E_s[count of item j in one batch]   over every source s of the recipe,
 * which is log(B·p_j) with in-batch negatives alone (Yi et al. 2019) and the mixture proposal of
 * Mixed Negative Sampling (Yang et al. 2020) when random negatives are added. Candidates flagged `fixedLogQ`
 * (mined hard negatives: chosen, not sampled) keep their own logq and add nothing to the mixture.
 */
import type { BatchContext, NegativeSource } from '../sampling/source.ts';

export interface Columns {
  /** Item columns in all. */
  N: number;
  /** Columns [0, Nt) are embedded by the item tower; [Nt, N) come with `fixed` embeddings. */
  Nt: number;
  /** Fixed embeddings of columns [Nt, N), (N − Nt)×d, or null when there are none. */
  fixed: Float32Array | null;
  ids: Int32Array;
  /** User whose positive the column is (in-batch block), else −1. */
  userKey: Int32Array;
  /** 0 for the positives block when it must not serve as negatives (no in-batch source), else −1. */
  blockKey: Int32Array | null;
  /** Mixture log expected count per column. */
  logq: Float32Array;
}

export class ColumnBuilder {
  private ids = new Int32Array(0);
  private userKey = new Int32Array(0);
  private blockKey = new Int32Array(0);
  private logq = new Float32Array(0);
  private tmp = new Float32Array(0);
  private fixedBuf = new Float32Array(0);
  readonly inBatch: boolean;

  constructor(
    private readonly sources: NegativeSource[],
    private readonly dim: number,
  ) {
    this.inBatch = sources.some((s) => s.usesPositives);
  }

  build(ctx: BatchContext, withLogQ: boolean): Columns {
    const B = ctx.items.length;
    const sampled = this.sources.flatMap((s) => (!s.usesPositives && s.sample ? [s.sample(ctx)] : []));
    // Tower-embedded candidates first, fixed-embedding ones last.
    const extra = [...sampled.filter((c) => !c.embeddings), ...sampled.filter((c) => c.embeddings)];
    const N = B + extra.reduce((n, c) => n + c.ids.length, 0);
    const Nt = B + extra.filter((c) => !c.embeddings).reduce((n, c) => n + c.ids.length, 0);
    const d = this.dim;
    let fixed: Float32Array | null = null;
    if (N > Nt) {
      if (this.fixedBuf.length < (N - Nt) * d) this.fixedBuf = new Float32Array((N - Nt) * d);
      fixed = this.fixedBuf.subarray(0, (N - Nt) * d);
      let o = 0;
      for (const c of extra) if (c.embeddings) {
        fixed.set(c.embeddings.subarray(0, c.ids.length * d), o);
        o += c.ids.length * d;
      }
    }
    if (this.ids.length < N) {
      this.ids = new Int32Array(N);
      this.userKey = new Int32Array(N);
      this.blockKey = new Int32Array(N);
      this.logq = new Float32Array(N);
      this.tmp = new Float32Array(N);
    }
    const ids = this.ids.subarray(0, N);
    const userKey = this.userKey.subarray(0, N);
    ids.set(ctx.items, 0);
    userKey.set(ctx.users, 0);
    let o = B;
    const fixedLogQ: Array<[number, Float32Array, number]> = [];
    for (const c of extra) {
      if (c.fixedLogQ) fixedLogQ.push([o, c.logq, c.ids.length]);
      ids.set(c.ids, o);
      if (c.userKey) userKey.set(c.userKey, o);
      else userKey.fill(-1, o, o + c.ids.length);
      o += c.ids.length;
    }
    let blockKey: Int32Array | null = null;
    if (!this.inBatch) {
      blockKey = this.blockKey.subarray(0, N);
      blockKey.fill(0, 0, B);
      blockKey.fill(-1, B, N);
    }
    const logq = this.logq.subarray(0, N);
    if (withLogQ) {
      const tmp = this.tmp.subarray(0, N);
      this.sources[0].logExpectedCount(ids, B, logq);
      for (let s = 1; s < this.sources.length; s++) {
        this.sources[s].logExpectedCount(ids, B, tmp);
        for (let j = 0; j < N; j++) {
          const a = logq[j];
          const b = tmp[j];
          const m = a > b ? a : b;
          logq[j] = m === -Infinity ? -Infinity : m + Math.log(Math.exp(a - m) + Math.exp(b - m));
        }
      }
      // A column no source samples (expected count 0) gets no correction rather than an infinite bias.
      for (let j = 0; j < N; j++) if (logq[j] === -Infinity) logq[j] = 0;
      // Mined columns are not sampled: they keep their own logq (0 = "present once, with certainty", no correction).
      for (const [at, lq, len] of fixedLogQ) logq.set(lq.subarray(0, len), at);
    } else logq.fill(0);
    return { N, Nt, fixed, ids, userKey, blockKey, logq };
  }
}
