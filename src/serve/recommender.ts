/**
 * Answers queries against one loaded bundle: turns a request (known user, a new user's features, or an
 * item history) into a query vector, retrieves with the HNSW index or exactly, applies seen-item exclusion
 * and item filters, and falls back to popularity for queries the model cannot embed (cold start).
 * Everything here is synchronous and allocation-light: one instance serves every request for its bundle.
 */
import type { Backend } from '../compute/backend.ts';
import { QueryTower } from '../bundle/query-tower.ts';
import { SeqHistoryQuery } from '../bundle/seq.ts';
import { newUserInput, type UserFeatureSchema } from '../bundle/user-features.ts';
import type { Bundle } from '../bundle/read.ts';
import type { Hits } from '../index/ann-index.ts';
import { ExactSearcher } from '../index/exact.ts';
import { indexKind } from '../index/vector-index.ts';
import { BannedItems } from './banned-items.ts';
import { badRequest, notFound } from './errors.ts';
import type { EmbedBody, FilterBody, RecommendBody, SearchBody, SimilarBody } from './schemas.ts';

export type SearchMode = 'ann' | 'exact';

export interface ScoredItem {
  item: string;
  /** The item's display name, when the bundle carries names (export --item-names) and has one for it. */
  name?: string;
  score: number;
}

export interface RecommendResult {
  model: string;
  /** 'model': ranked by the two towers; 'popularity': the cold-start fallback (see `reason`). */
  source: 'model' | 'popularity';
  query: 'user' | 'features' | 'history' | 'item';
  reason?: string;
  /** How the candidates were found: the HNSW, IVF or LanceDB index, exact search, or the popularity list. */
  search: 'hnsw' | 'ivf' | 'lancedb' | 'exact' | 'popularity';
  k: number;
  items: ScoredItem[];
  excludedSeen?: number;
  warnings?: string[];
}

/** A document found by `POST /search`: its id, title (when the corpus has one) and best chunk's cosine. */
export interface ScoredDocument {
  id: string;
  title?: string;
  score: number;
}

export interface SearchResult {
  model: string;
  query: 'text';
  search: 'hnsw' | 'ivf' | 'lancedb' | 'exact';
  k: number;
  documents: ScoredDocument[];
}

const EXACT_AMONG_MAX = 50_000;
/** ANN over-fetch stops growing here; past it, exact search is cheaper than a huge graph search. */
const ANN_FETCH_MAX = 8192;

interface CompiledFilter {
  banned: BannedItems;
  /** Explicit allow-list (sorted item indices), or null for "every item". */
  allowed: Int32Array | null;
  warnings: string[];
}

export class Recommender {
  readonly tower: QueryTower;
  /** History queries of a bundle with a sequence tower (SASRec) run through it instead of mean pooling. */
  private readonly seqHistory: SeqHistoryQuery | null;
  private readonly exact: ExactSearcher;
  private popOrder: Int32Array | null = null;
  private valueLists = new Map<number, Int32Array[]>();
  private readonly q: Float32Array;
  /** The banned items of the query being answered (reused: queries are answered one at a time). */
  private readonly banned = new BannedItems();
  private featureSchema: UserFeatureSchema | null = null;

  constructor(
    readonly bundle: Bundle,
    private readonly backend: Backend,
    readonly defaultSearch: SearchMode,
    /** Allow-lists up to this length are searched exactly; longer ones filter over-fetched ANN results. */
    private readonly exactAmongMax = EXACT_AMONG_MAX,
  ) {
    this.tower = new QueryTower(bundle.query);
    this.seqHistory = bundle.sequence ? new SeqHistoryQuery(bundle.sequence, backend) : null;
    this.exact = new ExactSearcher(backend, bundle.itemEmb, bundle.manifest.model.items, bundle.manifest.model.dim);
    this.q = new Float32Array(bundle.manifest.model.dim);
  }

  get id(): string {
    return this.bundle.id;
  }

