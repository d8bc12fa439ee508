/**
 * A synthetic interaction log with planted structure, for tests, quickstarts and benchmarks without downloads.
 *
 * Every item and every user belongs to one of `clusters` clusters. Items have a Zipf(zipf) popularity over a random
 * popularity ranking, and clusters are dealt round-robin down that ranking, so popularity is skewed both globally
 * and inside each cluster (with the same exponent). A user's items are drawn
 * without repetition, mostly (1 - noise) from their own cluster by popularity and otherwise from global popularity.
 * A model that learns clusters therefore beats a popularity ranking by a wide margin, while popularity remains a
 * meaningful baseline. Each user and item also gets one categorical feature (user_segment / item_category) equal
 * to its cluster 80% of the time, so feature towers have signal to find.
 */
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { MISSING_VALUE } from './features.ts';
import { Vocab, type CategoricalFeature, type Interactions } from './types.ts';

export interface SyntheticOptions {
  users: number;
  items: number;
  clusters: number;
  /** Zipf exponent of item popularity (0 = uniform, 1 = classic long tail). */
  zipf: number;
  seed: number;
  /** Mean interactions per user (default 20; lognormal spread, at least 5). */
  perUser?: number;
  /** Fraction of a user's interactions drawn from global popularity instead of their cluster (default 0.15). */
  noise?: number;
}

/** The generated log plus the planted truth, for tests and diagnostics. */
export interface SyntheticInteractions extends Interactions {
  userCluster: Int32Array;
  itemCluster: Int32Array;
}

const DEFAULTS = { clusters: 10, zipf: 1, seed: 0, perUser: 20, noise: 0.15 };
/** How often the feature value equals the true cluster. */
const FEATURE_AGREEMENT = 0.8;
const MIN_PER_USER = 5;

/** Parses `synthetic:users=3000,items=2000,clusters=20,zipf=1.0,seed=7[,perUser=20][,noise=0.15]`. */
export function parseSyntheticSpec(spec: string): SyntheticOptions {
  const body = spec.replace(/^synthetic:/, '');
  const got: Record<string, number> = {};
  for (const part of body.split(',').filter((p) => p.trim() !== '')) {
    const [k, v, extra] = part.split('=').map((s) => s.trim());
    if (!['users', 'items', 'clusters', 'zipf', 'seed', 'perUser', 'noise'].includes(k) || v === undefined || extra !== undefined) {
      throw new UserError(
        `${spec}: cannot read '${part}'; expected key=value with keys users, items, clusters, zipf, seed, perUser, noise`,
      );
    }
    const x = Number(v);
    if (v === '' || !Number.isFinite(x)) throw new UserError(`${spec}: '${k}' must be a number, got '${v}'`);
    got[k] = x;
  }
  if (got.users === undefined || got.items === undefined) throw new UserError(`${spec}: 'users' and 'items' are required`);
  const o = { ...DEFAULTS, ...got } as Required<SyntheticOptions>;
  checkOptions(o, spec);
  return o;
}

function checkOptions(o: Required<SyntheticOptions>, where: string): void {
  const int = (k: keyof SyntheticOptions, min: number, max = Infinity) => {
    const v = o[k];
    if (!Number.isInteger(v) || v < min || v > max) throw new UserError(`${where}: '${k}' must be an integer in [${min}, ${max}], got ${v}`);
  };
  int('users', 1);
  int('items', 2 * MIN_PER_USER);
  int('clusters', 1, o.items);
  int('seed', 0, 2 ** 32 - 1);
  if (!(o.zipf >= 0)) throw new UserError(`${where}: 'zipf' must be >= 0, got ${o.zipf}`);
  if (!(o.perUser >= 1)) throw new UserError(`${where}: 'perUser' must be >= 1, got ${o.perUser}`);
  if (!(o.noise >= 0 && o.noise <= 1)) throw new UserError(`${where}: 'noise' must be in [0, 1], got ${o.noise}`);
}

