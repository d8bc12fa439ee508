/**
 * GNNO's hard-negative distribution (Fan et al., SIGIR 2023; official TopoCuri._gen_hn_jaccard): for a
 * target item i and the current hardness cap h,
 *   p(j | i) ∝ exp(J(i, j) / τ) · 1[J(i, j) ≤ h] · 1[j ∉ top-k overlap of i] · 1[j ≠ i]
 * over the candidate set:
 *   'all'     (official): every item; items off i's overlap list have J = 0, weight 1;
 *   'overlap': only i's two-hop items (J > 0); when none is eligible, uniform over the items off the list.
 * Items above the cap (the closest neighbours, likely false negatives) and the `excludeTop` highest-overlap
 * items are never drawn, nor is the target itself. τ = 1 is the official setting (a mild tilt: at most
 * e^h ≈ 2× the weight of an unrelated item); a smaller τ sharpens it.
 *
 * Per row, the eligible candidates' weights are kept as a cumulative array (rebuilt when h changes, once per
 * epoch), so a draw is one binary search; the uniform remainder is drawn by rejection against the sorted list.
 */
import type { Rng } from '../util/rng.ts';
import { kthLargest, type OverlapLists } from './jaccard.ts';
import { findSorted } from './transition.ts';

export interface NeighbourSamplerOptions {
  candidates: 'all' | 'overlap';
  /** τ in exp(J/τ). */
  temperature: number;
  /** Always exclude the k highest-overlap items of each target (ties at the cut excluded too). */
  excludeTop: number;
}

export class NeighbourSampler {
  readonly numItems: number;
  private readonly cum: Float64Array;
  /** Per row: total eligible list weight S_i, normaliser Z_i, weight r_i of each off-list item. */
  private readonly mass: Float64Array;
  private readonly z: Float64Array;
  private readonly rem: Uint8Array;
  /** Score at or above which a row's candidates are always excluded (Infinity = none). */
  private readonly topCut: Float32Array;
  private acc: Float64Array | null = null;
  private accTouched: Int32Array | null = null;
  private accFlag: Uint8Array | null = null;
  hardness = NaN;

  constructor(
    readonly lists: OverlapLists,
    readonly opts: NeighbourSamplerOptions,
  ) {
    if (!(opts.temperature > 0)) throw new RangeError(`NeighbourSampler: temperature must be > 0, got ${opts.temperature}`);
    const n = (this.numItems = lists.numItems);
    this.cum = new Float64Array(lists.ids.length);
    this.mass = new Float64Array(n);
    this.z = new Float64Array(n);
    this.rem = new Uint8Array(n);
    this.topCut = new Float32Array(n).fill(Infinity);
    const k = opts.excludeTop;
    if (k > 0) {
      const scratch = new Float32Array(longestRow(lists));
      for (let i = 0; i < n; i++) {
        const lo = lists.offsets[i];
        const len = lists.offsets[i + 1] - lo;
        if (len === 0) continue;
        if (len <= k) {
          this.topCut[i] = -Infinity;
          continue;
        }
        scratch.set(lists.score.subarray(lo, lo + len));
        this.topCut[i] = kthLargest(scratch, len, k);
      }
    }
    this.setHardness(1);
  }

  /** Sets the cap h (J ≤ h eligible) and rebuilds the cumulative weights. */
  setHardness(h: number): void {
    if (h === this.hardness) return;
    this.hardness = h;
    const { offsets, score } = this.lists;
    const invT = 1 / this.opts.temperature;
    const n = this.numItems;
    const all = this.opts.candidates === 'all';
    for (let i = 0; i < n; i++) {
      let s = 0;
      const cut = this.topCut[i];
      for (let q = offsets[i]; q < offsets[i + 1]; q++) {
        const J = score[q];
        if (J <= h && J < cut) s += Math.exp(J * invT);
        this.cum[q] = s;
      }
      this.mass[i] = s;
      const off = n - 1 - (offsets[i + 1] - offsets[i]);
      const r = all || s === 0 ? 1 : 0;
      this.rem[i] = r;
      this.z[i] = s + r * off;
    }
  }