  recommend(b: RecommendBody): RecommendResult {
    const f = this.compileFilter(b.filter);
    const q = this.q;
    let query: RecommendResult['query'];
    let fallback: string | null = null;
    let excludedSeen = 0;
    if (b.user !== undefined) {
      query = 'user';
      const u = this.bundle.userIndex.get(b.user);
      if (u === undefined) fallback = `unknown user '${b.user}' (cold start)`;
      else {
        this.tower.embedUser(this.backend, u, q);
        if (b.excludeSeen) {
          const { offsets, cols } = this.bundle.seen;
          for (let i = offsets[u]; i < offsets[u + 1]; i++) f.banned.add(cols[i]);
          excludedSeen = offsets[u + 1] - offsets[u];
        }
      }
    } else if (b.features !== undefined) {
      query = 'features';
      const known = this.featureQuery(b.features, q, f.warnings);
      if (!known) fallback = 'none of the given feature values is known to the model (cold start)';
    } else {
      query = 'history';
      const items = this.historyQuery(b.history!, q, f.warnings);
      if (!items.length) fallback = 'none of the history items is known to the model (cold start)';
      else if (b.excludeSeen) {
        for (const j of items) f.banned.add(j);
        excludedSeen = new Set(items).size;
      }
    }
    // Object literals, not spreads, in the order the answer has always had.
    let r: RecommendResult;
    if (fallback !== null) {
      r = { model: this.id, k: b.k, source: 'popularity', query, reason: fallback, search: 'popularity', items: this.popular(b.k, f) };
    } else {
      const { hits, search } = this.retrieve(q, b.k, f, b.search ?? this.defaultSearch);
      r = { model: this.id, k: b.k, source: 'model', query, search, items: this.named(hits), excludedSeen };
    }
    if (f.warnings.length) r.warnings = f.warnings;
    return r;
  }

  similar(b: SimilarBody): RecommendResult {
    const j = this.itemIndex(b.item);
    const f = this.compileFilter(b.filter);
    f.banned.add(j);
    const dim = this.q.length;
    const q = this.bundle.itemEmb.subarray(j * dim, (j + 1) * dim);
    const { hits, search } = this.retrieve(q, b.k, f, b.search ?? this.defaultSearch);
    return { model: this.id, source: 'model', query: 'item', search, k: b.k, items: this.named(hits), ...(f.warnings.length ? { warnings: f.warnings } : {}) };
  }

  /**
   * The k best documents for a query text (text bundles): the best chunks are retrieved and a document scores
   * its best chunk, so chunks are fetched until k distinct documents are found (or every chunk is seen).
   */
  search(b: SearchBody): SearchResult {
    const t = this.bundle.text;
    if (!t) throw badRequest('this model is not a text dual encoder: /search takes a text model (towerlab text); use /recommend');
    const q = this.q;
    if (!t.tower.embed(this.backend, b.query, q)) throw badRequest('query: no searchable words (after lowercasing and stop-word removal)');
    const chunks = this.bundle.manifest.model.items;
    const docs = t.docIds.length;
    const k = Math.min(b.k, docs);
    let fetch = Math.min(chunks, Math.ceil((k * chunks) / docs) + 16);
    const none = this.compileFilter(undefined);
    for (;;) {
      const { hits, search } = this.retrieve(q, fetch, none, b.search ?? this.defaultSearch);
      const seen = new Set<number>();
      const out: ScoredDocument[] = [];
      // Hits come best first, so a document's first chunk here is its best among those fetched.
      for (let i = 0; i < hits.ids.length && out.length < k; i++) {
        const d = t.chunkDoc[hits.ids[i]];
        if (seen.has(d)) continue;
        seen.add(d);
        const title = t.titles[d];
        out.push(title ? { id: t.docIds[d], title, score: hits.scores[i] } : { id: t.docIds[d], score: hits.scores[i] });
      }
      if (out.length >= k || fetch >= chunks) return { model: this.id, query: 'text', search, k: b.k, documents: out };
      fetch = Math.min(chunks, fetch * 4);
    }
  }

  /** A query text's embedding (text bundles; the vector /search searches with). */
  embedText(text: string): Float32Array {
    const t = this.bundle.text;
    if (!t) throw badRequest("text: this model is not a text dual encoder; give 'user', 'features', 'history' or 'item'");
    const out = new Float32Array(this.q.length);
    if (!t.tower.embed(this.backend, text, out)) throw badRequest('text: no searchable words (after lowercasing and stop-word removal)');
    return out;
  }

