/**
 * The item index kinds a bundle or index directory can hold: HNSW (usearch graph) or IVF-Flat (k-means lists,
 * our own kernel). Both answer `search(q, k)` with similarities, best first.
 */
import type { Backend } from '../compute/backend.ts';
import { AnnIndex, type AnnConfig } from './ann-index.ts';
import { IvfIndex, type IvfConfig } from './ivf-index.ts';

export type IndexConfig = AnnConfig | IvfConfig;
export type VectorIndex = AnnIndex | IvfIndex;

export function isIvfConfig(c: IndexConfig): c is IvfConfig {
  return c.kind === 'ivf';
}

/** 'hnsw' or 'ivf', as responses and logs name the index. */
export function indexKind(c: IndexConfig): 'hnsw' | 'ivf' {
  return isIvfConfig(c) ? 'ivf' : 'hnsw';
}

/** The search-breadth setting of an index, for logs: ef for HNSW, nprobe for IVF. */
export function breadthText(c: IndexConfig): string {
  return isIvfConfig(c) ? `nprobe ${c.nprobe} of ${c.lists} lists` : `ef ${c.expansionSearch}`;
}

/** `threads`: HNSW insertion threads (0 = every core); the IVF build is deterministic for a given backend. */
export function buildVectorIndex(backend: Backend, vectors: Float32Array, n: number, dim: number, config: IndexConfig, progress: (m: string) => void, threads = 0): VectorIndex {
  if (isIvfConfig(config)) return IvfIndex.build(backend, vectors, n, dim, config, { progress });
  return AnnIndex.build(vectors, n, dim, config, { threads, progress: (d, total) => d < total && progress(`  ${d}/${total} items indexed`) });
}
