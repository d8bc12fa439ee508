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
/** Mean seconds between a user's consecutive events. */
const MEAN_GAP = 3600;

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

/**
 * Walker/Vose alias table over positions lo..hi-1 with weights w[lo..hi): afterwards a draw is
 * p = lo + uniform(hi - lo), then p if uniform < prob[p] else alias[p] — O(1) and two memory reads.
 */
function buildAlias(w: Float64Array, lo: number, hi: number, prob: Float64Array, alias: Int32Array, stack: Int32Array): void {
  const n = hi - lo;
  let total = 0;
  for (let p = lo; p < hi; p++) total += w[p];
  // stack holds small entries from the bottom (lo..) and large ones from the top (..hi-1).
  let ns = lo;
  let nl = hi;
  for (let p = lo; p < hi; p++) {
    prob[p] = (w[p] * n) / total;
    alias[p] = p;
    if (prob[p] < 1) stack[ns++] = p;
    else stack[--nl] = p;
  }
  while (ns > lo && nl < hi) {
    const sm = stack[--ns];
    const lg = stack[nl];
    alias[sm] = lg;
    prob[lg] += prob[sm] - 1;
    if (prob[lg] < 1) {
      nl++;
      stack[ns++] = lg;
    }
  }
  while (nl < hi) prob[stack[nl++]] = 1;
  while (ns > lo) prob[stack[--ns]] = 1;
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

  // Alias tables: global (by item index) and per cluster (items grouped by cluster, CSR-style).
  const prob = new Float64Array(I);
  const alias = new Int32Array(I);
  const stack = new Int32Array(I);
  buildAlias(weight, 0, I, prob, alias, stack);
  const clusterStart = new Int32Array(C + 1);
  for (let j = 0; j < I; j++) clusterStart[itemCluster[j] + 1]++;
  for (let c = 0; c < C; c++) clusterStart[c + 1] += clusterStart[c];
  const clusterItems = new Int32Array(I);
  const fill = clusterStart.slice(0, C);
  for (let j = 0; j < I; j++) clusterItems[fill[itemCluster[j]]++] = j;
  const clusterWeight = new Float64Array(I);
  for (let p = 0; p < I; p++) clusterWeight[p] = weight[clusterItems[p]];
  const probC = new Float64Array(I);
  const aliasC = new Int32Array(I);
  for (let c = 0; c < C; c++) buildAlias(clusterWeight, clusterStart[c], clusterStart[c + 1], probC, aliasC, stack);

  // Users: a cluster and a lognormal count around perUser, capped so draws without repetition stay cheap.
  const userCluster = new Int32Array(U);
  const counts = new Int32Array(U);
  const cap = Math.max(MIN_PER_USER, Math.floor(I / 2));
  for (let u = 0; u < U; u++) {
    userCluster[u] = u < C ? u : structRng.int(C);
    const n = Math.round(o.perUser * Math.exp(0.6 * structRng.normal() - 0.18));
    counts[u] = Math.min(cap, Math.max(MIN_PER_USER, n));
  }
  structRng.shuffle(userCluster);
  const offsets = new Int32Array(U + 1);
  for (let u = 0; u < U; u++) offsets[u + 1] = offsets[u] + counts[u];
  const total = offsets[U];

  // Draw users cluster by cluster (their cluster's alias table stays in cache), writing each user's rows at its
  // own offset so the log comes out grouped by user, in time order within a user.
  const byCluster = csrOrder(userCluster, C);
  const users = new Int32Array(total);
  const items = new Int32Array(total);
  const times = new Float64Array(total);
  // Gaps average an hour; starts spread over ~4 typical histories, so most users overlap some others.
  const startSpread = Math.ceil(4 * o.perUser * MEAN_GAP);
  const got = new Int32Array(U);
  const seenBy = new Int32Array(I); // user + 1 that last took the item: O(1) duplicate check without a Set
  for (let q = 0; q < U; q++) {
    const u = byCluster[q];
    const c = userCluster[u];
    const lo = clusterStart[c];
    const size = clusterStart[c + 1] - lo;
    let w = offsets[u];
    let t = drawRng.int(startSpread); // users start at different times, so the global log interleaves them
    // Each slot picks its source once (so `noise` is the share of interactions, not of draws), then redraws on a
    // repeat; a cluster that keeps colliding (small, or dominated by one item) hands the slot to global popularity.
    let budget = 50 * counts[u] + 100;
    for (let k = 0; k < counts[u] && budget > 0; k++) {
      let global = drawRng.next() < noise;
      for (let tries = 0; budget > 0; tries++, budget--) {
        if (tries === 30) global = true;
        let j: number;
        if (global) {
          const p = drawRng.int(I);
          j = drawRng.next() < prob[p] ? p : alias[p];
        } else {
          const p = lo + drawRng.int(size);
          j = clusterItems[drawRng.next() < probC[p] ? p : aliasC[p]];
        }
        if (seenBy[j] === u + 1) continue;
        seenBy[j] = u + 1;
        t += 1 + Math.floor(-Math.log(1 - drawRng.next()) * MEAN_GAP);
        users[w] = u;
        items[w] = j;
        times[w] = t;
        w++;
        break;
      }
    }
    got[u] = w - offsets[u];
  }
  const short = got.some((g, u) => g < counts[u]);

  const names = (prefix: string, n: number) => Array.from({ length: n }, (_, k) => `${prefix}${k}`);
  const clusterFeature = (name: string, truth: Int32Array): CategoricalFeature => {
    const vocab = Vocab.from([MISSING_VALUE, ...names('c', C)]);
    const values = new Int32Array(truth.length);
    for (let e = 0; e < truth.length; e++) values[e] = 1 + (featRng.next() < FEATURE_AGREEMENT ? truth[e] : featRng.int(C));
    return { name, vocab, values };
  };

  return {
    source: `synthetic:users=${U},items=${I},clusters=${C},zipf=${zipf},seed=${o.seed},perUser=${o.perUser},noise=${noise}`,
    users: short ? compact(users, offsets, got) : users,
    items: short ? compact(items, offsets, got) : items,
    times: short ? compact(times, offsets, got) : times,
    ratings: null,
    userVocab: Vocab.fromUnique(names('u', U)),
    itemVocab: Vocab.fromUnique(names('i', I)),
    userFeatures: [clusterFeature('user_segment', userCluster)],
    itemFeatures: [clusterFeature('item_category', itemCluster)],
    userCluster,
    itemCluster,
  };
}

/** Entities 0..n-1 ordered by group (stable), e.g. users by cluster. */
function csrOrder(group: Int32Array, groups: number): Int32Array {
  const start = new Int32Array(groups + 1);
  for (let e = 0; e < group.length; e++) start[group[e] + 1]++;
  for (let g = 0; g < groups; g++) start[g + 1] += start[g];
  const out = new Int32Array(group.length);
  for (let e = 0; e < group.length; e++) out[start[group[e]]++] = e;
  return out;
}

/** Drops the unused tail of each user's slot (only when a tiny catalogue ran out of distinct items). */
function compact<T extends Int32Array | Float64Array>(a: T, offsets: Int32Array, got: Int32Array): T {
  let n = 0;
  for (let u = 0; u < got.length; u++) n += got[u];
  const out = new (a.constructor as new (n: number) => T)(n);
  for (let u = 0, w = 0; u < got.length; u++) {
    out.set(a.subarray(offsets[u], offsets[u] + got[u]), w);
    w += got[u];
  }
  return out;
}
