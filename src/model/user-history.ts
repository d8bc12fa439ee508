/**
 * User-history aggregation for the user tower (SimpleX's "behaviour aggregation", Mao et al. CIKM 2021):
 *
 *   x_u = g · e_u + (1 − g) · mean_{i ∈ H(u)} E[i]
 *
 * replaces the user's id row e_u at the tower's input (before features, MLP and normalisation). H(u) is the
 * user's TRAINING items (never validation or test rows), capped at `maxLen` items by an evenly strided,
 * deterministic pick (so training, evaluation and serving see the same subset); E is the item tower's id table
 * (`table: 'item'`, shared: history gradients are merged into the item table's next sparse update) or a table of
 * the user tower's own (`table: 'own'`, numItems × idDim). A user with no history gets x_u = g · e_u.
 *
 * Why: a user's id row only learns from that user's rows; the mean of their items' rows is informed by every
 * user who shares an item, which is what graph recommenders (UltraGCN, LightGCN) exploit with neighbourhoods.
 */
import type { Backend, HistoryPoolArgs } from '../compute/backend.ts';
import { historyPoolForwardJs } from '../compute/js-history.ts';
import type { Csr } from '../data/csr.ts';
import type { EmbeddingTable } from './embedding-table.ts';

export interface UserHistoryConfig {
  pooling: 'mean';
  /** Weight g of the user's own id row; 1 − g goes to the history mean. */
  gate: number;
  /** At most this many history items per user (0 = all). */
  maxLen: number;
  /** Which table embeds the history items: the item tower's id table (shared) or the user tower's own. */
  table: 'item' | 'own';
}

export const defaultUserHistory: UserHistoryConfig = { pooling: 'mean', gate: 0.5, maxLen: 100, table: 'item' };

const EMPTY: Csr = { rows: 0, offsets: new Int32Array(1), cols: new Int32Array(0) };

export class HistoryPooling {
  private csr: Csr = EMPTY;
  private set = false;
  // The unique history items of a step and their summed gradients (the backward's output).
  private uniq = new Int32Array(0);
  private acc = new Float32Array(0);
  // The ids of the last training forward (the backward's rows).
  private ids = new Int32Array(0);

  constructor(
    readonly config: UserHistoryConfig,
    /** The table that embeds history items (numItems rows). */
    readonly table: EmbeddingTable,
    readonly numUsers: number,
  ) {}

  /** Each user's training items (rows = users, columns = items of `table`). */
  setHistory(csr: Csr): void {
    if (csr.rows !== this.numUsers) throw new Error(`user history: ${csr.rows} rows given for ${this.numUsers} users`);
    if (csr.offsets.length !== csr.rows + 1 || csr.offsets[0] !== 0 || csr.offsets[csr.rows] !== csr.cols.length) throw new Error('user history: offsets do not match the rows and entries');
    for (let u = 0; u < csr.rows; u++) {
      if (csr.offsets[u + 1] < csr.offsets[u]) throw new Error(`user history: offsets of user ${u} decrease`);
    }
    for (let i = 0; i < csr.cols.length; i++) {
      if (!(csr.cols[i] >= 0 && csr.cols[i] < this.table.rows)) throw new Error(`user history: entry ${i} holds item ${csr.cols[i]}, outside 0..${this.table.rows - 1}`);
    }
    this.csr = csr;
    this.set = true;
  }

  get history(): Csr {
    this.check();
    return this.csr;
  }

  get hasHistory(): boolean {
    return this.set;
  }

  private check(): void {
    if (!this.set) throw new Error('user tower: --user-history is on but no history was given (TwoTowerModel.setUserHistory)');
  }

  /** Number of history items user u contributes (0 for ids outside the vocabulary, −1). */
  count(u: number): number {
    if (u < 0 || u >= this.csr.rows) return 0;
    const len = this.csr.offsets[u + 1] - this.csr.offsets[u];
    const L = this.config.maxLen;
    return L > 0 ? Math.min(len, L) : len;
  }

  private args(ids: Int32Array, n: number, dim: number): HistoryPoolArgs {
    return { ids, n, dim, offsets: this.csr.offsets, cols: this.csr.cols, gate: this.config.gate, maxLen: this.config.maxLen };
  }

  /**
   * In place on the n×dim id block x (row r holds e_{ids[r]}, or zeros): x_r ← g·x_r + (1 − g)·mean history
   * (the backend's historyPoolForward). `training`: remember ids for the backward.
   */
  forward(b: Backend, ids: Int32Array, x: Float32Array, n: number, dim: number, training: boolean): void {
    this.check();
    if (training) {
      if (this.ids.length < n) this.ids = new Int32Array(Math.max(n, Math.ceil(this.ids.length * 1.5)));
      this.ids.set(ids.subarray(0, n));
    }
    b.historyPoolForward(this.args(ids, n, dim), this.table.data, x);
  }

  /**
   * From dX (n×dim, gradient w.r.t. the mixed block of the last training forward): returns the history items'
   * summed gradients (unique ids, u×dim) and scales dX in place by g (the id rows' gradient).
   */
  backward(b: Backend, dX: Float32Array, n: number, dim: number): { ids: Int32Array; grads: Float32Array } {
    const cap = Math.min(this.table.rows, this.csr.cols.length + 1);
    if (this.uniq.length < cap || this.acc.length < cap * dim) {
      this.uniq = new Int32Array(cap);
      this.acc = new Float32Array(cap * dim);
    }
    const u = b.historyPoolBackward(this.args(this.ids, n, dim), this.table.rows, dX, this.uniq, this.acc);
    return { ids: this.uniq.subarray(0, u), grads: this.acc.subarray(0, u * dim) };
  }

  /**
   * Every user's mixed id row (numUsers × dim) from `idTable`: what a serving bundle / ONNX graph stores as its id
   * table. Without a backend, the portable kernel (same results as the native one, bit for bit).
   */
  bake(idTable: Float32Array, dim: number, b?: Backend): Float32Array {
    this.check();
    const out = idTable.slice(0, this.numUsers * dim);
    const ids = Int32Array.from({ length: this.numUsers }, (_, i) => i);
    const a = this.args(ids, this.numUsers, dim);
    if (b) b.historyPoolForward(a, this.table.data, out);
    else historyPoolForwardJs(a, this.table.data, out);
    return out;
  }
}
