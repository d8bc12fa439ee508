/**
 * GNNO's sampled evaluation protocol (ReChorus, as in the GNNO authors' data/Beauty.ipynb): each user's
 * held-out target is ranked against N items drawn uniformly, without replacement, from the items the user
 * never interacted with (anywhere in their sequence, target included): N = 1000 in GNNO's Beauty notebook,
 * 99 in ReChorus' default. rank = 1 + #{negatives scoring ≥ the target} (ties count against the target, as
 * ReChorus' `(pred >= pred[:, 0]).sum()`), HR@K = 1[rank ≤ K], NDCG@K = 1[rank ≤ K] / log2(rank + 1).
 * History exclusion is moot here: no history item is ever a negative.
 * Sampled metrics rank models differently from full ranking (Krichene & Rendle 2020): report both, named.
 * The negatives of user u depend only on (seed, u) and the user's items, so every model evaluated on the
 * same data sees the same negatives whatever the user subset or batch order.
 */
import type { Backend } from '../compute/backend.ts';
import { csrRow, type Csr } from '../data/csr.ts';
import { Rng } from '../util/rng.ts';
import type { SeqData } from './data.ts';
import { scoringItems, sequenceUserEmbeddings } from './evaluate.ts';
import type { ScoreKind } from './objectives.ts';
import type { SeqTower } from './tower.ts';

export interface SampledOptions {
  /** Negatives per user (GNNO Beauty: 1000; ReChorus default: 99). */
  negatives: number;
  ks: number[];
  score: ScoreKind;
  /** Seed of the negative draw (default 0, as the notebook). */
  seed?: number;
  /** Evaluate these users only (default: all with a target). */
  users?: Int32Array;
}

export interface SampledResult {
  metrics: Record<string, number>;
  users: number;
  protocol: string;
}

export function sampledProtocolText(negatives: number, items: number): string {
  return `leave-last-one-out, the target ranked against ${negatives} uniformly sampled items the user never interacted with (GNNO/ReChorus sampled protocol; seed-fixed, the same negatives for every model) out of ${items} items; ties count against the target`;
}

/** Up to n distinct items outside `interacted` (in draw order), drawn by a per-user seeded generator. */
export function drawNegatives(u: number, interacted: Set<number>, numItems: number, n: number, seed: number, out: Int32Array): number {
  const avail = numItems - interacted.size;
  const want = Math.min(n, Math.max(0, avail));
  const rng = new Rng((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(u + 1, 0x85ebca6b)) >>> 0);
  if (want > avail / 2) {
    // Dense case: shuffle the available items and take a prefix (rejection would crawl).
    const pool: number[] = [];
    for (let j = 0; j < numItems; j++) if (!interacted.has(j)) pool.push(j);
    for (let i = 0; i < want; i++) {
      const k = i + rng.int(pool.length - i);
      [pool[i], pool[k]] = [pool[k], pool[i]];
      out[i] = pool[i];
    }
    return want;
  }
  const picked = new Set<number>();
  let c = 0;
  while (c < want) {
    const j = rng.int(numItems);
    if (interacted.has(j) || picked.has(j)) continue;
    picked.add(j);
    out[c++] = j;
  }
  return want;
}

/** 1-based rank of the target among itself and the negatives (ties against the target). */
export function sampledRank(target: number, negatives: ArrayLike<number>, count = negatives.length): number {
  let r = 1;
  for (let i = 0; i < count; i++) if (negatives[i] >= target) r++;
  return r;
}

/** Adds HR@K and NDCG@K of one rank into `acc`. */
function accumulate(acc: Record<string, number>, rank: number, ks: number[]): void {
  for (const k of ks) {
    if (rank <= k) {
      acc[`hr@${k}`] += 1;
      acc[`ndcg@${k}`] += 1 / Math.log2(rank + 1);
    }
  }
}

/**
 * The sampled metrics from precomputed vectors: userVecs (users.length × dim), items (numItems × dim),
 * targets[u], and the negatives of each user given by `negs(u, out) → count`. Exposed for tests.
 */
export function sampledMetrics(
  users: Int32Array,
  userVecs: Float32Array,
  items: Float32Array,
  dim: number,
  targets: Int32Array,
  negs: (u: number, out: Int32Array) => number,
  maxNeg: number,
  ks: number[],
): { metrics: Record<string, number>; ranks: Int32Array } {
  const acc: Record<string, number> = {};
  for (const k of ks) acc[`hr@${k}`] = acc[`ndcg@${k}`] = 0;
  const ranks = new Int32Array(users.length);
  const ids = new Int32Array(maxNeg);
  const scores = new Float64Array(maxNeg);
  const dot = (q: number, j: number) => {
    let s = 0;
    for (let t = 0; t < dim; t++) s += userVecs[q + t] * items[j * dim + t];
    return s;
  };
  for (let r = 0; r < users.length; r++) {
    const u = users[r];
    const c = negs(u, ids);
    const q = r * dim;
    for (let i = 0; i < c; i++) scores[i] = dot(q, ids[i]);
    const rank = sampledRank(dot(q, targets[u]), scores, c);
    ranks[r] = rank;
    accumulate(acc, rank, ks);
  }
  const n = Math.max(1, users.length);
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(acc)) metrics[k] = v / n;
  return { metrics, ranks };
}

/** The sampled protocol on the validation or test targets of `data`. */
export function evaluateSampled(backend: Backend, tower: SeqTower, data: SeqData, part: 'val' | 'test', o: SampledOptions): SampledResult {
  const history = part === 'val' ? data.train : data.trainVal;
  const targets = part === 'val' ? data.valItem : data.testItem;
  const seed = o.seed ?? 0;
  // Users without a target have nothing to rank (as in the full-ranking evaluator, which drops them too).
  let users = o.users?.filter((u) => targets[u] >= 0);
  if (!users) {
    const all: number[] = [];
    targets.forEach((j, u) => j >= 0 && all.push(u));
    users = Int32Array.from(all);
  }
  const d = tower.dim;
  const items = scoringItems(backend, tower, o.score);
  const embed = sequenceUserEmbeddings(backend, tower, history);
  const acc: Record<string, number> = {};
  for (const k of o.ks) acc[`hr@${k}`] = acc[`ndcg@${k}`] = 0;
  const block = 1024;
  const vecs = new Float32Array(block * d);
  for (let s = 0; s < users.length; s += block) {
    const part_ = users.subarray(s, Math.min(users.length, s + block));
    embed(part_, vecs);
    const r = sampledMetrics(part_, vecs, items, d, targets, (u, out) => drawNegatives(u, interactedSet(data, u), data.numItems, o.negatives, seed, out), o.negatives, o.ks);
    for (const k of Object.keys(acc)) acc[k] += r.metrics[k] * part_.length;
  }
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(acc)) metrics[k] = v / Math.max(1, users.length);
  return { metrics, users: users.length, protocol: sampledProtocolText(o.negatives, data.numItems) };
}

/** Every item of u's sequence: training, validation and test. */
function interactedSet(data: SeqData, u: number): Set<number> {
  const s = new Set<number>(csrRow(data.trainVal as Csr, u));
  if (data.testItem[u] >= 0) s.add(data.testItem[u]);
  if (data.valItem[u] >= 0) s.add(data.valItem[u]);
  return s;
}
