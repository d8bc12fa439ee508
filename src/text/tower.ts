/**
 * What a text tower is to the dual-encoder trainer: packed variable-length id sequences in, one
 * L2-normalised embedding per sequence out, a hand-written backward, and its own optimizer step.
 * A BoE tower reads a bag of hashed features; the transformer reads hashed unigram tokens in order.
 */
import type { Backend } from '../compute/backend.ts';
import type { DenseLayer } from '../model/dense-layer.ts';
import type { EmbeddingTable } from '../model/embedding-table.ts';
import type { Param } from '../nn/param.ts';
import type { Rng } from '../util/rng.ts';
import { restoreInto, type NamedArray, type StateArrays } from '../util/state.ts';

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
  /** Optimiser state (Adam moments and step counts), named, for checkpoints; restored by restoreOptimizer. */
  optimizerState(): StateArrays;
  restoreOptimizer(get: (name: string) => NamedArray | undefined): void;
  /** Multiplies both learning rates by `factor` of their configured values (learning-rate schedules). */
  setLrScale(factor: number): void;
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

/** Optimiser state of the tower's parts, under stable names: a sparse table's moments, Adam of dense layers and params. */
export function optimizerStateOf(table: EmbeddingTable, layers: Array<[string, DenseLayer]>, params: Param[]): StateArrays {
  const out: StateArrays = [[`${table.name}.opt.step`, Int32Array.of(table.step)], [`${table.name}.opt.s1`, table.state1]];
  if (table.state2) out.push([`${table.name}.opt.s2`, table.state2]);
  for (const [n, l] of layers) out.push([`${n}.opt.step`, Int32Array.of(l.step)], [`${n}.opt.mw`, l.mw], [`${n}.opt.vw`, l.vw], [`${n}.opt.mb`, l.mb], [`${n}.opt.vb`, l.vb]);
  for (const p of params) out.push([`${p.name}.opt.step`, Int32Array.of(p.step)], [`${p.name}.opt.m`, p.m], [`${p.name}.opt.v`, p.v]);
  return out;
}

export function restoreOptimizerOf(get: (name: string) => NamedArray | undefined, table: EmbeddingTable, layers: Array<[string, DenseLayer]>, params: Param[]): void {
  const step = new Int32Array(1);
  restoreInto(get, `${table.name}.opt.step`, step);
  table.step = step[0];
  restoreInto(get, `${table.name}.opt.s1`, table.state1);
  if (table.state2) restoreInto(get, `${table.name}.opt.s2`, table.state2);
  for (const [n, l] of layers) {
    restoreInto(get, `${n}.opt.step`, step);
    l.step = step[0];
    restoreInto(get, `${n}.opt.mw`, l.mw);
    restoreInto(get, `${n}.opt.vw`, l.vw);
    restoreInto(get, `${n}.opt.mb`, l.mb);
    restoreInto(get, `${n}.opt.vb`, l.vb);
  }
  for (const p of params) {
    restoreInto(get, `${p.name}.opt.step`, step);
    p.step = step[0];
    restoreInto(get, `${p.name}.opt.m`, p.m);
    restoreInto(get, `${p.name}.opt.v`, p.v);
  }
}
