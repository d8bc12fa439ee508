/**
 * A sequence (user) tower: maps each token of a packed batch of item histories to a d-vector h_t, the
 * representation of the history up to and including token t; the next item j is scored by ⟨h_t, e_j⟩ with
 * the tower's own item embedding table E (shared between input and output, as in SASRec).
 * Tables stay outside autograd: backward leaves the gradient w.r.t. each input token's gathered row in
 * `inputGrads`, which the trainer merges with the output-side gradients into one sparse update of E.
 */
import type { Backend } from '../compute/backend.ts';
import type { EmbeddingTable } from '../model/embedding-table.ts';
import type { Rng } from '../util/rng.ts';
import type { PackedBatch } from './packed.ts';

export interface SeqTower {
  readonly kind: string;
  readonly dim: number;
  readonly maxLen: number;
  readonly items: EmbeddingTable;
  /** Dense optimiser settings (the trainer's learning-rate schedule sets `lr` here and on `items.opt`). */
  readonly optim: DenseOptim;
  /** tokens×dim outputs (a view valid until the next forward). Dropout only when `train`. */
  forward(backend: Backend, batch: PackedBatch, train: boolean, rng: Rng): Float32Array;
  /** Back-propagates dH (tokens×dim, may be overwritten); accumulates dense gradients. */
  backward(backend: Backend, dH: Float32Array): void;
  /** Gradient w.r.t. the gathered input row of every token of the last forward (tokens×dim). */
  inputGrads(): Float32Array;
  /** Adam step on the dense parameters (then clears their gradients). */
  stepDense(backend: Backend): void;
  /** Every parameter array, named (for checkpoints, best-epoch snapshots and tests). */
  tensors(): Array<[string, Float32Array]>;
}

/** Dense optimiser settings shared by the towers (SASRec: Adam, lr 1e-3, β = (0.9, 0.98)). */
export interface DenseOptim {
  lr: number;
  beta1: number;
  beta2: number;
}
