/**
 * Exact maximum-inner-product search: the reference that ANN results are checked against, and the fallback
 * when a filter leaves too few candidates for the graph search to find. Embeddings are L2-normalised, so the
 * inner product is also the cosine.
 */
import type { Backend } from '../compute/backend.ts';
import type { Hits } from './ann-index.ts';

/** Reusable score buffers, so a server answering many queries does not allocate N floats per request. */
export class ExactSearcher {
  private scores = new Float32Array(0);
  private idx = new Int32Array(0);
  private val = new Float32Array(0);

  constructor(
    private readonly backend: Backend,
    /** n×dim row-major, L2-normalised. */
    readonly vectors: Float32Array,
    readonly n: number,
    readonly dim: number,
  ) {}

  /**
   * Top-k rows for one query q (dim values), best first; fewer than k when fewer rows remain. Rows in
   * `banned`, and rows for which `skip(j)` is true, are left out.
   */
  search(q: Float32Array, k: number, skip: ((j: number) => boolean) | null = null, banned: Iterable<number> = []): Hits {
    const { n, dim } = this;
    if (this.scores.length < n) this.scores = new Float32Array(n);
    const s = this.scores.subarray(0, n);
    this.backend.gemm(false, true, 1, n, dim, 1, q, this.vectors, 0, s);
    for (const j of banned) if (j >= 0 && j < n) s[j] = -Infinity;
    if (skip) for (let j = 0; j < n; j++) if (skip(j)) s[j] = -Infinity;
    return this.top(s, k, null);
  }

  /** Top-k among the candidate rows only (a small allow-list, e.g. from a filter). */
  searchAmong(q: Float32Array, k: number, candidates: Int32Array): Hits {
    const { dim, vectors } = this;
    const m = candidates.length;
    if (this.scores.length < m) this.scores = new Float32Array(m);
    const s = this.scores.subarray(0, m);
    for (let c = 0; c < m; c++) {
      const o = candidates[c] * dim;
      let acc = 0;
      for (let t = 0; t < dim; t++) acc += q[t] * vectors[o + t];
      s[c] = acc;
    }
    return this.top(s, k, candidates);
  }

  private top(s: Float32Array, k: number, map: Int32Array | null): Hits {
    const kk = Math.min(k, s.length);
    if (kk <= 0) return { ids: new Int32Array(0), scores: new Float32Array(0) };
    if (this.idx.length < kk) {
      this.idx = new Int32Array(kk);
      this.val = new Float32Array(kk);
    }
    const idx = this.idx.subarray(0, kk);
    const val = this.val.subarray(0, kk);
    this.backend.topkRows(s, 1, s.length, kk, idx, val);
    let w = 0;
    while (w < kk && idx[w] >= 0) w++;
    const ids = new Int32Array(w);
    for (let i = 0; i < w; i++) ids[i] = map ? map[idx[i]] : idx[i];
    return { ids, scores: val.slice(0, w) };
  }
}
