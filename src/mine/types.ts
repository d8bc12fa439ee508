/**
 * The contract shared by every retriever that can take part in hard-negative mining or an ensemble:
 * a two-tower model over an ANN/exact index, BM25 over text, a text dual encoder. Each returns, per query,
 * its top-k candidate ids with scores; fusion (RRF, soft voting) and false-negative filtering work on this
 * shape only, so any mix of members composes.
 */
import type { RankedLists } from '../sampling/ranked-lists.ts';

// Declared in sampling (the online mined source and the hard-negative filter use it); part of this contract.
export type { RankedLists };

export interface Retriever {
  /** Short name for logs and reports ("model:runs/a", "bm25"). */
  readonly name: string;
  /** Top-k candidates for each query id (a user index, or a query index of a text set). */
  retrieve(queries: Int32Array, k: number): Promise<RankedLists> | RankedLists;
}
