/** What a reranker reads: a target list plus the features of each of its candidates (built per domain, e.g. text/rerank-features.ts). */
import type { RankedLists } from '../mine/types.ts';

/** A target list plus the features of each of its candidates: row r, slot i at x[(r·k + i)·F ..]. */
export interface CandidateFeatures {
  queries: Int32Array;
  lists: RankedLists;
  F: number;
  x: Float32Array;
}
