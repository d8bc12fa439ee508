/**
 * A sequence (user) tower: maps each token of a packed batch of item histories to a d-vector h_t, the
 * representation of the history up to and including token t; the next item j is scored by ⟨h_t, e_j⟩ with
 * the tower's own item embedding table E (shared between input and output, as in SASRec).
 * Tables stay outside autograd: backward leaves the gradient w.r.t. each input token's gathered row in
 * `inputGrads`, which the trainer merges with the output-side gradients into one sparse update of E.
 */
import type { Backend } from '../compute/backend.ts';
import type { DenseLayer } from '../model/dense-layer.ts';
import type { EmbeddingTable } from '../model/embedding-table.ts';
import type { Param } from '../nn/param.ts';
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
  /**
   * Optimiser state for checkpoints (resume continues exactly): the named moment arrays (live, restored in place)
   * and the step counters, with their setter.
   */
  optimizerState(): { arrays: Array<[string, Float32Array]>; steps: number[]; setSteps(steps: number[]): void };
}

/** Dense optimiser settings shared by the towers (SASRec: Adam, lr 1e-3, β = (0.9, 0.98)). */
export interface DenseOptim {
  lr: number;
  beta1: number;
  beta2: number;
}

/** Optimiser state of dense layers, parameters and the item table (see SeqTower.optimizerState). */
export function towerOptimizerState(
  items: EmbeddingTable,
  params: Param[],
  layers: Array<[string, DenseLayer]>,
): { arrays: Array<[string, Float32Array]>; steps: number[]; setSteps(steps: number[]): void } {
  const arrays: Array<[string, Float32Array]> = [['item.emb.s1', items.state1]];
  if (items.state2) arrays.push(['item.emb.s2', items.state2]);
  for (const p of params) arrays.push([`${p.name}.m`, p.m], [`${p.name}.v`, p.v]);
  for (const [name, l] of layers) arrays.push([`${name}.mw`, l.mw], [`${name}.vw`, l.vw], [`${name}.mb`, l.mb], [`${name}.vb`, l.vb]);
  return {
    arrays,
    steps: [items.step, ...params.map((p) => p.step), ...layers.map(([, l]) => l.step)],
    setSteps(steps) {
      if (steps.length !== 1 + params.length + layers.length) throw new RangeError(`checkpoint has ${steps.length} optimiser step counters, this tower needs ${1 + params.length + layers.length}`);
      items.step = steps[0];
      params.forEach((p, i) => (p.step = steps[1 + i]));
      layers.forEach(([, l], i) => (l.step = steps[1 + params.length + i]));
    },
  };
}