  /** One draw from p(· | i). */
  sample(i: number, rng: Rng): number {
    const z = this.z[i];
    if (z === 0) return uniformOther(i, this.numItems, rng); // every other item excluded (tiny catalogues)
    const u = rng.next() * z;
    const lo = this.lists.offsets[i];
    const hi = this.lists.offsets[i + 1];
    if (u < this.mass[i]) {
      // First q in [lo, hi) with cum[q] > u.
      let a = lo;
      let b = hi - 1;
      while (a < b) {
        const m = (a + b) >> 1;
        if (this.cum[m] > u) b = m;
        else a = m + 1;
      }
      return this.lists.ids[a];
    }
    return this.offList(i, lo, hi, rng);
  }

  /** n draws into out[at, at + n). */
  sampleInto(i: number, n: number, rng: Rng, out: Int32Array, at = 0): void {
    for (let k = 0; k < n; k++) out[at + k] = this.sample(i, rng);
  }

  /** p(j | i) under the current cap. */
  probability(i: number, j: number): number {
    if (j === i) return 0;
    const z = this.z[i];
    if (z === 0) return 1 / (this.numItems - 1);
    const lo = this.lists.offsets[i];
    const q = findSorted(this.lists.ids, lo, this.lists.offsets[i + 1], j);
    if (q < 0) return this.rem[i] / z;
    return (this.cum[q] - (q > lo ? this.cum[q - 1] : 0)) / z;
  }

  /**
   * log E[count(j)] when every row r draws `perRow` items from p(· | targets[r]):
   * E = perRow · Σ_r p(j | targets[r]), for each j in ids (into out). Cost O(Σ_r |list(targets[r])| + |ids|).
   */
  logExpectedCounts(targets: Int32Array, perRow: number, ids: Int32Array, out: Float32Array): void {
    const n = this.numItems;
    if (!this.acc) {
      this.acc = new Float64Array(n);
      this.accTouched = new Int32Array(n);
      this.accFlag = new Uint8Array(n);
    }
    const acc = this.acc;
    const touched = this.accTouched!;
    const flag = this.accFlag!;
    let t = 0;
    let base = 0;
    const { offsets, ids: cand } = this.lists;
    const cum = this.cum;
    for (let r = 0; r < targets.length; r++) {
      const i = targets[r];
      const z = this.z[i];
      const rp = z === 0 ? 1 / (n - 1) : this.rem[i] / z;
      base += rp;
      if (!flag[i]) {
        flag[i] = 1;
        touched[t++] = i;
      }
      acc[i] -= rp;
      if (z === 0) continue;
      const lo = offsets[i];
      const hi = offsets[i + 1];
      let prev = 0;
      for (let q = lo; q < hi; q++) {
        const j = cand[q];
        const c = cum[q];
        if (!flag[j]) {
          flag[j] = 1;
          touched[t++] = j;
        }
        acc[j] += (c - prev) / z - rp;
        prev = c;
      }
    }
    for (let c = 0; c < ids.length; c++) {
      const e = perRow * (base + acc[ids[c]]);
      out[c] = Math.log(e > 1e-30 ? e : 1e-30);
    }
    for (let p = 0; p < t; p++) {
      acc[touched[p]] = 0;
      flag[touched[p]] = 0;
    }
  }

  /** A uniform draw among the items off i's list (and ≠ i). */
  private offList(i: number, lo: number, hi: number, rng: Rng): number {
    const n = this.numItems;
    const off = n - 1 - (hi - lo);
    const ids = this.lists.ids;
    if (off * 16 >= n) {
      for (;;) {
        const j = rng.int(n);
        if (j !== i && findSorted(ids, lo, hi, j) < 0) return j;
      }
    }
    // Few off-list items: pick the r-th by walking the complement.
    let r = rng.int(off);
    let q = lo;
    for (let j = 0; j < n; j++) {
      while (q < hi && ids[q] < j) q++;
      if (j === i || (q < hi && ids[q] === j)) continue;
      if (r-- === 0) return j;
    }
    return uniformOther(i, n, rng);
  }
}

function uniformOther(i: number, n: number, rng: Rng): number {
  if (n < 2) return i;
  const j = rng.int(n - 1);
  return j >= i ? j + 1 : j;
}

function longestRow(l: OverlapLists): number {
  let m = 0;
  for (let i = 0; i < l.numItems; i++) m = Math.max(m, l.offsets[i + 1] - l.offsets[i]);
  return m;
}
