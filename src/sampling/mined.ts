/**
 * Mined hard negatives as a negative source: per training row (user, positive), n items a retriever ranks high
 * for the user that are not known positives, after false-negative filtering (rank window, margin to the
 * positive's score, max score; see hard-negative-filter.ts). All rows' negatives become shared softmax columns, and the
 * masks (same item, same user) apply to them as to any source.
 *  - offline (`from`: a JSONL path written by `towerlab mine`): each row takes n negatives of its
 *    (user, positive) group, or of any group of the user when that pair was not mined;
 *  - online (`from: 'online'`, ANCE, Xiong et al. 2021): every `refreshEvery` steps the items are re-embedded
 *    with the live model and the exact (or HNSW) index rebuilt; users' lists are mined lazily as they appear
 *    in batches and cached until the next refresh. The live model reaches the source only as a retriever
 *    factory the trainer hands in (live-retriever.ts), so sampling imports no model.
 * logQ: mined negatives are chosen, not drawn from a proposal, so they get no sampling correction: their
 * columns carry logq = 0 (the log of "present once, with certainty") and flag `fixedLogQ`, so the mixture of
 * the other sources does not overwrite it; the source adds nothing to other columns' expected counts.
 * That is right for the row that owns a mined negative, but every row's negatives are shared columns, and to
 * the other rows they are draws from a popularity-like distribution (the items retrievers rank high). With
 * `correction: 'frequency'` the source is treated as that proposal instead: E[count_j] = B · r_j, where r_j is
 * the expected draws of j per row, counted over the file's groups (offline) or as a decayed running average
 * of observed draws (online, α = 0.01 per step, like Yi et al.'s streaming estimate); the mixture logQ then
 * covers mined columns as it covers in-batch and random ones.
 */
import { readFileSync } from 'node:fs';
import { csrFromPairs, type Csr } from '../data/csr.ts';
import { InputError, UserError } from '../util/errors.ts';
import { selectHardNegatives } from './hard-negative-filter.ts';
import type { LiveRetriever, LiveRetrieverFactory } from './live-retriever.ts';
import type { BatchContext, Candidates, NegativeSource } from './source.ts';
import type { SourceLimits } from '../recipe/limits.ts';

/** The recipe fields of a `mined` source (see recipe/schema.ts). */
export interface MinedSpec {
  n: number;
  from: string;
  refreshEvery: number;
  rankRange: [number, number];
  margin?: number;
  relative: boolean;
  maxScore?: number;
  sample: 'top' | 'random';
  search: 'exact' | 'hnsw';
  /** 'none': no logQ for mined columns; 'frequency': they join the mixture as a proposal (see the header). */
  correction?: 'none' | 'frequency';
}

export interface MinedContext {
  numItems: number;
  trainUsers?: Int32Array;
  trainItems: Int32Array;
  /** Online mining: builds a retriever over the live model (the trainer that owns the model hands it in). */
  liveRetriever?: LiveRetrieverFactory;
  userIds?: string[];
  itemIds?: string[];
  /**
   * Pools the data provides under a name (text retrieval: 'bm25', each query's BM25 top documents minus its
   * positives): `from` names them instead of a file. Keyed by user (query id); null = no pools of that name.
   */
  namedPools?: (from: string, spec: MinedSpec, field: string) => Map<number, Int32Array> | null;
}

interface CachedList {
  ids: Int32Array;
  scores: Float32Array;
  emb: Float32Array;
}

export class MinedSource implements NegativeSource {
  readonly name = 'mined';
  readonly usesPositives = false;

  /** Memory estimate of the recipe's sizes (recipe/limits.ts). */
  static limits(s: MinedSpec, lim: SourceLimits, field: (k: string) => string): void {
    const { N, B } = lim;
    if (s.n > N) lim.fail(field('n'), `${s.n} negatives per row, but the catalogue has ${N} items`);
    const hi = Math.min(s.rankRange[1], N);
    lim.check(field('n'), `${s.n} negatives per row (${s.n * B} per batch of ${B})`, lim.columnBytes(s.n * B), s.n * B * Math.max(lim.d, B));
    lim.check(field('rankRange'), `candidate lists of ${hi} per row`, B * hi * 8, B * hi);
  }

