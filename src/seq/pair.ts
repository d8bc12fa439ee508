/**
 * A sequence tower as an EncoderPair (model/encoder.ts), so the one contrastive step trains it with every recipe
 * module: rows are the tokens of a packed batch (row t: the history up to t), a row's user is its sequence's
 * user and its positive the next item; the item side is the tower's own item table (gathered rows, no tower),
 * shared with the input side as in SASRec. backward merges the output-side row gradients with the tower's
 * input-side ones (`inputGrads()`) into ONE sparse update of the table, applied by step() with Adam on the
 * dense parameters. With score 'cosine' both sides are L2-normalised (scores are cosines / τ).
 */
import type { Backend } from '../compute/backend.ts';
import type { EncoderBatch, EncoderPair, MomentumItems } from '../model/encoder.ts';
import type { EmbeddingTable } from '../model/embedding-table.ts';
import { Buffers } from '../nn/buffers.ts';
import { restoreInto, type NamedArray, type StateArrays } from '../util/state.ts';
import type { Rng } from '../util/rng.ts';
import type { PackedBatch } from './packed.ts';
import type { SeqTower } from './tower.ts';

export type ScoreKind = 'dot' | 'cosine';

/** The step's view of a packed batch: one row per token, users per token, targets as positives. */
export function seqBatch(batch: PackedBatch): EncoderBatch<PackedBatch> {
  const R = batch.tokens;
  const users = new Int32Array(R);
  for (let t = 0; t < R; t++) users[t] = batch.users[batch.seqOf[t]];
  return { input: batch, rows: R, users, items: batch.targets.subarray(0, R) };
}

/** Rows in the score space: as they are (dot) or L2-normalised (cosine), with the backward of the latter. */
export class ScoreSpace {
  private readonly buf = new Buffers();
  constructor(readonly cosine: boolean) {}

  /** X (n×d) in score space; `name` keeps the norms for back(). */
  out(b: Backend, name: string, X: Float32Array, n: number, d: number): Float32Array {
    if (!this.cosine) return X;
    const y = this.buf.f32(name, n * d);
    b.l2normForward(X, y, this.buf.f32(name + '.norm', n), n, d);
    return y;
  }

  /** dL/dX from dL/dY of the last out(name) (written into dX; may alias dY). */
  back(b: Backend, name: string, dY: Float32Array, dX: Float32Array, n: number, d: number): void {
    if (!this.cosine) {
      if (dX !== dY) dX.set(dY.subarray(0, n * d));
      return;
    }
    b.l2normBackward(this.buf.f32(name, n * d), this.buf.f32(name + '.norm', n), dY, dX, n, d);
  }
}

export class SeqPair implements EncoderPair<PackedBatch> {
  private readonly buf = new Buffers();
  private readonly space: ScoreSpace;
  private readonly baseLr: number;
  private readonly baseItemLr: number;
  private R = 0;
  private n = 0;
  private merged = 0;
  /** The item side of the last forward was the whole catalogue in id order (the full-catalogue softmax). */
  private everyItem = false;
  /** With everyItem: the item side's gradient (numItems × dim), updated in place by step(). */
  private itemGrads: Float32Array = new Float32Array(0);

  constructor(
    readonly tower: SeqTower,
    readonly score: ScoreKind,
  ) {
    this.space = new ScoreSpace(score === 'cosine');
    this.baseLr = tower.optim.lr;
    this.baseItemLr = tower.items.opt.lr;
  }

  get dim(): number {
    return this.tower.dim;
  }

  get numItems(): number {
    return this.tower.items.rows;
  }

  forward(b: Backend, batch: EncoderBatch<PackedBatch>, ids: Int32Array, rng: Rng): { q: Float32Array; c: Float32Array } {
    const d = this.dim;
    const R = batch.rows;
    const n = ids.length;
    const H = this.tower.forward(b, batch.input, true, rng);
    // Token input rows first, the output-side rows after: backward fills the gradients in the same order.
    const rows = this.buf.i32('rows', R + n);
    rows.set(batch.input.items.subarray(0, R));
    rows.set(ids, R);
    // Every item in order (the full catalogue): the table itself, no copy (nothing writes c before step()).
    const E = this.tower.items.data;
    let c = E;
    this.everyItem = isEveryItem(ids, this.numItems);
    if (!this.everyItem) {
      c = this.buf.f32('c', n * d);
      b.gatherRows(E, ids, c, d);
    }
    this.R = R;
    this.n = n;
    this.merged = 0;
    return { q: this.space.out(b, 'q', H, R, d), c: this.space.out(b, 'c', c, n, d) };
  }

  backward(b: Backend, dq: Float32Array, dc: Float32Array): void {
    const d = this.dim;
    const { R, n } = this;
    const dH = this.buf.f32('dH', R * d);
    this.space.back(b, 'q', dq, dH, R, d);
    this.tower.backward(b, dH);
    if (this.everyItem) {
      // The whole table's gradient stays where the step wrote it (dot scores: dc itself, which the step
      // refills every step); step() adds the input side's rows to it and updates every row.
      this.buf.f32('grads', R * d).set(this.tower.inputGrads().subarray(0, R * d));
      this.itemGrads = this.space.cosine ? this.buf.f32('itemGrads', n * d) : dc;
      this.space.back(b, 'c', dc, this.itemGrads, n, d);
      this.merged = R + n;
      return;
    }
    const grads = this.buf.f32('grads', (R + n) * d);
    grads.set(this.tower.inputGrads().subarray(0, R * d));
    this.space.back(b, 'c', dc, grads.subarray(R * d), n, d);
    this.merged = R + n;
  }

