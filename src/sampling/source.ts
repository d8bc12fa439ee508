/**
 * The one shape every negative source returns, so masking and logQ apply alike to in-batch, random, queue
 * and mined negatives: candidate item ids, the log of how often each was expected in this sample (for logQ),
 * which user's positive a candidate is (for same-user masking; null when none), and fixed embeddings when
 * the source brings its own (a queue of past embeddings; null = embed with the item tower, with gradient).
 */
import type { Rng } from '../util/rng.ts';

export interface Candidates {
  ids: Int32Array;
  /** log of the expected number of times each candidate is drawn by this source in one batch. */
  logq: Float32Array;
  userKey: Int32Array | null;
  embeddings: Float32Array | null;
  /**
   * True when these candidates are not draws from a proposal distribution (mined hard negatives): their
   * columns keep `logq` as given instead of the mixture log-expected-count (see loss/columns.ts).
   */
  fixedLogQ?: boolean;
}

export interface BatchContext {
  users: Int32Array;
  items: Int32Array;
  /** 1-based optimisation step. */
  step: number;
  rng: Rng;
}

export interface NegativeSource {
  readonly name: string;
  /**
   * True for the in-batch source: its candidates are the batch's own positives, which the loss always
   * places in columns 0..B−1; without such a source those columns serve only as each row's positive.
   */
  readonly usesPositives: boolean;
  /** This batch's candidates; absent on the in-batch source, whose candidates are the batch's positives. */
  sample?(ctx: BatchContext): Candidates;
  /**
   * log of the expected number of times this source draws each of `ids` in one batch of `batchSize` rows.
   * With several sources the proposal is their mixture, so logQ uses log Σ_s E_s[count(j)] for every column.
   */
  logExpectedCount(ids: Int32Array, batchSize: number, out: Float32Array): void;
}
