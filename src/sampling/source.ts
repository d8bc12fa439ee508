/**
 * A negative source and its lifecycle. Every source returns the same shape, so masking and logQ apply alike
 * to in-batch, random, queue and mined negatives: candidate item ids, the log of how often each was expected
 * in this sample (for logQ), which user's positive a candidate is (for same-user masking; null when none),
 * and fixed embeddings when the source brings its own (a queue of past embeddings; null = embed with the item
 * side of the encoder, with gradient).
 *
 * The lifecycle keeps each source's state inside the source: the step binds the encoder once (a queue takes
 * its momentum copy from it), calls beginEpoch at every epoch (curricula read the epoch from the context),
 * sample before the forward pass, afterStep after the optimiser step (queue enqueue + momentum update,
 * streaming-frequency update), and checkpoints save/restore whatever stateArrays returns. Nothing outside the
 * recipe → sources builder (build.ts) knows which kind of source it holds.
 */
import type { Backend } from '../compute/backend.ts';
import type { NamedArray, StateArrays, Stateful } from '../util/state.ts';
import type { Rng } from '../util/rng.ts';

export interface Candidates {
  ids: Int32Array;
  /** log of the expected number of times each candidate is drawn by this source in one batch. */
  logq: Float32Array;
  userKey: Int32Array | null;
  embeddings: Float32Array | null;
  /**
   * True when these candidates are not draws from a proposal distribution (mined hard negatives): their
   * columns keep `logq` as given instead of the mixture log-expected-count (see logq.ts).
   */
  fixedLogQ?: boolean;
}

export interface EpochContext {
  /** 0-based epoch about to start. */
  epoch: number;
  /** Optimisation steps taken so far. */
  step: number;
}

export interface BatchContext {
  /** Per row: the query entity (user) and its positive item. */
  users: Int32Array;
  items: Int32Array;
  /** 1-based optimisation step. */
  step: number;
  rng: Rng;
}

export interface AfterStepContext {
  backend: Backend;
  users: Int32Array;
  items: Int32Array;
  /** 1-based step just taken. */
  step: number;
  /** Train-mode item-side embeddings of the batch's positives (rows × dim), as the loss saw them. */
  positives: Float32Array;
}

/** A momentum (EMA) copy of the item side (structurally model/encoder.ts MomentumItems). */
export interface MomentumEmbedder extends Stateful {
  update(): void;
  embed(b: Backend, ids: Int32Array, out: Float32Array): void;
}

/** What a source may ask of the encoder it trains with (a subset of model/encoder.ts EncoderPair). */
export interface ItemEncoder {
  readonly dim: number;
  embedItems(b: Backend, ids: Int32Array, out: Float32Array): void;
  momentumItems(m: number): MomentumEmbedder;
}

export interface NegativeSource {
  readonly name: string;
  /**
   * True for the in-batch source: its candidates are the batch's own positives, which the loss always
   * places in columns 0..B−1; without such a source those columns serve only as each row's positive.
   */
  readonly usesPositives: boolean;
  /** Called once by the step before training, with the encoder pair it trains. */
  bind?(encoder: ItemEncoder): void;
  /** Called at the start of every epoch. */
  beginEpoch?(ctx: EpochContext): void;
  /** This batch's candidates; absent on the in-batch source, whose candidates are the batch's positives. */
  sample?(ctx: BatchContext): Candidates;
  /**
   * log of the expected number of times this source draws each of `ids` in one batch of `batchSize` rows.
   * With several sources the proposal is their mixture, so logQ uses log Σ_s E_s[count(j)] for every column.
   */
  logExpectedCount(ids: Int32Array, batchSize: number, out: Float32Array): void;
  /** Called after every optimiser step. */
  afterStep?(ctx: AfterStepContext): void;
  /** Learned state for checkpoints (names unique among sources; the step prefixes them with `train.`). */
  stateArrays?(): StateArrays;
  restoreState?(get: (name: string) => NamedArray | undefined): void;
  /** Numbers worth reporting about this source (diagnostics, logs). */
  stats?(): Record<string, number>;
}
