/**
 * What the one contrastive step (src/train) needs from any model: a pair of encoders that turns a batch's
 * rows into query vectors and catalogue items into column vectors, back-propagates both, and takes one
 * optimiser step. The id + feature two-tower model, the sequence towers (SASRec, mean-pool: rows are the
 * tokens of a packed batch, items are rows of the shared item table) and the text dual encoders (rows are
 * queries, items are documents) each implement it, so every recipe module — sources, corrections, losses,
 * batch samplers — is written once, against this interface, and works with every encoder.
 *
 * Why a pair and not two towers: a text encoder may share one tower between queries and documents (one packed
 * forward and backward per step), and a sequence tower reads and writes the same item table on both sides
 * (input-side and output-side row gradients merge into one sparse update). The pair hides both.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';
import type { StateArrays, Stateful } from '../util/state.ts';

/** One training batch as the step sees it: the encoder's own input plus the keys the masks compare. */
export interface EncoderBatch<Input> {
  /** Whatever the query side reads (user ids, a packed batch of histories, query texts). */
  input: Input;
  /** Rows of the batch (R). Row r's positive is `items[r]`. */
  rows: number;
  /** Key of each row's query entity for same-user masking (user id; a history's user; a query id). */
  users: Int32Array;
  /** Each row's positive catalogue item (item id; the next item; the relevant document). */
  items: Int32Array;
}

/** A momentum (EMA) copy of the item side, embedding without gradient (MoCo's key encoder). */
export interface MomentumItems extends Stateful {
  /** θ_m ← m·θ_m + (1 − m)·θ, after each optimiser step. */
  update(): void;
  embed(b: Backend, ids: Int32Array, out: Float32Array): void;
}

export interface EncoderPair<Input> {
  /** Output size of both sides (scores are dot products; L2-normalised outputs make them cosines). */
  readonly dim: number;
  /** Catalogue size: item ids are 0 … numItems − 1. */
  readonly numItems: number;
  /**
   * Train-mode forward of the batch's queries (rows × dim) and of the catalogue items `ids` (ids.length × dim).
   * Views valid until the next forward. One backward follows each forward.
   */
  forward(b: Backend, batch: EncoderBatch<Input>, ids: Int32Array, rng: Rng): { q: Float32Array; c: Float32Array };
  /** Back-propagates dL/dq and dL/dc of the last forward (both may be overwritten) and accumulates gradients. */
  backward(b: Backend, dq: Float32Array, dc: Float32Array): void;
  /** One optimiser step on everything the last backward touched; clears the gradients. */
  step(b: Backend): void;
  /** Multiplies every learning rate by `factor` of its configured value (learning-rate schedules). */
  setLrScale(factor: number): void;
  /**
   * Inference embeddings of the batch's queries (rows × dim; no dropout, no state change), for diagnostics.
   * Optional: a pair without it trains the same, only the step's inspect() returns null.
   */
  embedQueries?(b: Backend, batch: EncoderBatch<Input>, out: Float32Array): void;
  /** Inference embeddings of catalogue items (no dropout, no state change): queues, mining, diagnostics. */
  embedItems(b: Backend, ids: Int32Array, out: Float32Array): void;
  /** A momentum copy of the item side with EMA coefficient m, initialised to the current weights. */
  momentumItems(m: number): MomentumItems;
  /** Parameters and (with `withOptimizer`) optimiser state, named, for checkpoints and best-epoch snapshots. */
  stateArrays(withOptimizer: boolean): StateArrays;
  restoreState: Stateful['restoreState'];
}
