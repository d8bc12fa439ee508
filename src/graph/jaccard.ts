/**
 * Neighbourhood overlap on the transition graph, GNNO's hardness score (Fan et al., SIGIR 2023; official
 * TopoCuri._construct_graph): with A the adjacency (binary by default, or the ŵ weights),
 *   CN = A Aᵀ,   J(i, j) = CN_ij / (CN_ii + CN_jj − CN_ij),
 * i.e. |N(i) ∩ N(j)| / |N(i) ∪ N(j)| for binary A (Jaccard), the Tanimoto coefficient for weighted A.
 * J(i, j) > 0 only for two-hop pairs, so each item's list holds its two-hop items with their score,
 * computed by sparse accumulation: for k ∈ N(i), j ∈ N(k): CN_ij += A_ik A_jk — O(Σ_k deg(k)²) time,
 * no dense items×items matrix (the official code builds one: 4·|I|² bytes).
 * `maxCandidates` keeps only the highest-overlap items per row (ties: lower id) to bound memory on graphs
 * with hubs; the dropped ones have the smallest scores and are treated as J = 0 by the sampler.
 */
import type { TransitionGraph } from './transition.ts';

export interface OverlapLists {
  numItems: number;
  /** Row i's candidates are ids[offsets[i] .. offsets[i+1]), sorted by id, never i itself. */
  offsets: Int32Array;
  ids: Int32Array;
  /** J(i, ids[q]) ∈ (0, 1]. */
  score: Float32Array;
  /** Bytes held by the arrays above. */
  bytes: number;
  /** Rows whose list was cut to maxCandidates. */
  truncatedRows: number;
}

export interface OverlapOptions {
  /** 'bool' (official default): binary adjacency; 'weight': the ŵ weights (Tanimoto). */
  weight: 'bool' | 'weight';
  /** Keep at most this many candidates per item (0 = all). */
  maxCandidates: number;
}

export function neighbourhoodOverlap(g: TransitionGraph, opts: OverlapOptions = { weight: 'bool', maxCandidates: 0 }): OverlapLists {
  const n = g.numItems;
  const { offsets: go, nbr } = g;
  const weighted = opts.weight === 'weight';
  const M = opts.maxCandidates > 0 ? opts.maxCandidates : Infinity;
  // A_ik per edge position, and rev[e] = position of the reverse edge (k→i for e = i→k).
  let A: Float32Array | null = null;
  let rev: Int32Array | null = null;
  const self = new Float64Array(n); // CN_ii = Σ_k A_ik²
  if (weighted) {
    A = g.norm;
    rev = new Int32Array(nbr.length);
    const cursor = go.slice(0, n);
    for (let a = 0; a < n; a++) for (let q = go[a]; q < go[a + 1]; q++) rev[q] = cursor[nbr[q]]++;
    for (let a = 0; a < n; a++) {
      let s = 0;
      for (let q = go[a]; q < go[a + 1]; q++) s += A[q] * A[q];
      self[a] = s;
    }
  } else {
    for (let a = 0; a < n; a++) self[a] = go[a + 1] - go[a];
  }
  const cn = new Float64Array(n);
  const touched = new Int32Array(n);
  const rowScore = new Float32Array(n);
  const scratch = new Float32Array(n);
  const keyBuf = new Float64Array(n);
  const tieBuf = new Float64Array(n);
  const P = 2 ** Math.ceil(Math.log2(n + 1)); // key = id·P + slot, exact in float64 for n < 2^26
  const flag = new Float32Array(n); // score + 1 of a kept item during the dense scan, else 0
  const offsets = new Int32Array(n + 1);
  let ids = new Int32Array(Math.max(16, Math.min(nbr.length * 4, n * Math.min(n, M === Infinity ? n : M))));
  let score = new Float32Array(ids.length);
  let truncatedRows = 0;
  let out = 0;
  for (let i = 0; i < n; i++) {
    offsets[i] = out;
    const t = weighted ? accumulateWeighted(i, go, nbr, A!, rev!, cn, touched) : accumulateBinary(i, go, nbr, cn, touched);
    const si = self[i];
    for (let p = 0; p < t; p++) {
      const j = touched[p];
      const c = cn[j];
      rowScore[p] = c / (si + self[j] - c);
      cn[j] = 0;
    }
    // Keep the M highest scores (ties at the cut: lower ids first).
    let thr = -1;
    let ties = 0;
    if (t > M) {
      truncatedRows++;
      scratch.set(rowScore.subarray(0, t));
      thr = kthLargest(scratch, t, M);
      let above = 0;
      for (let p = 0; p < t; p++) if (rowScore[p] > thr) above++;
      ties = M - above;
    }
    const keep = Math.min(t, M);
    if (out + keep > ids.length) {
      const cap = Math.max(out + keep, ids.length * 2);
      const i2 = new Int32Array(cap);
      i2.set(ids.subarray(0, out));
      ids = i2;
      const s2 = new Float32Array(cap);
      s2.set(score.subarray(0, out));
      score = s2;
    }
    if (keep * 8 > n) {
      // Dense rows: mark, then scan ids in order (no sort).
      for (let p = 0; p < t; p++) if (rowScore[p] > thr) flag[touched[p]] = rowScore[p] + 1;
      let w = out;
      for (let j = 0; j < n; j++) {
        const f = flag[j];
        if (f > 0) {
          ids[w] = j;
          score[w++] = f - 1;
          flag[j] = 0;
        }
      }
      if (ties > 0) w = mergeTies(touched, rowScore, t, thr, ties, ids, score, out, w, keyBuf);
      out = w;
    } else {
      let w = 0;
      for (let p = 0; p < t; p++) if (rowScore[p] > thr) keyBuf[w++] = touched[p] * P + p;
      if (ties > 0) {
        // Lowest ids among the tied: sort the tied ones by id, take the first `ties`.
        let nt = 0;
        for (let p = 0; p < t; p++) if (rowScore[p] === thr) tieBuf[nt++] = touched[p] * P + p;
        const tk = tieBuf.subarray(0, nt).sort();
        for (let z = 0; z < ties; z++) keyBuf[w++] = tk[z];
      }
      const keys = keyBuf.subarray(0, w).sort();
      for (let z = 0; z < w; z++) {
        const p = keys[z] % P;
        ids[out + z] = touched[p];
        score[out + z] = rowScore[p];
      }
      out += w;
    }
  }
  offsets[n] = out;
  const idsOut = ids.slice(0, out);
  const scoreOut = score.slice(0, out);
  return {
    numItems: n,
    offsets,
    ids: idsOut,
    score: scoreOut,
    bytes: offsets.byteLength + idsOut.byteLength + scoreOut.byteLength,
    truncatedRows,
  };
}

