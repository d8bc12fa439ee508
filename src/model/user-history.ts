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
  // Gradient accumulation over the unique history items of a step.
  private slot: Int32Array;
  private uniq = new Int32Array(0);
  private acc = new Float32Array(0);
  // The ids of the last training forward (the backward's rows).
  private ids = new Int32Array(0);

  constructor(
    readonly config: UserHistoryConfig,
    /** The table that embeds history items (numItems rows). */
    readonly table: EmbeddingTable,
    readonly numUsers: number,
  ) {
    this.slot = new Int32Array(table.rows).fill(-1);
  }

  /** Each user's training items (rows = users, columns = items of `table`). */
  setHistory(csr: Csr): void {
    if (csr.rows !== this.numUsers) throw new Error(`user history: ${csr.rows} rows given for ${this.numUsers} users`);
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

  /** Positions (into csr.cols) of user u's history items used: all, or `maxLen` evenly strided ones. */
  private pick(u: number, k: number): number {
    const s = this.csr.offsets[u];
    const len = this.csr.offsets[u + 1] - s;
    const L = this.config.maxLen;
    if (L <= 0 || len <= L) return s + k;
    return s + Math.floor((k * len) / L);
  }

  /** Number of history items user u contributes (0 for ids outside the vocabulary, −1). */
  count(u: number): number {
    if (u < 0 || u >= this.csr.rows) return 0;
    const len = this.csr.offsets[u + 1] - this.csr.offsets[u];
    const L = this.config.maxLen;
    return L > 0 ? Math.min(len, L) : len;
  }

  /**
   * In place on the n×dim id block x (row r holds e_{ids[r]}, or zeros): x_r ← g·x_r + (1 − g)·mean history.
   * `training`: remember ids for the backward.
   */
  forward(ids: Int32Array, x: Float32Array, n: number, dim: number, training: boolean): void {
    this.check();
    const g = this.config.gate;
    const E = this.table.data;
    const cols = this.csr.cols;
    if (training) {
      if (this.ids.length < n) this.ids = new Int32Array(Math.max(n, Math.ceil(this.ids.length * 1.5)));
      this.ids.set(ids.subarray(0, n));
    }
    for (let r = 0; r < n; r++) {
      const o = r * dim;
      for (let j = 0; j < dim; j++) x[o + j] *= g;
      const u = ids[r];
      const c = this.count(u);
      if (c === 0) continue;
      const w = (1 - g) / c;
      for (let k = 0; k < c; k++) {
        const eo = cols[this.pick(u, k)] * dim;
        for (let j = 0; j < dim; j++) x[o + j] += w * E[eo + j];
      }
    }
  }

  /**
   * From dX (n×dim, gradient w.r.t. the mixed block of the last training forward): returns the history items'
   * summed gradients (unique ids, u×dim) and scales dX in place by g (the id rows' gradient).
   */
  backward(dX: Float32Array, n: number, dim: number): { ids: Int32Array; grads: Float32Array } {
    const g = this.config.gate;
    const cols = this.csr.cols;
    const cap = Math.min(this.table.rows, this.csr.cols.length + 1);
    if (this.uniq.length < cap) {
      this.uniq = new Int32Array(cap);
      this.acc = new Float32Array(cap * dim);
    }
    let u = 0;
    for (let r = 0; r < n; r++) {
      const user = this.ids[r];
      const c = this.count(user);
      const o = r * dim;
      if (c > 0) {
        const w = (1 - g) / c;
        for (let k = 0; k < c; k++) {
          const item = cols[this.pick(user, k)];
          let s = this.slot[item];
          if (s < 0) {
            s = u++;
            this.slot[item] = s;
            this.uniq[s] = item;
            this.acc.fill(0, s * dim, (s + 1) * dim);
          }
          const ao = s * dim;
          for (let j = 0; j < dim; j++) this.acc[ao + j] += w * dX[o + j];
        }
      }
      for (let j = 0; j < dim; j++) dX[o + j] *= g;
    }
    for (let s = 0; s < u; s++) this.slot[this.uniq[s]] = -1;
    return { ids: this.uniq.subarray(0, u), grads: this.acc.subarray(0, u * dim) };
  }

  /** Every user's mixed id row (numUsers × dim) from `idTable`: what a serving bundle / ONNX graph stores as its id table. */
  bake(idTable: Float32Array, dim: number): Float32Array {
    const out = idTable.slice(0, this.numUsers * dim);
    const ids = Int32Array.from({ length: this.numUsers }, (_, i) => i);
    this.forward(ids, out, this.numUsers, dim, false);
    return out;
  }
}
