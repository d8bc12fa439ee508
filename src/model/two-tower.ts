/**
 * The dual encoder: a user (query) tower and an item tower whose L2-normalised outputs are compared by dot
 * product (cosine). Towers do not share parameters.
 */
import type { Backend } from '../compute/backend.ts';
import { Rng } from '../util/rng.ts';
import type { DenseLayer } from './dense-layer.ts';
import type { Csr } from '../data/csr.ts';
import { EmbeddingTable, type SparseOptimizer } from './embedding-table.ts';
import { Tower, type TowerConfig } from './tower.ts';
import { HistoryPooling } from './user-history.ts';

export interface ModelConfig {
  user: TowerConfig;
  item: TowerConfig;
  sparseOptimizer: SparseOptimizer;
  sparseLr: number;
  denseLr: number;
  seed: number;
  /** L2 penalty λ on embedding rows used by a step and on MLP weights (absent in older models = 0). */
  l2?: number;
}

export class TwoTowerModel {
  readonly user: Tower;
  readonly item: Tower;
  /** The optimizer settings both towers read at every step (shared object: a learning-rate schedule scales it). */
  private readonly optim: { sparse: { lr: number }; denseLr: number };

  constructor(
    readonly config: ModelConfig,
    userFeatureValues: Int32Array[] = [],
    itemFeatureValues: Int32Array[] = [],
    userDenseValues: Float32Array[] = [],
    itemDenseValues: Float32Array[] = [],
  ) {
    const sparse = { kind: config.sparseOptimizer, lr: config.sparseLr, beta1: 0.9, beta2: 0.999, eps: config.sparseOptimizer === 'adagrad' ? 1e-10 : 1e-8, l2: config.l2 ?? 0 };
    const optim = { sparse, denseLr: config.denseLr, l2: config.l2 ?? 0 };
    this.optim = optim;
    this.user = new Tower('user', config.user, optim, userFeatureValues, userDenseValues);
    this.item = new Tower('item', config.item, optim, itemFeatureValues, itemDenseValues);
    if (this.user.outDim !== this.item.outDim) {
      throw new Error(`user tower outputs ${this.user.outDim} dims but item tower ${this.item.outDim}: the last MLP sizes must match`);
    }
    const h = config.user.history;
    if (h) {
      if (h.table === 'item' && config.item.idDim !== config.user.idDim) {
        throw new Error(`user history on the item table needs equal id sizes (user ${config.user.idDim}, item ${config.item.idDim})`);
      }
      const table = h.table === 'own' ? new EmbeddingTable('user.history', config.item.vocabSize, config.user.idDim, sparse) : this.item.idTable;
      this.user.history = new HistoryPooling(h, table, config.user.vocabSize);
    }
  }

  /** The user-history pooling (null when config.user.history is off). */
  get userHistory(): HistoryPooling | null {
    return this.user.history;
  }

  /** Sets each user's training items, read by the user tower when config.user.history is on (no-op otherwise). */
  setUserHistory(csr: Csr): void {
    this.user.history?.setHistory(csr);
  }

  /** The user tower's own history table (config.user.history.table 'own'), else null. */
  private get ownHistoryTable(): EmbeddingTable | null {
    const h = this.user.history;
    return h && h.config.table === 'own' ? h.table : null;
  }

  /**
   * The user id table a serving query tower (bundle, ONNX) uses: the id rows, or with user history each user's
   * mixed row g·e_u + (1 − g)·mean history, so a tower without history support computes the same embedding.
   */
  servingUserIdTable(backend?: Backend): Float32Array {
    const h = this.user.history;
    return h ? h.bake(this.user.idTable.data, this.user.config.idDim, backend) : this.user.idTable.data;
  }

  /** Sets both learning rates to `factor` × the configured ones (a learning-rate schedule's multiplier). */
  setLrScale(factor: number): void {
    this.optim.sparse.lr = this.config.sparseLr * factor;
    this.optim.denseLr = this.config.denseLr * factor;
  }

  get dim(): number {
    return this.user.outDim;
  }

  init(): void {
    const rng = new Rng(this.config.seed);
    this.user.init(rng);
    this.item.init(rng);
    this.ownHistoryTable?.initNormal(rng, 0.05);
  }

  /** Every named parameter and optimizer-state array, in a fixed order, for checkpoints. */
  tensors(withOptimizer: boolean): Array<[string, Float32Array]> {
    const out: Array<[string, Float32Array]> = [];
    for (const t of [this.user, this.item]) {
      for (const tab of [t.idTable, ...t.featTables]) {
        out.push([`${tab.name}.emb`, tab.data]);
        if (withOptimizer) {
          out.push([`${tab.name}.s1`, tab.state1]);
          if (tab.state2) out.push([`${tab.name}.s2`, tab.state2]);
        }
      }
      for (const [p, l] of denseLayerNames(t)) {
        out.push([`${p}.w`, l.w], [`${p}.b`, l.b]);
        if (withOptimizer) out.push([`${p}.mw`, l.mw], [`${p}.vw`, l.vw], [`${p}.mb`, l.mb], [`${p}.vb`, l.vb]);
      }
    }
    const own = this.ownHistoryTable;
    if (own) {
      out.push([`${own.name}.emb`, own.data]);
      if (withOptimizer) {
        out.push([`${own.name}.s1`, own.state1]);
        if (own.state2) out.push([`${own.name}.s2`, own.state2]);
      }
    }
    return out;
  }

  /** Optimizer step counters, for checkpoints. */
  steps(): Record<string, number> {
    const s: Record<string, number> = {};
    for (const t of [this.user, this.item]) {
      for (const tab of [t.idTable, ...t.featTables]) s[tab.name] = tab.step;
      for (const [p, l] of denseLayerNames(t)) s[p] = l.step;
    }
    const own = this.ownHistoryTable;
    if (own) s[own.name] = own.step;
    return s;
  }

  setSteps(s: Record<string, number>): void {
    for (const t of [this.user, this.item]) {
      for (const tab of [t.idTable, ...t.featTables]) tab.step = s[tab.name] ?? 0;
      for (const [p, l] of denseLayerNames(t)) l.step = s[p] ?? 0;
    }
    const own = this.ownHistoryTable;
    if (own) own.step = s[own.name] ?? 0;
  }

  embedAllItems(backend: Backend): Float32Array {
    return this.item.embedAll(backend);
  }
}

/** A tower's dense layers by saved name: `user.mlp0`, …, then `user.dense.<feature>` per dense-feature projection. */
function denseLayerNames(t: Tower): Array<[string, DenseLayer]> {
  return [...t.layers.map((l, i): [string, DenseLayer] => [`${t.name}.mlp${i}`, l]), ...t.projections.map((l, i): [string, DenseLayer] => [`${t.name}.dense.${t.dense[i].name}`, l])];
}
