/**
 * An id embedding table kept out of autograd: a plain Float32Array with sparse row updates.
 * Each step receives the gradient of every gathered row (duplicates allowed), sums duplicates, and updates
 * only the touched rows with row-wise Adagrad or lazy Adam (the optimizer state of untouched rows is not
 * decayed, as in TF's LazyAdam and torch's SparseAdam).
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';

export type SparseOptimizer = 'adagrad' | 'lazyadam';

export interface SparseOptimizerConfig {
  kind: SparseOptimizer;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 penalty λ‖row‖² on every row a step touches (gradient 2λ·row added before the update); 0 = none. */
  l2?: number;
}

export class EmbeddingTable {
  readonly data: Float32Array;
  state1: Float32Array;
  state2: Float32Array | null;
  step = 0;
  // Duplicate-summing scratch: slot[id] is the id's position in `uniq` during a step, else -1.
  private readonly slot: Int32Array;
  private uniq = new Int32Array(0);
  private summed = new Float32Array(0);

  constructor(
    readonly name: string,
    readonly rows: number,
    readonly dim: number,
    readonly opt: SparseOptimizerConfig,
  ) {
    this.data = new Float32Array(rows * dim);
    this.state1 = new Float32Array(opt.kind === 'adagrad' ? rows : rows * dim);
    this.state2 = opt.kind === 'lazyadam' ? new Float32Array(rows * dim) : null;
    if (opt.kind === 'adagrad') this.state1.fill(0.1); // Adagrad's usual initial accumulator
    this.slot = new Int32Array(rows).fill(-1);
  }

  initNormal(rng: Rng, std: number): void {
    for (let i = 0; i < this.data.length; i++) this.data[i] = rng.normal() * std;
  }

  /**
   * Gradients another module computed for rows of this table (a user tower pooling item rows, user-history.ts),
   * merged into the next applyGradients so the table takes one optimizer step per training step. Copied.
   */
  readonly pending: Array<{ ids: Int32Array; grads: Float32Array }> = [];

  addPending(ids: Int32Array, grads: Float32Array): void {
    if (ids.length) this.pending.push({ ids: ids.slice(), grads: grads.slice(0, ids.length * this.dim) });
  }

  /**
   * One optimizer step when the step's gradient covers every row of the table, in id order (`rowGrads`,
   * rows × dim: the full-catalogue softmax's item-side gradient), plus per-position gradients `grads` of rows
   * `ids` (the input side, duplicates allowed). The same update, bit for bit, as
   * applyGradients([...ids, 0, 1, …, rows − 1], [grads; rowGrads]), without its copy of the whole table's
   * gradient into scratch: the duplicates among `ids` are summed in order of appearance and added to their
   * rows of `rowGrads` (which is overwritten with the summed gradients), then one update of every row
   * (LazyAdam over all rows; the native backend updates the rows in parallel).
   */
  applyEveryRow(backend: Backend, ids: Int32Array, grads: Float32Array, rowGrads: Float32Array): void {
    const dim = this.dim;
    if (this.pending.length || (this.opt.l2 ?? 0) > 0 || this.opt.kind !== 'lazyadam') {
      const all = new Int32Array(ids.length + this.rows);
      all.set(ids);
      for (let j = 0; j < this.rows; j++) all[ids.length + j] = j;
      const g = new Float32Array(all.length * dim);
      g.set(grads.subarray(0, ids.length * dim));
      g.set(rowGrads.subarray(0, this.rows * dim), ids.length * dim);
      this.applyGradients(backend, all, g);
      return;
    }
    const n = ids.length;
    if (this.uniq.length < n) {
      this.uniq = new Int32Array(n);
      this.summed = new Float32Array(n * dim);
    }
    const u = backend.mergeRows(ids, grads, n, dim, this.slot, this.uniq, this.summed, 0);
    for (let s = 0; s < u; s++) {
      const id = this.uniq[s];
      this.slot[id] = -1;
      const ro = id * dim;
      const so = s * dim;
      for (let j = 0; j < dim; j++) rowGrads[ro + j] = this.summed[so + j] + rowGrads[ro + j];
    }
    if (this.everyRowIds.length !== this.rows) this.everyRowIds = Int32Array.from({ length: this.rows }, (_, i) => i);
    this.step++;
    const o = this.opt;
    backend.sparseUpdate(o.kind, this.data, this.state1, this.state2, this.everyRowIds, rowGrads, this.rows, dim, o.lr, o.beta1, o.beta2, o.eps, this.step);
  }

  private everyRowIds = new Int32Array(0);

  /** Applies one optimizer step from per-position gradients `grads` (ids.length × dim) of rows `ids` (plus any pending ones). */
  applyGradients(backend: Backend, ids: Int32Array, grads: Float32Array): void {
    const n = ids.length + this.pending.reduce((a, p) => a + p.ids.length, 0);
    const dim = this.dim;
    if (this.uniq.length < n) {
      this.uniq = new Int32Array(n);
      this.summed = new Float32Array(n * dim);
    }
    let u = 0;
    for (const part of [{ ids, grads }, ...this.pending]) u = backend.mergeRows(part.ids, part.grads, part.ids.length, dim, this.slot, this.uniq, this.summed, u);
    this.pending.length = 0;
    for (let s = 0; s < u; s++) this.slot[this.uniq[s]] = -1;
    const l2 = this.opt.l2 ?? 0;
    if (l2 > 0) {
      // Penalise the rows the batch used (as MF's per-batch regulariser does), not the whole table.
      const c = 2 * l2;
      for (let s = 0; s < u; s++) {
        const ro = this.uniq[s] * dim;
        const so = s * dim;
        for (let j = 0; j < dim; j++) this.summed[so + j] += c * this.data[ro + j];
      }
    }
    this.step++;
    const o = this.opt;
    backend.sparseUpdate(o.kind, this.data, this.state1, this.state2, this.uniq, this.summed, u, dim, o.lr, o.beta1, o.beta2, o.eps, this.step);
  }
}
