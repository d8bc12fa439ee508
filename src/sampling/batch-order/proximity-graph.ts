/**
 * BatchSampler's proximity graph over training instances: for each instance, its K nearest among M randomly
 * drawn candidates (Yang et al. KDD 2023; official code: M=1000, K=100). Candidates are shared by a chunk of
 * randomly chosen anchors (each anchor still sees M random, distinct candidates) so that scoring a chunk is
 * backend GEMMs, anchors (c×d) · candidatesᵀ (d×M), followed by a masked row-wise top-K. Anchors and
 * candidates are both dealt from random permutations, so every instance is anchor once and candidate equally
 * often: in-degrees stay spread out and random walks do not stall on a few hubs.
 *
 * Candidates that would be masked in the loss anyway are excluded: the anchor itself, rows of the same user
 * (maskSameUser) and rows of the same item (maskSameItem) are never neighbours, because putting them in the
 * anchor's batch adds no negative.
 */
import type { Backend } from '../../compute/backend.ts';
import type { Rng } from '../../util/rng.ts';

export interface ProximityGraph {
  n: number;
  /** Slots per node. */
  k: number;
  /** n×k neighbour rows, best first; slots past deg[i] hold -1. */
  nbr: Int32Array;
  deg: Int32Array;
  /** With keepCandidates: the candidate rows of each chunk (anchors order[c·chunk, (c+1)·chunk)). */
  candidates?: Int32Array[];
  /** The random order in which anchors were chunked. */
  order: Int32Array;
  chunk: number;
}

/**
 * One term of the instance similarity: score(i, j) = Σ_parts anchorTable[anchorIds[i]] · candTable[candIds[j]]
 * (rows of width dim). Tables are gathered per chunk by the backend, so no per-instance vectors are stored.
 */
export interface SimilarityPart {
  dim: number;
  anchorTable: Float32Array;
  anchorIds: Int32Array;
  candTable: Float32Array;
  candIds: Int32Array;
}

export interface ProximityGraphOptions {
  backend: Backend;
  /** Instance arrays: the same user / same item rule reads them. */
  users: Int32Array;
  items: Int32Array;
  parts: SimilarityPart[];
  candidates: number;
  neighbours: number;
  rng: Rng;
  /**
   * Hubness correction: rank candidate j for anchor i by s(i,j) − mean over the chunk's (random) anchors of
   * s(·,j), i.e. by how much closer j is to i than to a random instance. Without it, a few "central" rows (popular
   * items, active users) are everyone's nearest neighbours, half the instances have no in-edge, and walks
   * exhaust the hubs and stall. Like CSLS (Conneau et al. 2018) with the candidate's mean over random anchors.
   */
  centerCandidates?: boolean;
  /** Anchors per GEMM (default: candidates). */
  chunk?: number;
  keepCandidates?: boolean;
}

export function buildProximityGraph(o: ProximityGraphOptions): ProximityGraph {
  const { backend, users, items, rng, parts } = o;
  const n = users.length;
  const M = Math.max(1, Math.min(o.candidates, n - 1));
  const K = Math.max(1, Math.min(o.neighbours, M));
  // Chunk = M by default, so each instance is a candidate of about one chunk (in-degrees stay spread out).
  const C = Math.max(1, Math.min(o.chunk ?? M, n));
  const nbr = new Int32Array(n * K).fill(-1);
  const deg = new Int32Array(n);
  const maxDim = Math.max(...parts.map((q) => q.dim));
  const A = new Float32Array(C * maxDim);
  const Cv = new Float32Array(M * maxDim);
  const S = new Float32Array(C * M);
  const topIdx = new Int32Array(K);
  const topVal = new Float64Array(K);
  const cand = new Int32Array(M);
  const candUser = new Int32Array(M);
  const candItem = new Int32Array(M);
  const candIds = new Int32Array(M);
  const colMean = new Float64Array(M); // stays 0 without centerCandidates
  const candOrder = new Int32Array(n);
  for (let i = 0; i < n; i++) candOrder[i] = i;
  rng.shuffle(candOrder);
  let candPos = 0;
  const anchorIds = new Int32Array(C);
  // Anchors are chunked in random order: consecutive rows often share a user, and similar anchors that share
  // one candidate set would all pick the same few candidates (hubs that walks exhaust at once).
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  rng.shuffle(order);
  const kept: Int32Array[] = [];
  for (let a0 = 0; a0 < n; a0 += C) {
    const c = Math.min(C, n - a0);
    // Candidates: consecutive slices of a second random permutation (cyclic), so every instance is a candidate
    // of the same number of chunks (independent draws per chunk would leave e^-1 of them never a candidate).
    for (let j = 0; j < M; j++) cand[j] = candOrder[(candPos + j) % n];
    candPos = (candPos + M) % n;
    if (o.keepCandidates) kept.push(cand.slice());
    for (let j = 0; j < M; j++) {
      candUser[j] = users[cand[j]];
      candItem[j] = items[cand[j]];
    }
    parts.forEach((q, t) => {
      for (let j = 0; j < M; j++) candIds[j] = q.candIds[cand[j]];
      backend.gatherRows(q.candTable, candIds, Cv, q.dim);
      for (let r = 0; r < c; r++) anchorIds[r] = q.anchorIds[order[a0 + r]];
      backend.gatherRows(q.anchorTable, c === C ? anchorIds : anchorIds.subarray(0, c), A, q.dim);
      backend.gemm(false, true, c, M, q.dim, 1, A, Cv, t === 0 ? 0 : 1, S);
    });
    // (A last chunk of a few anchors gives no usable mean: it is left uncentred.)
    colMean.fill(0);
    if (o.centerCandidates && c >= 16) {
      for (let r = 0; r < c; r++) for (let j = 0; j < M; j++) colMean[j] += S[r * M + j];
      for (let j = 0; j < M; j++) colMean[j] /= c;
    }
    // Masked top-K per row by insertion into a sorted buffer: with K ≪ M almost every score fails the
    // first comparison, which is several times faster than the backend's general topkRows here.
    for (let r = 0; r < c; r++) {
      const i = order[a0 + r];
      const u = users[i];
      const it = items[i];
      const base = r * M;
      let d = 0;
      let thr = -Infinity;
      for (let j = 0; j < M; j++) {
        const sc = S[base + j] - colMean[j];
        if (sc <= thr) continue;
        if (cand[j] === i || candUser[j] === u || candItem[j] === it) continue;
        let p = d < K ? d++ : K - 1;
        // Strictly-greater insertion keeps ties in candidate order.
        while (p > 0 && topVal[p - 1] < sc) {
          topVal[p] = topVal[p - 1];
          topIdx[p] = topIdx[p - 1];
          p--;
        }
        topVal[p] = sc;
        topIdx[p] = j;
        if (d === K) thr = topVal[K - 1];
      }
      for (let k = 0; k < d; k++) nbr[i * K + k] = cand[topIdx[k]];
      deg[i] = d;
    }
  }
  return { n, k: K, nbr, deg, chunk: C, order, candidates: o.keepCandidates ? kept : undefined };
}
