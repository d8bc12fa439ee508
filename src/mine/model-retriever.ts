/**
 * A trained two-tower model as a Retriever: the user tower embeds the queries, and the top-k items come from
 * exact search (blocked GEMM + top-k over every item) or from an HNSW index (usearch) over the item tower's
 * embeddings. Scores are cosines (both towers are L2-normalised). Each user's seen (training) items can be
 * excluded, so lists hold unseen candidates only; HNSW asks for k + |seen| and drops the seen ones.
 * `refresh()` re-embeds the items (and rebuilds the index) from the model's current weights: the online,
 * ANCE-style mining of a live model; `liveRetrievers` hands that to the online mined source (sampling/mined.ts)
 * without sampling importing the model.
 */
import type { Backend } from '../compute/backend.ts';
import type { Csr } from '../data/csr.ts';
import { AnnIndex, defaultAnnConfig, type Hits } from '../index/ann-index.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import type { LiveRetriever, LiveRetrieverFactory } from '../sampling/live-retriever.ts';
import type { RankedLists, Retriever } from './types.ts';

export interface ModelRetrieverOptions {
  name?: string;
  /** 'exact' (default), 'hnsw' (usearch, inner product), or 'index': the given `index`. */
  search?: 'exact' | 'hnsw' | 'index';
  /** With search 'index': an index over this model's items built elsewhere (e.g. a LanceDB table); not rebuilt by refresh(). */
  index?: { search(q: Float32Array, k: number): Hits };
  /** Items per user to leave out of the lists (null = none). */
  exclude?: Csr | null;
  /** HNSW search breadth (ef); raised to at least the asked k. */
  expansionSearch?: number;
}

export class ModelRetriever implements Retriever, LiveRetriever {
  readonly name: string;
  itemEmb: Float32Array;
  private index: { search(q: Float32Array, k: number): Hits } | null = null;
  /** Seconds spent in the last refresh (embedding + index build). */
  lastRefreshSeconds = 0;

  constructor(
    private readonly backend: Backend,
    readonly model: TwoTowerModel,
    private readonly opts: ModelRetrieverOptions = {},
  ) {
    this.name = opts.name ?? 'model';
    this.itemEmb = new Float32Array(0);
    this.refresh();
  }

  get dim(): number {
    return this.model.dim;
  }

  get numItems(): number {
    return this.itemEmb.length / this.model.dim;
  }

  refresh(): void {
    const t0 = performance.now();
    this.itemEmb = this.model.embedAllItems(this.backend);
    if (this.opts.search === 'index') {
      if (!this.opts.index) throw new Error("ModelRetriever: search 'index' needs an index");
      this.index = this.opts.index;
    } else if (this.opts.search === 'hnsw') {
      const ef = Math.max(this.opts.expansionSearch ?? defaultAnnConfig.expansionSearch, 16);
      this.index = AnnIndex.build(this.itemEmb, this.numItems, this.model.dim, { ...defaultAnnConfig, metric: 'ip', expansionSearch: ef }, { threads: 1 });
    }
    this.lastRefreshSeconds = (performance.now() - t0) / 1000;
  }

  embedUsers(users: Int32Array): Float32Array {
    const out = new Float32Array(users.length * this.model.dim);
    if (users.length) this.model.user.embed(this.backend, users, out);
    return out;
  }

  /** Cosine of each (users[i], items[i]) pair with the current embeddings. */
  pairScores(users: Int32Array, items: Int32Array): Float32Array {
    const d = this.model.dim;
    const u = this.embedUsers(users);
    const out = new Float32Array(users.length);
    for (let i = 0; i < users.length; i++) {
      const o = items[i] * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += u[i * d + t] * this.itemEmb[o + t];
      out[i] = s;
    }
    return out;
  }

  retrieve(queries: Int32Array, k: number): RankedLists {
    const rows = queries.length;
    const d = this.model.dim;
    const n = this.numItems;
    const ids = new Int32Array(rows * k).fill(-1);
    const scores = new Float32Array(rows * k);
    const ex = this.opts.exclude ?? null;
    const block = 256;
    const kk = Math.min(k, n);
    const sc = new Float32Array(Math.min(block, rows) * n);
    const ti = new Int32Array(Math.min(block, rows) * kk);
    const tv = new Float32Array(Math.min(block, rows) * kk);
    for (let s = 0; s < rows; s += block) {
      const e = Math.min(rows, s + block);
      const m = e - s;
      const u = this.embedUsers(queries.subarray(s, e));
      if (this.index) {
        for (let r = 0; r < m; r++) {
          const q = queries[s + r];
          const seen = ex && q < ex.rows ? ex.cols.subarray(ex.offsets[q], ex.offsets[q + 1]) : null;
          const skip = seen ? new Set(seen) : null;
          const hits = this.index.search(u.subarray(r * d, (r + 1) * d), k + (seen?.length ?? 0));
          let w = 0;
          for (let i = 0; i < hits.ids.length && w < k; i++) {
            if (skip?.has(hits.ids[i])) continue;
            ids[(s + r) * k + w] = hits.ids[i];
            scores[(s + r) * k + w] = hits.scores[i];
            w++;
          }
        }
        continue;
      }
      const block_ = sc.subarray(0, m * n);
      this.backend.gemm(false, true, m, n, d, 1, u, this.itemEmb, 0, block_);
      if (ex) {
        for (let r = 0; r < m; r++) {
          const q = queries[s + r];
          if (q >= ex.rows) continue;
          for (let p = ex.offsets[q]; p < ex.offsets[q + 1]; p++) block_[r * n + ex.cols[p]] = -Infinity;
        }
      }
      if (kk <= 0) continue;
      const bi = ti.subarray(0, m * kk);
      const bv = tv.subarray(0, m * kk);
      this.backend.topkRows(block_, m, n, kk, bi, bv);
      for (let r = 0; r < m; r++) {
        for (let i = 0; i < kk; i++) {
          const id = bi[r * kk + i];
          if (id < 0) break;
          ids[(s + r) * k + i] = id;
          scores[(s + r) * k + i] = bv[r * kk + i];
        }
      }
    }
    return { rows, k, ids, scores };
  }
}

/** Online mining's retrievers over a model being trained (the trainer passes this to buildSources). */
export function liveRetrievers(backend: Backend, model: TwoTowerModel): LiveRetrieverFactory {
  return (o) => new ModelRetriever(backend, model, { name: 'online', search: o.search, exclude: o.exclude });
}
