/**
 * The batch-composition seam: which training instances (rows of the (user, item) interaction arrays) form
 * each mini-batch. The trainer asks a composer for every step's rows; the negatives a row sees in-batch are
 * the other rows' items, so how batches are composed decides how hard in-batch negatives are
 * (BatchSampler, Yang et al. KDD 2023). Epochs have a fixed number of steps, as with plain shuffling.
 */
import type { Backend } from '../../compute/backend.ts';
import type { Rng } from '../../util/rng.ts';

export interface BatchComposer {
  readonly type: string;
  /**
   * Prepares epoch `epoch` (1-based) from that epoch's seeded generator. Everything an epoch draws derives from
   * it (or from the run's seed), so a run resumed at an epoch boundary composes the same batches.
   */
  beginEpoch(epoch: number, rng: Rng): void;
  /** The instance rows of step `step` (0-based) of the current epoch, batchSize distinct rows; a view valid until the next call. */
  batch(step: number): Int32Array;
  /** Cumulative counters (graph builds and seconds, leftovers, ...) for logs and the train summary. */
  stats(): Record<string, number>;
}

/** Current embeddings of every user and item (vocab×dim each, L2-normalised tower outputs). */
export interface EmbeddingSnapshot {
  users: Float32Array;
  items: Float32Array;
  dim: number;
}

/** One proximity-graph build, reported to the trainer's log. */
export interface GraphBuildInfo {
  epoch: number;
  step: number;
  /** 'cooccurrence' (warm-up, from the data) or 'model' (current embeddings). */
  source: 'cooccurrence' | 'model';
  seconds: number;
}

export interface ComposerContext {
  backend: Backend;
  trainUsers: Int32Array;
  trainItems: Int32Array;
  numItems: number;
  batchSize: number;
  stepsPerEpoch: number;
  /** The run's seed (for draws that must not depend on the epoch, like the warm-up graph). */
  seed: number;
  /** Current model embeddings, for composers that look at the model (called at graph refreshes). */
  embed?: () => EmbeddingSnapshot;
  /** Called after every proximity-graph build. */
  onGraph?: (info: GraphBuildInfo) => void;
}