  stats(): Record<string, number> {
    return { refreshes: this.refreshes, refreshSeconds: this.refreshSeconds };
  }
  /** Number of index refreshes so far (online). */
  refreshes = 0;
  /** Seconds spent re-embedding and re-indexing (online). */
  refreshSeconds = 0;
  private ids = new Int32Array(0);
  private logq = new Float32Array(0);
  private groups: Map<number, Int32Array> | null = null;
  private byUser: Map<number, Int32Array> | null = null;
  private retriever: LiveRetriever | null = null;
  private lastRefresh = -Infinity;
  private cache = new Map<number, CachedList>();
  /** Per-step scratch, grown on demand (the online path runs every step). */
  private listIds = new Int32Array(0);
  private listScores = new Float32Array(0);
  private posScores = new Float32Array(0);
  private perm = new Int32Array(0);
  private seen: Csr | null = null;
  /** Expected draws per row of each item (correction 'frequency'); online: decayed lazily from lastSeen. */
  private rate: Float64Array | null = null;
  private lastSeen: Float64Array | null = null;
  private step = 0;

  constructor(
    readonly spec: MinedSpec,
    private readonly ctx: MinedContext,
    where = 'sources',
  ) {
    if (spec.rankRange[1] <= spec.rankRange[0]) throw new UserError(`recipe: field '${where}.rankRange': end must be above start, got [${spec.rankRange.join(', ')}]`);
    if (spec.correction === 'frequency') {
      this.rate = new Float64Array(ctx.numItems);
      this.lastSeen = new Float64Array(ctx.numItems);
    }
    // Pools the data names (text: 'bm25') come first; the data may also refuse a `from` it cannot serve.
    const named = ctx.namedPools?.(spec.from, spec, `${where}.from`) ?? null;
    if (named) this.usePools(named);
    else if (spec.from === 'online') {
      if (!ctx.liveRetriever) throw new UserError(`recipe: field '${where}.from': online mining needs the live model (train with towerlab train or runExperiment)`);
      if (!ctx.trainUsers) throw new UserError(`recipe: field '${where}.from': online mining needs the training users`);
      this.seen = csrFromPairs(maxPlusOne(ctx.trainUsers), ctx.trainUsers, ctx.trainItems, true);
    } else this.loadFile(spec.from, where);
  }

  /** Per-user pools given in memory (namedPools): every row of a user draws from its user's pool. */
  private usePools(pools: Map<number, Int32Array>): void {
    this.groups = new Map();
    this.byUser = pools;
    if (!this.rate) return;
    // Expected draws per row, as take() draws, weighted by the user's training rows.
    const rows = new Map<number, number>();
    for (const u of this.ctx.trainUsers ?? []) rows.set(u, (rows.get(u) ?? 0) + 1);
    let total = 0;
    for (const [u, g] of pools) {
      const w = rows.get(u) ?? 0;
      total += w;
      if (this.spec.sample === 'top') for (let i = 0; i < Math.min(this.spec.n, g.length); i++) this.rate[g[i]] += w;
      else for (const j of g) this.rate[j] += w * Math.min(1, this.spec.n / g.length);
    }
    if (total) for (let j = 0; j < this.rate.length; j++) this.rate[j] /= total;
  }

