/**
 * Float64 references of one two-tower training step written from the recipe's documented semantics (the
 * papers' formulas in /work/shared/REFERENCES.md and the doc comments of src/sampling, src/loss), never from
 * the code's own intermediate arrays: each source's log expected count per batch, their mixture, the
 * streaming frequency estimator, the GNNO neighbourhood distribution, and the full step loss (both directions,
 * same-tower block, masks, false-negative mask, InfoNCE or debiased).
 */

export type Vec = Float64Array;

/** Float64 L2-normalised copy of row `r` of a row-major table. */
export function normRow64(table: ArrayLike<number>, dim: number, r: number): Vec {
  const v = new Float64Array(dim);
  let s = 0;
  for (let k = 0; k < dim; k++) s += (v[k] = table[r * dim + k]) ** 2;
  const n = Math.sqrt(s);
  for (let k = 0; k < dim; k++) v[k] /= n;
  return v;
}

export function dot64(a: Vec, b: Vec): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
}

/** log Σ_s E_s: the mixture's log expected count from per-source expected counts (not logs). */
export function logMixture(expected: number[]): number {
  const e = expected.reduce((a, b) => a + b, 0);
  return e > 0 ? Math.log(e) : 0; // a column no source samples gets no correction
}

/** Expected count per batch of B rows under train-frequency with add-one smoothing: B·(c_j+1)/(T+N). */
export function trainFrequencyCount(trainItems: ArrayLike<number>, numItems: number, j: number, B: number): number {
  let c = 0;
  for (let r = 0; r < trainItems.length; r++) if (trainItems[r] === j) c++;
  return (B * (c + 1)) / (trainItems.length + numItems);
}

/** Popularity source: n·(c_j+1)^α / Σ_k (c_k+1)^α. */
export function popularityCount(trainItems: ArrayLike<number>, numItems: number, j: number, n: number, alpha: number): number {
  const c = new Float64Array(numItems);
  for (let r = 0; r < trainItems.length; r++) c[trainItems[r]]++;
  let total = 0;
  for (let k = 0; k < numItems; k++) total += Math.pow(c[k] + 1, alpha);
  return (n * Math.pow(c[j] + 1, alpha)) / total;
}

/** Stratified source: n per stratum, uniform inside it: n / |stratum(j)|. */
export function stratifiedCount(stratumOf: ArrayLike<number>, j: number, n: number): number {
  let size = 0;
  for (let k = 0; k < stratumOf.length; k++) if (stratumOf[k] === stratumOf[j]) size++;
  return n / size;
}

/**
 * Yi et al. 2019, Algorithm 2, one slot per item: B[y] ← (1−α)·B[y] + α·(t − A[y]); A[y] ← t, an item counted
 * once per step, the first hit only setting A; prior B = numItems / batchSize. Expected count = 1/B[y].
 */
export class Streaming64 {
  readonly A: Float64Array;
  readonly B: Float64Array;
  constructor(numItems: number, batchSize: number, readonly alpha: number) {
    this.A = new Float64Array(numItems);
    this.B = new Float64Array(numItems).fill(Math.max(1, numItems / batchSize));
  }
  observe(items: ArrayLike<number>, t: number): void {
    const seen = new Set<number>();
    for (let r = 0; r < items.length; r++) {
      const y = items[r];
      if (seen.has(y)) continue;
      seen.add(y);
      if (this.A[y] > 0) this.B[y] = (1 - this.alpha) * this.B[y] + this.alpha * (t - this.A[y]);
      this.A[y] = t;
    }
  }
  count(j: number): number {
    return 1 / this.B[j];
  }
}

/**
 * GNNO (Fan et al. 2023) with a boolean transition graph: items up to `window` positions apart in a user's
 * sequence are neighbours (both ways, no self-links); J(i,j) = |N(i)∩N(j)| / |N(i)∪N(j)|;
 * p(j | i) ∝ exp(J/τ)·1[J ≤ h] over j ≠ i (candidates 'all', no top-k exclusion).
 */