  embed(b: EmbedBody): { model: string; query: string; dim: number; embedding: number[]; warnings?: string[] } {
    const dim = this.q.length;
    const out = new Float32Array(dim);
    const warnings: string[] = [];
    let query: string;
    if (b.text !== undefined) {
      query = 'text';
      out.set(this.embedText(b.text));
    } else if (b.user !== undefined) {
      query = 'user';
      const u = this.bundle.userIndex.get(b.user);
      if (u === undefined) throw notFound(`unknown user '${b.user}'`);
      this.tower.embedUser(this.backend, u, out);
    } else if (b.item !== undefined) {
      query = 'item';
      const j = this.itemIndex(b.item);
      out.set(this.bundle.itemEmb.subarray(j * dim, (j + 1) * dim));
    } else if (b.features !== undefined) {
      query = 'features';
      if (!this.featureQuery(b.features, out, warnings)) throw notFound('none of the given feature values is known to the model');
    } else {
      query = 'history';
      if (!this.historyQuery(b.history!, out, warnings).length) throw notFound('none of the history items is known to the model');
    }
    return { model: this.id, query, dim, embedding: Array.from(out), ...(warnings.length ? { warnings } : {}) };
  }

  private itemIndex(id: string): number {
    const j = this.bundle.itemIndex.get(id);
    if (j === undefined) throw notFound(`unknown item '${id}'`);
    return j;
  }

  /**
   * Query of a user known by features only: the mean id embedding plus the given feature values (categorical
   * values by name; dense features as numbers, zeros when not given), checked by bundle/user-features.ts.
   */
  private featureQuery(given: Record<string, string | number | number[]>, out: Float32Array, warnings: string[]): boolean {
    this.featureSchema ??= { categorical: this.bundle.userFeatures, dense: this.bundle.query.dense ?? [] };
    const input = newUserInput(given, this.featureSchema, badRequest);
    warnings.push(...input.warnings);
    if (input.known) this.tower.embedFeatures(this.backend, input.values, out, input.dense);
    return input.known > 0;
  }

  /** Query of an item history: the L2-normalised mean of the known items' embeddings. Returns the known items. */
  private historyQuery(history: string[], out: Float32Array, warnings: string[]): number[] {
    const dim = out.length;
    const emb = this.bundle.itemEmb;
    const known: number[] = [];
    const unknown: string[] = [];
    out.fill(0);
    for (const id of history) {
      const j = this.bundle.itemIndex.get(id);
      if (j === undefined) {
        unknown.push(id);
        continue;
      }
      known.push(j);
      for (let t = 0; t < dim; t++) out[t] += emb[j * dim + t];
    }
    if (unknown.length) warnings.push(`history: ${unknown.length} unknown item${unknown.length > 1 ? 's' : ''} ignored (${unknown.slice(0, 5).map((s) => `'${s}'`).join(', ')}${unknown.length > 5 ? ', …' : ''})`);
    if (this.seqHistory && known.length) {
      this.seqHistory.embed(known, out); // order-aware: the sequence tower's output after the last item
      return known;
    }
    let n = 0;
    for (let t = 0; t < dim; t++) n += out[t] * out[t];
    n = Math.sqrt(n) || 1;
    for (let t = 0; t < dim; t++) out[t] /= n;
    return known;
  }

  private compileFilter(fb: FilterBody | undefined): CompiledFilter {
    this.banned.clear();
    const out: CompiledFilter = { banned: this.banned, allowed: null, warnings: [] };
    if (!fb) return out;
    const idx = this.bundle.itemIndex;
    const unknownIds = (field: string, ids: string[]) => {
      const bad = ids.filter((s) => !idx.has(s));
      if (bad.length) out.warnings.push(`filter.${field}: ${bad.length} unknown item${bad.length > 1 ? 's' : ''} ignored`);
    };
    if (fb.exclude) {
      unknownIds('exclude', fb.exclude);
      for (const s of fb.exclude) {
        const j = idx.get(s);
        if (j !== undefined) out.banned.add(j);
      }
    }
    let allowed: Int32Array | null = null;
    if (fb.include) {
      unknownIds('include', fb.include);
      const set = new Set<number>();
      for (const s of fb.include) {
        const j = idx.get(s);
        if (j !== undefined) set.add(j);
      }
      allowed = Int32Array.from(set).sort();
    }
    for (const [name, values] of Object.entries(fb.features ?? {})) {
      const fi = this.bundle.itemFeatures.findIndex((f) => f.name === name);
      if (fi < 0) {
        const have = this.bundle.itemFeatures.map((f) => `'${f.name}'`).join(', ');
        throw badRequest(`filter.features.${name}: unknown item feature (${have ? `the model has ${have}` : 'the model has no item features'})`);
      }
      const lists = this.itemsByValue(fi);
      const feat = this.bundle.itemFeatures[fi];
      const parts: Int32Array[] = [];
      for (const v of values) {
        const vi = feat.index.get(v);
        if (vi === undefined) out.warnings.push(`filter.features.${name}: unknown value '${v}'`);
        else parts.push(lists[vi]);
      }
      const union = Int32Array.from(new Set(parts.flatMap((p) => Array.from(p)))).sort();
      allowed = allowed ? intersectSorted(allowed, union) : union;
    }
    out.allowed = allowed;
    return out;
  }

