/**
 * Per-query top-k candidate lists: the shape retrievers return (mine/types.ts re-exports it with the Retriever
 * contract) and the hard-negative filter and the online mined source consume. Declared here, below mine/, so
 * sampling can use it without importing retrievers.
 */

/** Top-k lists for `rows` queries: row r occupies ids/scores[r*k .. r*k+k), best first; -1 pads short rows. */
export interface RankedLists {
  rows: number;
  k: number;
  ids: Int32Array;
  scores: Float32Array;
}