/** Index of the first entry of cum[lo..hi) greater than x (cum ascending, x < cum[hi-1]). */
function upperBound(cum: Float64Array, lo: number, hi: number, x: number): number {
  const last = hi - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cum[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function generateSynthetic(options: SyntheticOptions): SyntheticInteractions {
  const o = { ...DEFAULTS, ...options } as Required<SyntheticOptions>;
  checkOptions(o, 'synthetic');
  const { users: U, items: I, clusters: C, zipf, noise } = o;
  const rng = new Rng(o.seed);
  const structRng = rng.fork();
  const drawRng = rng.fork();
  const featRng = rng.fork();

  // Items: Zipf weights over a random popularity ranking; clusters dealt round-robin down that ranking, so every
  // cluster gets a similar share of head and tail items (no cluster is one blockbuster plus noise).
  const rank = structRng.shuffle(Int32Array.from({ length: I }, (_, j) => j)); // rank[r] = item at rank r
  const weight = new Float64Array(I);
  const itemCluster = new Int32Array(I);
  const clusterOfRank = structRng.shuffle(Int32Array.from({ length: C }, (_, c) => c));
  for (let r = 0; r < I; r++) {
    weight[rank[r]] = Math.pow(r + 1, -zipf);
    itemCluster[rank[r]] = clusterOfRank[r % C];
  }

  // Cumulative tables: global (by item index) and per cluster (items grouped by cluster, CSR-style).
  const cumAll = new Float64Array(I);
  let acc = 0;
  for (let j = 0; j < I; j++) cumAll[j] = acc += weight[j];
  const clusterStart = new Int32Array(C + 1);
  for (let j = 0; j < I; j++) clusterStart[itemCluster[j] + 1]++;
  for (let c = 0; c < C; c++) clusterStart[c + 1] += clusterStart[c];
  const clusterItems = new Int32Array(I);
  const fill = clusterStart.slice(0, C);
  for (let j = 0; j < I; j++) clusterItems[fill[itemCluster[j]]++] = j;
  const cumCluster = new Float64Array(I);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let p = clusterStart[c]; p < clusterStart[c + 1]; p++) cumCluster[p] = s += weight[clusterItems[p]];
  }

  // Users: a cluster and a lognormal count around perUser, capped so draws without repetition stay cheap.
  const userCluster = new Int32Array(U);
  const counts = new Int32Array(U);
  const cap = Math.max(MIN_PER_USER, Math.floor(I / 2));
  let total = 0;
  for (let u = 0; u < U; u++) {
    userCluster[u] = u < C ? u : structRng.int(C);
    const n = Math.round(o.perUser * Math.exp(0.6 * structRng.normal() - 0.18));
    counts[u] = Math.min(cap, Math.max(MIN_PER_USER, n));
    total += counts[u];
  }
  structRng.shuffle(userCluster);

  const users = new Int32Array(total);
  const items = new Int32Array(total);
  const times = new Float64Array(total);
  const seenBy = new Int32Array(I); // user + 1 that last took the item: O(1) duplicate check without a Set
  let w = 0;
  for (let u = 0; u < U; u++) {
    const c = userCluster[u];
    const lo = clusterStart[c];
    const hi = clusterStart[c + 1];
    const clusterTotal = cumCluster[hi - 1];
    let t = drawRng.int(1_000_000); // users start at different times, so the global log interleaves them
    for (let k = 0, tries = 0; k < counts[u] && tries < 50 * counts[u] + 100; tries++) {
      // Off-cluster draw by noise, or after repeated collisions inside a small cluster.
      const global = drawRng.next() < noise || tries > 20 * (k + 1);
      const j = global
        ? upperBound(cumAll, 0, I, drawRng.next() * acc)
        : clusterItems[upperBound(cumCluster, lo, hi, drawRng.next() * clusterTotal)];
      if (seenBy[j] === u + 1) continue;
      seenBy[j] = u + 1;
      t += 1 + Math.floor(-Math.log(1 - drawRng.next()) * 3600);
      users[w] = u;
      items[w] = j;
      times[w] = t;
      w++;
      k++;
    }
  }

  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, k) => `${prefix}${k}`);
  const clusterFeature = (name: string, truth: Int32Array): CategoricalFeature => {
    const vocab = Vocab.from([MISSING_VALUE, ...names('c', C)]);
    const values = new Int32Array(truth.length);
    for (let e = 0; e < truth.length; e++) values[e] = 1 + (featRng.next() < FEATURE_AGREEMENT ? truth[e] : featRng.int(C));
    return { name, vocab, values };
  };

  return {
    source: `synthetic:users=${U},items=${I},clusters=${C},zipf=${zipf},seed=${o.seed},perUser=${o.perUser},noise=${noise}`,
    users: w === total ? users : users.slice(0, w),
    items: w === total ? items : items.slice(0, w),
    times: w === total ? times : times.slice(0, w),
    ratings: null,
    userVocab: Vocab.from(names('u', U)),
    itemVocab: Vocab.from(names('i', I)),
    userFeatures: [clusterFeature('user_segment', userCluster)],
    itemFeatures: [clusterFeature('item_category', itemCluster)],
    userCluster,
    itemCluster,
  };
}