/** CN_ij for binary A: the number of shared neighbours, for every two-hop j ≠ i; returns how many j. */
function accumulateBinary(i: number, go: Int32Array, nbr: Int32Array, cn: Float64Array, touched: Int32Array): number {
  let t = 0;
  const end = go[i + 1];
  for (let q = go[i]; q < end; q++) {
    const k = nbr[q];
    const rEnd = go[k + 1];
    for (let r = go[k]; r < rEnd; r++) {
      const j = nbr[r];
      const c = cn[j];
      if (c === 0) {
        if (j === i) continue;
        touched[t++] = j;
      }
      cn[j] = c + 1;
    }
  }
  return t;
}

/** CN_ij = Σ_k A_ik A_jk for weighted A (A_jk read through the reverse edge k→j ⇒ j→k). */
function accumulateWeighted(i: number, go: Int32Array, nbr: Int32Array, A: Float32Array, rev: Int32Array, cn: Float64Array, touched: Int32Array): number {
  let t = 0;
  const end = go[i + 1];
  for (let q = go[i]; q < end; q++) {
    const k = nbr[q];
    const aik = A[q];
    const rEnd = go[k + 1];
    for (let r = go[k]; r < rEnd; r++) {
      const j = nbr[r];
      const c = cn[j];
      if (c === 0) {
        if (j === i) continue;
        touched[t++] = j;
      }
      cn[j] = c + aik * A[rev[r]];
    }
  }
  return t;
}

/** Inserts the `ties` lowest-id items scoring exactly thr into the id-sorted run ids[from, to); returns the new end. */
function mergeTies(
  touched: Int32Array,
  rowScore: Float32Array,
  t: number,
  thr: number,
  ties: number,
  ids: Int32Array,
  score: Float32Array,
  from: number,
  to: number,
  keyBuf: Float64Array,
): number {
  let nt = 0;
  for (let p = 0; p < t; p++) if (rowScore[p] === thr) keyBuf[nt++] = touched[p];
  const tied = keyBuf.subarray(0, nt).sort().subarray(0, ties);
  const merged: Array<[number, number]> = [];
  for (let q = from; q < to; q++) merged.push([ids[q], score[q]]);
  for (const j of tied) merged.push([j, thr]);
  merged.sort((x, y) => x[0] - y[0]);
  merged.forEach(([j, s], z) => {
    ids[from + z] = j;
    score[from + z] = s;
  });
  return from + merged.length;
}

/** The k-th largest of a[0, n) (1-based k ≤ n); reorders a. Quickselect (Hoare partition), O(n) expected. */
export function kthLargest(a: Float32Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  const target = k - 1; // index in descending order
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const x = a[i];
        a[i] = a[j];
        a[j] = x;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target];
  }
  return a[target];
}

/** J(i, j) from the lists (0 when j is not among i's candidates). */
export function overlapScore(o: OverlapLists, i: number, j: number): number {
  let lo = o.offsets[i];
  let hi = o.offsets[i + 1] - 1;
  while (lo <= hi) {
    const m = (lo + hi) >> 1;
    const v = o.ids[m];
    if (v === j) return o.score[m];
    if (v < j) lo = m + 1;
    else hi = m - 1;
  }
  return 0;
}
