/**
 * The weighted item transition graph (WITG) of GNNO (Fan et al., SIGIR 2023, arXiv 2306.10047; official
 * build_witg.py): for every training sequence s and every offset k ∈ {1..window}, each pair (s_j, s_{j+k})
 * adds 1/k to the edge weight in both directions,
 *   w(a, b) = Σ_{sequences} Σ_{k ≤ window} Σ_j 1[s_j = a, s_{j+k} = b or the reverse] / k.
 * Then, as the official code (use_scale + use_renorm), each row is scaled to sum 1 and multiplied by
 * (1/deg(a) + 1/deg(b)):  ŵ(a, b) = w(a, b) / Σ_c w(a, c) · (1/deg(a) + 1/deg(b)),  deg = distinct neighbours.
 * Self-transitions (a repeated item) are dropped: an item is not its own neighbour.
 *
 * Built with typed arrays only: one counting sort of the (directed) pair events by source item, then a
 * per-row dedupe through a dense accumulator, O(window · Σ|s|) time. Memory: the events (8 bytes each,
 * 2·window per interaction) while building, then 12 bytes per directed edge (neighbour, w, ŵ) + offsets.
 * Build it from the TRAINING sequences only (never validation/test items).
 */
import type { Csr } from '../data/csr.ts';

export interface TransitionGraph {
  numItems: number;
  /** Row a's neighbours are nbr[offsets[a] .. offsets[a+1]), sorted by id. */
  offsets: Int32Array;
  nbr: Int32Array;
  /** Raw distance-weighted counts w(a, b) (symmetric). */
  weight: Float32Array;
  /** Row-normalised, degree-rescaled ŵ(a, b) (not symmetric), as the official code. */
  norm: Float32Array;
  /** Bytes held by the arrays above. */
  bytes: number;
  /** Peak bytes of temporary arrays during the build. */
  buildBytes: number;
}

export interface TransitionOptions {
  /** Largest position offset k linked within a sequence (official: 3). */
  window: number;
}

/** Builds the WITG from sequences (rows = users, cols = items in time order). */
export function buildTransitionGraph(seqs: Csr, numItems: number, opts: TransitionOptions = { window: 3 }): TransitionGraph {
  const W = opts.window;
  if (!Number.isInteger(W) || W < 1) throw new RangeError(`buildTransitionGraph: window must be a positive integer, got ${W}`);
  const { offsets: so, cols } = seqs;
  // Pass 1: directed events per source item.
  const count = new Int32Array(numItems + 1);
  for (let u = 0; u < seqs.rows; u++) {
    const lo = so[u];
    const hi = so[u + 1];
    for (let j = lo; j < hi; j++) {
      const a = cols[j];
      for (let k = 1; k <= W && j + k < hi; k++) {
        const b = cols[j + k];
        if (a === b) continue;
        count[a + 1]++;
        count[b + 1]++;
      }
    }
  }
  for (let i = 0; i < numItems; i++) count[i + 1] += count[i];
  const total = count[numItems];
  const evDst = new Int32Array(total);
  const evW = new Float32Array(total);
  const fill = count.slice(0, numItems);
  for (let u = 0; u < seqs.rows; u++) {
    const lo = so[u];
    const hi = so[u + 1];
    for (let j = lo; j < hi; j++) {
      const a = cols[j];
      for (let k = 1; k <= W && j + k < hi; k++) {
        const b = cols[j + k];
        if (a === b) continue;
        const w = 1 / k;
        let p = fill[a]++;
        evDst[p] = b;
        evW[p] = w;
        p = fill[b]++;
        evDst[p] = a;
        evW[p] = w;
      }
    }
  }
  // Pass 2: dedupe each row through a dense accumulator; neighbours sorted by id.
  const acc = new Float64Array(numItems);
  const seen = new Uint8Array(numItems);
  const offsets = new Int32Array(numItems + 1);
  let nbr = new Int32Array(Math.max(16, total >> 1));
  let weight = new Float32Array(nbr.length);
  let e = 0;
  for (let a = 0; a < numItems; a++) {
    offsets[a] = e;
    const lo = count[a];
    const hi = count[a + 1];
    const start = e;
    for (let p = lo; p < hi; p++) {
      const b = evDst[p];
      if (!seen[b]) {
        seen[b] = 1;
        if (e === nbr.length) {
          const n2 = new Int32Array(nbr.length * 2);
          n2.set(nbr);
          nbr = n2;
          const w2 = new Float32Array(n2.length);
          w2.set(weight);
          weight = w2;
        }
        nbr[e++] = b;
      }
      acc[b] += evW[p];
    }
    nbr.subarray(start, e).sort();
    for (let q = start; q < e; q++) {
      const b = nbr[q];
      weight[q] = acc[b];
      acc[b] = 0;
      seen[b] = 0;
    }
  }
  offsets[numItems] = e;
  const nb = nbr.slice(0, e);
  const wt = weight.slice(0, e);
  const norm = new Float32Array(e);
  for (let a = 0; a < numItems; a++) {
    const lo = offsets[a];
    const hi = offsets[a + 1];
    let s = 0;
    for (let q = lo; q < hi; q++) s += wt[q];
    const degA = hi - lo;
    for (let q = lo; q < hi; q++) {
      const b = nb[q];
      const degB = offsets[b + 1] - offsets[b];
      norm[q] = (wt[q] / s) * (1 / degA + 1 / degB);
    }
  }
  const bytes = offsets.byteLength + nb.byteLength + wt.byteLength + norm.byteLength;
  const buildBytes = count.byteLength + evDst.byteLength + evW.byteLength + acc.byteLength + seen.byteLength + nbr.byteLength + weight.byteLength;
  return { numItems, offsets, nbr: nb, weight: wt, norm, bytes, buildBytes };
}

/** Number of directed edges (each undirected transition counts twice). */
export function edgeCount(g: TransitionGraph): number {
  return g.offsets[g.numItems];
}

/** Neighbours of item a (a view). */
export function neighbours(g: TransitionGraph, a: number): Int32Array {
  return g.nbr.subarray(g.offsets[a], g.offsets[a + 1]);
}

/** Raw weight w(a, b), 0 when there is no edge (binary search in a's sorted row). */
export function edgeWeight(g: TransitionGraph, a: number, b: number, which: 'weight' | 'norm' = 'weight'): number {
  const q = findSorted(g.nbr, g.offsets[a], g.offsets[a + 1], b);
  return q < 0 ? 0 : (which === 'weight' ? g.weight : g.norm)[q];
}

/** Index of x in the sorted slice a[lo, hi), or −1. */
export function findSorted(a: Int32Array, lo: number, hi: number, x: number): number {
  hi--;
  while (lo <= hi) {
    const m = (lo + hi) >> 1;
    const v = a[m];
    if (v === x) return m;
    if (v < x) lo = m + 1;
    else hi = m - 1;
  }
  return -1;
}
