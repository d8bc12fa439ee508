/**
 * From training sequences to GNNO's hard-negative sampler in one call (transition graph → neighbourhood
 * overlap → sampler), with build times and memory, for the `neighbourhood` negative source and benches.
 */
import type { Csr } from '../data/csr.ts';
import { neighbourhoodOverlap } from './jaccard.ts';
import { NeighbourSampler } from './neighbour-sampler.ts';
import { buildTransitionGraph, edgeCount } from './transition.ts';

export interface NeighbourhoodOptions {
  window: number;
  weight: 'bool' | 'weight';
  candidates: 'all' | 'overlap';
  temperature: number;
  excludeTop: number;
  maxCandidates: number;
}

export interface NeighbourhoodStats {
  items: number;
  /** Directed edges of the transition graph (2 per undirected transition). */
  edges: number;
  /** Overlap candidates kept, in all rows. */
  candidates: number;
  truncatedRows: number;
  graphSeconds: number;
  overlapSeconds: number;
  /** Bytes of the graph, the overlap lists and the sampler's per-candidate state once built. */
  graphBytes: number;
  overlapBytes: number;
  samplerBytes: number;
  /** Peak bytes of temporary arrays while building the graph. */
  buildPeakBytes: number;
}

export function buildNeighbourhood(seqs: Csr, numItems: number, o: NeighbourhoodOptions): { sampler: NeighbourSampler; stats: NeighbourhoodStats } {
  const t0 = performance.now();
  const g = buildTransitionGraph(seqs, numItems, { window: o.window });
  const t1 = performance.now();
  const lists = neighbourhoodOverlap(g, { weight: o.weight, maxCandidates: o.maxCandidates });
  const t2 = performance.now();
  const sampler = new NeighbourSampler(lists, { candidates: o.candidates, temperature: o.temperature, excludeTop: o.excludeTop });
  const samplerBytes = lists.ids.length * 8 + numItems * (8 + 8 + 1 + 4);
  return {
    sampler,
    stats: {
      items: numItems,
      edges: edgeCount(g),
      candidates: lists.ids.length,
      truncatedRows: lists.truncatedRows,
      graphSeconds: (t1 - t0) / 1000,
      overlapSeconds: (t2 - t1) / 1000,
      graphBytes: g.bytes,
      overlapBytes: lists.bytes,
      samplerBytes,
      buildPeakBytes: g.buildBytes,
    },
  };
}
