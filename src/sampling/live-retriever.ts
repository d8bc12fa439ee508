/**
 * What online mining (the `mined` source with `from: 'online'`, sampling/mined.ts) needs from the model being
 * trained: a retriever over its current weights. Sources get embeddings and retrievers handed in and never
 * import models, so this contract is declared here and whoever owns the model builds the implementation
 * (train/trainer.ts hands in mine/model-retriever.ts `liveRetrievers(backend, model)`).
 */
import type { Csr } from '../data/csr.ts';
import type { RankedLists } from './ranked-lists.ts';

export interface LiveRetriever {
  /** Size of the embeddings. */
  readonly dim: number;
  /** Every item's embedding (numItems × dim, row-major) as of the last refresh; scores the positives. */
  readonly itemEmb: Float32Array;
  /** Re-embeds the items (and rebuilds any index) from the model's current weights. */
  refresh(): void;
  /** Each user's top-k items by score against the item embeddings of the last refresh (−1 pads short rows). */
  retrieve(users: Int32Array, k: number): RankedLists;
  /** The users' embeddings (rows × dim) with the model's current weights. */
  embedUsers(users: Int32Array): Float32Array;
}

export interface LiveRetrieverOptions {
  /** Exact search over every item, or an HNSW index rebuilt at each refresh. */
  search: 'exact' | 'hnsw';
  /** Each user's items to leave out of the lists (the training positives); null = none. */
  exclude: Csr | null;
}

/** Builds a retriever already embedded with the model's current weights (the source's first refresh). */
export type LiveRetrieverFactory = (opts: LiveRetrieverOptions) => LiveRetriever;
