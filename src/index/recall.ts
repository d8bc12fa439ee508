/** Index quality: recall@k of the ANN results against exact search, averaged over sample queries. */
import type { Hits } from './ann-index.ts';
import type { ExactSearcher } from './exact.ts';

export interface RecallReport {
  k: number;
  queries: number;
  recall: number;
  /** Mean milliseconds per query on one thread, for a rough comparison (the bench measures properly). */
  annMs: number;
  exactMs: number;
}

export function indexRecall(index: { search(q: Float32Array, k: number): Hits }, exact: ExactSearcher, queries: Float32Array, k: number): RecallReport {
  const dim = exact.dim;
  const nq = queries.length / dim;
  let hit = 0;
  let total = 0;
  let annMs = 0;
  let exactMs = 0;
  for (let i = 0; i < nq; i++) {
    const q = queries.subarray(i * dim, (i + 1) * dim);
    let t = performance.now();
    const truth = exact.search(q, k);
    exactMs += performance.now() - t;
    t = performance.now();
    const got = index.search(q, k);
    annMs += performance.now() - t;
    const want = new Set(truth.ids);
    for (const id of got.ids) if (want.has(id)) hit++;
    total += truth.ids.length;
  }
  return { k, queries: nq, recall: total ? hit / total : 1, annMs: nq ? annMs / nq : 0, exactMs: nq ? exactMs / nq : 0 };
}