  /** Reads `towerlab mine` JSONL groups into (user, positive) → negatives. */
  private loadFile(path: string, where: string): void {
    const { userIds, itemIds, numItems } = this.ctx;
    if (!userIds || !itemIds) throw new UserError(`recipe: field '${where}.from': a mined file needs the data's vocabularies`);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      throw new UserError(`recipe: field '${where}.from': cannot read mined negatives file '${path}'`);
    }
    if (path.endsWith('.parquet')) throw new UserError(`recipe: field '${where}.from': read mined negatives from JSONL (towerlab mine --out x.jsonl); Parquet is for other tools`);
    const uIdx = new Map(userIds.map((u, i) => [u, i]));
    const iIdx = new Map(itemIds.map((v, i) => [v, i]));
    this.groups = new Map();
    this.byUser = new Map();
    const lines = text.split('\n');
    let rows = 0;
    for (let ln = 0; ln < lines.length; ln++) {
      const line = lines[ln].trim();
      if (!line) continue;
      let g: any;
      try {
        g = JSON.parse(line);
      } catch {
        throw new InputError(path, ln + 1, undefined, 'not valid JSON');
      }
      const u = uIdx.get(String(g?.user));
      if (u === undefined) throw new InputError(path, ln + 1, 'user', `unknown user '${g?.user}' (not in the training data)`);
      const p = iIdx.get(String(g.positive));
      if (p === undefined) throw new InputError(path, ln + 1, 'positive', `unknown item '${g.positive}'`);
      if (!Array.isArray(g.negatives)) throw new InputError(path, ln + 1, 'negatives', 'must be an array of item ids');
      const negs = new Int32Array(g.negatives.length);
      g.negatives.forEach((x: unknown, i: number) => {
        const j = iIdx.get(String(x));
        if (j === undefined) throw new InputError(path, ln + 1, `negatives.${i}`, `unknown item '${x}'`);
        negs[i] = j;
      });
      this.groups.set(u * numItems + p, negs);
      if (this.rate) {
        // Expected draws per row, as take() draws: 'top' always takes the first n, 'random' each with n/|g|.
        if (this.spec.sample === 'top') for (let i = 0; i < Math.min(this.spec.n, negs.length); i++) this.rate[negs[i]] += 1;
        else for (const j of negs) this.rate[j] += Math.min(1, this.spec.n / negs.length);
      }
      rows++;
      if (!this.byUser.has(u)) this.byUser.set(u, negs);
    }
    if (this.rate && rows) for (let j = 0; j < numItems; j++) this.rate[j] /= rows;
  }

  sample(ctx: BatchContext): Candidates {
    const B = ctx.items.length;
    const n = this.spec.n;
    if (this.ids.length < B * n) {
      this.ids = new Int32Array(B * n);
      this.logq = new Float32Array(B * n);
    }
    let w = 0;
    if (this.groups) {
      for (let r = 0; r < B; r++) {
        const g = this.groups.get(ctx.users[r] * this.ctx.numItems + ctx.items[r]) ?? this.byUser!.get(ctx.users[r]);
        if (!g) continue;
        w = this.take(g, n, ctx, w);
      }
    } else {
      w = this.sampleOnline(ctx, w);
      if (this.rate) this.observe(this.ids.subarray(0, w), B, ctx.step);
    }
    this.step = ctx.step;
    return { ids: this.ids.subarray(0, w), logq: this.logq.subarray(0, w), userKey: null, embeddings: null, fixedLogQ: !this.rate };
  }

  /** Copies n of g's items (all when fewer; a random n when spec.sample is 'random') into ids from w. */
  private take(g: Int32Array, n: number, ctx: BatchContext, w: number): number {
    if (g.length <= n || this.spec.sample === 'top') {
      const m = Math.min(n, g.length);
      this.ids.set(g.subarray(0, m), w);
      return w + m;
    }
    if (this.perm.length < g.length) this.perm = new Int32Array(g.length);
    const idx = this.perm;
    for (let i = 0; i < g.length; i++) idx[i] = i;
    for (let i = 0; i < n; i++) {
      const j = i + ctx.rng.int(g.length - i);
      const t = idx[i];
      idx[i] = idx[j];
      idx[j] = t;
      this.ids[w++] = g[idx[i]];
    }
    return w;
  }

  /** Re-embeds and re-indexes when due (ANCE refresh), then mines the batch's rows from the users' lists. */
  private sampleOnline(ctx: BatchContext, w: number): number {
    if (!this.retriever || ctx.step - this.lastRefresh >= this.spec.refreshEvery) this.refresh(ctx.step);
    const ret = this.retriever!;
    const [start, end] = this.spec.rankRange;
    const K = Math.min(end, this.ctx.numItems);
    const missing = Array.from(new Set(ctx.users)).filter((u) => !this.cache.has(u));
    if (missing.length) {
      const q = Int32Array.from(missing);
      const lists = ret.retrieve(q, K);
      const emb = ret.embedUsers(q);
      const d = ret.dim;
      missing.forEach((u, r) =>
        this.cache.set(u, { ids: lists.ids.slice(r * K, r * K + K), scores: lists.scores.slice(r * K, r * K + K), emb: emb.slice(r * d, r * d + d) }),
      );
    }
    const B = ctx.users.length;
    if (this.listIds.length < B * K) {
      this.listIds = new Int32Array(B * K);
      this.listScores = new Float32Array(B * K);
    }
    if (this.posScores.length < B) this.posScores = new Float32Array(B);
    const lists = { rows: B, k: K, ids: this.listIds.subarray(0, B * K), scores: this.listScores.subarray(0, B * K) };
    const posScores = this.posScores.subarray(0, B);
    const d = ret.dim;
    for (let r = 0; r < B; r++) {
      const c = this.cache.get(ctx.users[r])!;
      lists.ids.set(c.ids, r * K);
      lists.scores.set(c.scores, r * K);
      const o = ctx.items[r] * d;
      let s = 0;
      for (let t = 0; t < d; t++) s += c.emb[t] * ret.itemEmb[o + t];
      posScores[r] = s;
    }
    const picked = selectHardNegatives(lists, (r) => [ctx.items[r]], this.spec.margin !== undefined ? posScores : null, {
      n: this.spec.n,
      rankStart: start,
      rankEnd: end,
      margin: this.spec.margin,
      relative: this.spec.relative,
      maxScore: this.spec.maxScore,
      sample: this.spec.sample,
      rng: ctx.rng,
    });
    for (let i = 0; i < picked.ids.length; i++) if (picked.ids[i] >= 0) this.ids[w++] = picked.ids[i];
    return w;
  }

  /** Rebuilds the index from the live model's weights and forgets the mined lists. */
  refresh(step: number): void {
    const t0 = performance.now();
    if (!this.retriever) this.retriever = this.ctx.liveRetriever!({ search: this.spec.search, exclude: this.seen });
    else this.retriever.refresh();
    this.cache.clear();
    this.lastRefresh = step;
    this.refreshes++;
    this.refreshSeconds += (performance.now() - t0) / 1000;
  }

  /** The current cached list of a user (online), for inspection and tests. */
  listFor(user: number): Int32Array | null {
    return this.cache.get(user)?.ids ?? null;
  }

  /** Online 'frequency': r_j ← (1 − α)^Δt · r_j + α · count_j / B for the drawn items (lazy decay). */
  private observe(ids: Int32Array, B: number, step: number): void {
    const rate = this.rate!;
    const last = this.lastSeen!;
    for (const j of ids) {
      if (last[j] !== step) {
        rate[j] *= Math.pow(1 - ALPHA, step - last[j]);
        last[j] = step;
      }
      rate[j] += ALPHA / B;
    }
  }

  logExpectedCount(ids: Int32Array, batchSize: number, out: Float32Array): void {
    if (!this.rate) {
      out.fill(-Infinity, 0, ids.length);
      return;
    }
    const online = this.spec.from === 'online';
    for (let i = 0; i < ids.length; i++) {
      const j = ids[i];
      const r = online ? this.rate[j] * Math.pow(1 - ALPHA, this.step - this.lastSeen![j]) : this.rate[j];
      out[i] = r > 0 ? Math.log(batchSize * r) : -Infinity;
    }
  }
}

const ALPHA = 0.01;

function maxPlusOne(a: Int32Array): number {
  let m = -1;
  for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
  return m + 1;
}