  /** For item feature `fi`: the items holding each value (built on first use). */
  private itemsByValue(fi: number): Int32Array[] {
    let lists = this.valueLists.get(fi);
    if (!lists) {
      const f = this.bundle.itemFeatures[fi];
      const counts = new Int32Array(f.vocab.length);
      for (const v of f.values) counts[v]++;
      lists = Array.from(counts, (c) => new Int32Array(c));
      const fill = new Int32Array(f.vocab.length);
      f.values.forEach((v, j) => (lists![v][fill[v]++] = j));
      this.valueLists.set(fi, lists);
    }
    return lists;
  }

  private retrieve(q: Float32Array, k: number, f: CompiledFilter, mode: SearchMode): { hits: Hits; search: 'hnsw' | 'ivf' | 'lancedb' | 'exact' } {
    const n = this.bundle.manifest.model.items;
    const { banned, allowed } = f;
    if (allowed && allowed.length <= this.exactAmongMax) {
      const cand = banned.size ? allowed.filter((j) => !banned.has(j)) : allowed;
      return { hits: this.exact.searchAmong(q, k, cand), search: 'exact' };
    }
    let mask: Uint8Array | null = null;
    if (allowed) {
      mask = new Uint8Array(n);
      for (const j of allowed) mask[j] = 1;
    }
    const index = this.bundle.index;
    if (mode === 'ann' && index) {
      const factor = allowed ? Math.ceil(n / Math.max(1, allowed.length)) : 1;
      let fetch = Math.min(n, (k + banned.size) * factor + 16);
      for (;;) {
        const h = index.search(q, fetch);
        // Kept in place: the index hands back arrays of its own for each search.
        let got = 0;
        for (let i = 0; i < h.ids.length && got < k; i++) {
          const j = h.ids[i];
          if (banned.has(j) || (mask && !mask[j])) continue;
          h.ids[got] = j;
          h.scores[got++] = h.scores[i];
        }
        if (got >= k || fetch >= n) return { hits: { ids: h.ids.subarray(0, got), scores: h.scores.subarray(0, got) }, search: indexKind(index.config) };
        if (fetch >= ANN_FETCH_MAX) break;
        fetch = Math.min(n, fetch * 4);
      }
    }
    const skip = mask ? (j: number) => mask![j] === 0 : null;
    return { hits: this.exact.search(q, k, skip, banned), search: 'exact' };
  }

  /** Most interacted-with items that pass the filter; the score is the training interaction count. */
  private popular(k: number, f: CompiledFilter): ScoredItem[] {
    if (!this.popOrder) {
      const c = this.bundle.itemCounts;
      this.popOrder = Int32Array.from(c.keys()).sort((a, b) => c[b] - c[a] || a - b);
    }
    const allowed = f.allowed ? new Set(f.allowed) : null;
    const out: ScoredItem[] = [];
    for (const j of this.popOrder) {
      if (out.length >= k) break;
      if (f.banned.has(j) || (allowed && !allowed.has(j))) continue;
      out.push(this.scored(j, this.bundle.itemCounts[j]));
    }
    return out;
  }

  private named(h: Hits): ScoredItem[] {
    const out = new Array<ScoredItem>(h.ids.length);
    for (let i = 0; i < out.length; i++) out[i] = this.scored(h.ids[i], h.scores[i]);
    return out;
  }

  private scored(j: number, score: number): ScoredItem {
    const name = this.bundle.itemNames?.[j];
    return name ? { item: this.bundle.itemIds[j], name, score } : { item: this.bundle.itemIds[j], score };
  }
}

function intersectSorted(a: Int32Array, b: Int32Array): Int32Array {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push(a[i]);
      i++;
      j++;
    } else if (a[i] < b[j]) i++;
    else j++;
  }
  return Int32Array.from(out);
}
