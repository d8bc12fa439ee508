/**
 * What a text tower is to the dual-encoder trainer: packed variable-length id sequences in, one
 * L2-normalised embedding per sequence out, a hand-written backward, and its own optimizer step.
 * A BoE tower reads a bag of hashed features; the transformer reads hashed unigram tokens in order.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';

/** Sequences back to back: sequence s has ids [offsets[s], offsets[s+1]). */
export interface PackedText {
  n: number;
  offsets: Int32Array;
  ids: Int32Array;
}

export interface TextTower {
  readonly kind: 'boe' | 'transformer';
  readonly outDim: number;
  /** n × outDim, unit rows (a buffer owned by the tower, valid until the next forward). */
  forward(b: Backend, batch: PackedText, train: boolean, rng: Rng): Float32Array;
  /** Gradients of the last forward from dL/d(output) (not modified). One backward per forward, then step(). */
  backward(b: Backend, dOut: Float32Array): void;
  /** One optimizer step on everything backward() touched; clears the gradients. */
  step(b: Backend): void;
  tensors(): Array<[string, Float32Array]>;
  /** Restores weights saved by tensors() (same configuration). */
  load(arrays: Map<string, Float32Array | Int32Array>): void;
}

export function packTexts(seqs: Int32Array[]): PackedText {
  const offsets = new Int32Array(seqs.length + 1);
  for (let i = 0; i < seqs.length; i++) offsets[i + 1] = offsets[i] + seqs[i].length;
  const ids = new Int32Array(offsets[seqs.length]);
  seqs.forEach((s, i) => ids.set(s, offsets[i]));
  return { n: seqs.length, offsets, ids };
}

export interface TowerOptim {
  /** Lazy Adam on hashed embedding rows. */
  lrSparse: number;
  /** Adam on dense weights. */
  lrDense: number;
}

export function loadInto(arrays: Map<string, Float32Array | Int32Array>, name: string, dst: Float32Array): void {
  const a = arrays.get(name);
  if (!a || a.length !== dst.length) throw new Error(`text model: tensor '${name}' missing or of the wrong size`);
  dst.set(a as Float32Array);
}