export class Neighbourhood64 {
  private readonly nbr: Set<number>[];
  constructor(readonly numItems: number, sequences: number[][], window: number) {
    this.nbr = Array.from({ length: numItems }, () => new Set<number>());
    for (const s of sequences)
      for (let a = 0; a < s.length; a++)
        for (let k = 1; k <= window && a + k < s.length; k++) {
          if (s[a] === s[a + k]) continue;
          this.nbr[s[a]].add(s[a + k]);
          this.nbr[s[a + k]].add(s[a]);
        }
  }
  jaccard(i: number, j: number): number {
    const a = this.nbr[i];
    const b = this.nbr[j];
    let inter = 0;
    for (const x of a) if (b.has(x)) inter++;
    const union = a.size + b.size - inter;
    return union ? inter / union : 0;
  }
  probability(i: number, j: number, h: number, tau: number): number {
    if (j === i) return 0;
    let Z = 0;
    for (let k = 0; k < this.numItems; k++) if (k !== i && this.jaccard(i, k) <= h + 1e-12) Z += Math.exp(this.jaccard(i, k) / tau);
    const J = this.jaccard(i, j);
    return J <= h + 1e-12 ? Math.exp(J / tau) / Z : 0;
  }
}

/** One softmax column of the user→item direction. */
export interface Col64 {
  emb: Vec;
  /** Item id (also for a same-tower query column: the query row's positive item). */
  item: number;
  /** User whose positive (or query) the column is, else −1. */
  user: number;
  kind: 'positive' | 'negative' | 'query';
  /** The logQ term subtracted from the logit (0 for none). */
  logq: number;
}

export interface StepRecipe64 {
  temperature: number;
  inBatch: boolean;
  maskSameItem: boolean;
  maskSameUser: boolean;
  fnMask: { threshold?: number; margin?: number } | null;
  loss: { type: 'infonce' | 'debiased'; tauPlus: number; symmetric: boolean };
  sameTower: boolean;
}

/** Mean loss of rows whose positive is column i, from logits z (−∞ = masked). */
function rowsLoss(z: number[][], r: StepRecipe64): number {
  const scale = 1 / r.temperature;
  let total = 0;
  for (let i = 0; i < z.length; i++) {
    const row = z[i];
    if (r.loss.type === 'infonce') {
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      total += lse - row[i];
    } else {
      const tp = r.loss.tauPlus;
      const P = Math.exp(row[i]);
      let S = 0;
      let M = 0;
      row.forEach((v, j) => {
        if (j !== i && v !== -Infinity) (S += Math.exp(v)), M++;
      });
      const Ng = Math.max((S - tp * M * P) / (1 - tp), M * Math.exp(-scale));
      total += -Math.log(P / (P + Ng));
    }
  }
  return total / z.length;
}

/**
 * The step's loss: user→item over `cols` (positives first, column i = row i's positive), with the masks of
 * the recipe; with `symmetric`, the average with the item→user direction (rows = the positives' items,
 * columns = the batch's users, and with same-tower also the batch's items).
 */
export function stepLoss64(r: StepRecipe64, users: ArrayLike<number>, items: ArrayLike<number>, q: Vec[], cols: Col64[]): number {
  const B = users.length;
  const scale = 1 / r.temperature;
  const fnOff = (s: number, sPos: number) =>
    !!r.fnMask && ((r.fnMask.threshold !== undefined && s > r.fnMask.threshold) || (r.fnMask.margin !== undefined && s > sPos - r.fnMask.margin));
  const z: number[][] = [];
  for (let i = 0; i < B; i++) {
    const sPos = dot64(q[i], cols[i].emb);
    z.push(
      cols.map((c, j) => {
        const s = dot64(q[i], c.emb);
        if (j !== i) {
          let off = fnOff(s, sPos);
          if (c.kind === 'positive' && !r.inBatch) off = true;
          if (c.kind !== 'query' && r.maskSameItem && c.item === items[i]) off = true;
          if (c.kind === 'query' && c.item === items[i]) off = true; // the row's own query, and same-positive queries
          if (r.inBatch && r.maskSameUser && c.user >= 0 && c.user === users[i]) off = true;
          if (off) return -Infinity;
        }
        return scale * s - c.logq;
      }),
    );
  }
  const forward = rowsLoss(z, r);
  if (!r.loss.symmetric) return forward;
  const pEmb = cols.slice(0, B).map((c) => c.emb);
  const rcols: Array<{ emb: Vec; user: number; item: number }> = q.map((e, k) => ({ emb: e, user: users[k], item: items[k] }));
  if (r.sameTower) pEmb.forEach((e, k) => rcols.push({ emb: e, user: users[k], item: items[k] }));
  const zr: number[][] = [];
  for (let i = 0; i < B; i++) {
    const sPos = dot64(pEmb[i], q[i]);
    zr.push(
      rcols.map((c, j) => {
        const s = dot64(pEmb[i], c.emb);
        if (j !== i && (c.item === items[i] || c.user === users[i] || fnOff(s, sPos))) return -Infinity;
        return scale * s;
      }),
    );
  }
  return 0.5 * (forward + rowsLoss(zr, r));
}