  step(b: Backend): void {
    const d = this.dim;
    const m = this.merged;
    if (this.everyItem && m > 0) {
      const R = this.R;
      this.tower.items.applyEveryRow(b, this.buf.i32('rows', R + this.n).subarray(0, R), this.buf.f32('grads', R * d), this.itemGrads);
    } else this.tower.items.applyGradients(b, this.buf.i32('rows', m), this.buf.f32('grads', m * d));
    this.tower.stepDense(b);
    this.merged = 0;
  }

  setLrScale(factor: number): void {
    this.tower.optim.lr = this.baseLr * factor;
    this.tower.items.opt.lr = this.baseItemLr * factor;
  }

  /** Inference outputs of every token of `batch` in score space (no dropout): tokens × dim, a fresh array. */
  inferQueries(b: Backend, batch: PackedBatch, rng: Rng): Float32Array {
    const H = this.tower.forward(b, batch, false, rng);
    return this.space.out(b, 'iq', H, batch.tokens, this.dim).slice(0, batch.tokens * this.dim);
  }

  embedItems(b: Backend, ids: Int32Array, out: Float32Array): void {
    const d = this.dim;
    const c = this.buf.f32('ec', ids.length * d);
    b.gatherRows(this.tower.items.data, ids, c, d);
    out.set(this.space.out(b, 'ec.n', c, ids.length, d).subarray(0, ids.length * d));
  }

  momentumItems(m: number): MomentumItems {
    return new TableMomentum(this.tower.items, m, this.space.cosine);
  }

  /** The tower's parameters, and with `withOptimizer` its optimiser moments and step counters (`opt.steps`). */
  stateArrays(withOptimizer: boolean): StateArrays {
    const out: StateArrays = [...this.tower.tensors()];
    if (withOptimizer) {
      const o = this.tower.optimizerState();
      out.push(...o.arrays.map(([n, a]): [string, NamedArray] => [`opt.${n}`, a]), ['opt.steps', Int32Array.from(o.steps)]);
    }
    return out;
  }

  /** Restores what stateArrays wrote (the optimiser state only when it was saved). */
  restoreState(get: (name: string) => NamedArray | undefined): void {
    for (const [name, a] of this.tower.tensors()) restoreInto(get, name, a);
    const steps = get('opt.steps');
    if (!steps) return;
    const o = this.tower.optimizerState();
    for (const [n, a] of o.arrays) restoreInto(get, `opt.${n}`, a);
    o.setSteps(Array.from(steps));
  }
}

function isEveryItem(ids: Int32Array, n: number): boolean {
  if (ids.length !== n) return false;
  for (let j = 0; j < n; j++) if (ids[j] !== j) return false;
  return true;
}

/**
 * A momentum (EMA) copy of an item table: θ_m ← m·θ_m + (1−m)·θ per step, applied lazily per row when read
 * (a row last synchronised k steps ago becomes m^k·row_m + (1−m^k)·row), as model/momentum.ts does for towers.
 */
export class TableMomentum implements MomentumItems {
  private readonly shadow: Float32Array;
  private readonly lastSync: Int32Array;
  private readonly space: ScoreSpace;
  private readonly buf = new Buffers();
  private t = 0;

  constructor(
    private readonly table: Pick<EmbeddingTable, 'data' | 'rows' | 'dim'>,
    readonly m: number,
    cosine: boolean,
  ) {
    this.shadow = table.data.slice();
    this.lastSync = new Int32Array(table.rows);
    this.space = new ScoreSpace(cosine);
  }

  update(): void {
    this.t++;
  }

  embed(b: Backend, ids: Int32Array, out: Float32Array): void {
    const d = this.table.dim;
    const src = this.table.data;
    for (let r = 0; r < ids.length; r++) {
      const row = ids[r];
      const k = this.t - this.lastSync[row];
      if (k <= 0) continue;
      const f = Math.pow(this.m, k);
      const o = row * d;
      for (let j = 0; j < d; j++) this.shadow[o + j] = f * this.shadow[o + j] + (1 - f) * src[o + j];
      this.lastSync[row] = this.t;
    }
    const c = this.buf.f32('c', ids.length * d);
    b.gatherRows(this.shadow, ids, c, d);
    out.set(this.space.out(b, 'n', c, ids.length, d).subarray(0, ids.length * d));
  }

  stateArrays(): StateArrays {
    return [
      ['momentum.step', Int32Array.of(this.t)],
      ['momentum.table0', this.shadow],
      ['momentum.sync0', this.lastSync],
    ];
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    const t = new Int32Array(1);
    restoreInto(get, 'momentum.step', t);
    this.t = t[0];
    restoreInto(get, 'momentum.table0', this.shadow);
    restoreInto(get, 'momentum.sync0', this.lastSync);
  }
}
