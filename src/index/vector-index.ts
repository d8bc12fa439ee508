/**
 * The item index kinds a bundle or index directory can hold: HNSW (usearch graph) or IVF-Flat (k-means lists,
 * our own kernel); and a LanceDB table (IVF-PQ, lance-index.ts), which a server or miner opens beside a model
 * (`--index lancedb:DIR`). All answer `search(q, k)` with similarities, best first.
 */
import type { Backend } from '../compute/backend.ts';
import { AnnIndex, type AnnConfig } from './ann-index.ts';
import { IvfIndex, type IvfConfig } from './ivf-index.ts';
import type { LanceConfig, LanceIndex } from './lance-index.ts';

export type IndexConfig = AnnConfig | IvfConfig;
/** An index Towerlab builds and stores itself (in a bundle or an index directory). */
export type OwnIndex = AnnIndex | IvfIndex;
export type VectorIndex = OwnIndex | LanceIndex;
export type AnyIndexConfig = IndexConfig | LanceConfig;

export function isIvfConfig(c: AnyIndexConfig): c is IvfConfig {
  return c.kind === 'ivf';
}

/** 'hnsw', 'ivf' or 'lancedb', as responses and logs name the index. */
export function indexKind(c: AnyIndexConfig): 'hnsw' | 'ivf' | 'lancedb' {
  return c.kind === 'lancedb' ? 'lancedb' : isIvfConfig(c) ? 'ivf' : 'hnsw';
}

/** The search-breadth setting of an index, for logs: ef for HNSW, nprobe for IVF and LanceDB. */
export function breadthText(c: AnyIndexConfig): string {
  if (c.kind === 'lancedb') return c.partitions > 0 ? `nprobe ${c.nprobe} of ${c.partitions} partitions, refine ×${c.refineFactor}` : 'flat scan (no index)';
  return isIvfConfig(c) ? `nprobe ${c.nprobe} of ${c.lists} lists` : `ef ${c.expansionSearch}`;
}

/** `threads`: HNSW insertion threads (0 = every core); the IVF build is deterministic for a given backend. */
export function buildVectorIndex(backend: Backend, vectors: Float32Array, n: number, dim: number, config: IndexConfig, progress: (m: string) => void, threads = 0): OwnIndex {
  if (isIvfConfig(config)) return IvfIndex.build(backend, vectors, n, dim, config, { progress });
  return AnnIndex.build(vectors, n, dim, config, { threads, progress: (d, total) => d < total && progress(`  ${d}/${total} items indexed`) });
}
