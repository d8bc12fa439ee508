/**
 * A trained two-tower model as the library hands it out: ids in and out as the data spelled them, embeddings,
 * top-k recommendations, save/load in the `towerlab-model` format (the one the CLI's `eval`, `export` and
 * `recommend` read).
 *
 * Queries: a known user id (its user-tower embedding), `{ history: [itemIds] }` — the normalised mean of the
 * history items' embeddings, the same history query a served bundle of a two-tower model uses — or
 * `{ features: { name: value } }`, a new user by its categorical / dense features: the served query tower's
 * answer to `/recommend {features}` (mean id row, the given values, zeros for a dense feature not given; the same
 * checks, bundle/user-features.ts).
 * Items: a known id, or `{ id, …features }` for an item outside the training data (cold start): its id row is
 * zero and its categorical / dense features carry it (see src/model/tower.ts).
 */
import type { Backend } from '../compute/backend.ts';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import type { Csr } from '../data/csr.ts';
import { MISSING_VALUE } from '../data/features.ts';
import { ExactSearcher } from '../index/exact.ts';
import { openModel } from '../bundle/open.ts';
import { QueryTower, queryTowerWeights } from '../bundle/query-tower.ts';
import { newUserInput, type UserFeatures, type UserFeatureSchema } from '../bundle/user-features.ts';
import { saveModel, type ModelArtifacts } from '../model/saved-model.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import { UserError } from '../util/errors.ts';
import type { FeatureValue, Id } from './data.ts';
import { isTextModelDir } from './text-model.ts';

export type { UserFeatures, UserFeatureValue } from '../bundle/user-features.ts';
/** A known user id, an item history, or a new user by its features (`{ features: { taste: [0.1, …], region: 'r1' } }`). */
export type Query = Id | { history: readonly Id[] } | { features: UserFeatures };
export type ItemInput = Id | ({ id?: Id } & Record<string, FeatureValue>);

export interface Recommendation {
  item: string;
  score: number;
}

export interface RecommendOptions {
  /** Leave out the user's training items / the history's items (default true). */
  excludeSeen?: boolean;
}

export class Model {
  private readonly userIndex: Map<string, number>;
  private readonly itemIndex: Map<string, number>;
  private itemEmb: Float32Array | null = null;
  private searcher: ExactSearcher | null = null;
  /** The serving query tower and feature vocabularies, for new users by features (built on first use). */
  private newUsers: { tower: QueryTower; schema: UserFeatureSchema } | null = null;

  constructor(
    /** The weights, vocabularies, features and metadata, as saved on disk. */
    readonly artifacts: ModelArtifacts,
    readonly backend: Backend,
    /** Test metrics of the run that trained it (empty when loaded without them). */
    readonly metrics: Record<string, number> = {},
  ) {
    this.userIndex = new Map(artifacts.userIds.map((id, i) => [id, i]));
    this.itemIndex = new Map(artifacts.itemIds.map((id, i) => [id, i]));
  }

  get towers(): TwoTowerModel {
    return this.artifacts.model;
  }

  /** Embedding size (both towers). */
  get dim(): number {
    return this.artifacts.model.dim;
  }

  get userIds(): readonly string[] {
    return this.artifacts.userIds;
  }

  get itemIds(): readonly string[] {
    return this.artifacts.itemIds;
  }

  /** Query embeddings, n×dim row-major (rows L2-normalised). */
  encodeQueries(queries: readonly Query[]): Float32Array {
    const out = new Float32Array(queries.length * this.dim);
    queries.forEach((q, r) => this.encodeQuery(q, out.subarray(r * this.dim, (r + 1) * this.dim)));
    return out;
  }

  /** Item embeddings, n×dim row-major (rows L2-normalised); `{ id?, …features }` embeds an item by its features. */
  encodeItems(items: readonly ItemInput[]): Float32Array {
    const d = this.dim;
    const out = new Float32Array(items.length * d);
    const all = this.allItems();
    items.forEach((it, r) => {
      if (typeof it !== 'object') out.set(all.subarray(this.item(it) * d, (this.item(it) + 1) * d), r * d);
      else out.set(this.embedItemFeatures(it), r * d);
    });
    return out;
  }

  /**
   * Embeddings of new users (not in the training data) from their features, n×dim row-major (rows
   * L2-normalised): `encodeUsers([{ taste: [0.1, …], region: 'r1' }])`. A dense feature takes a number or exactly
   * its width of finite numbers (zeros when not given); a categorical one a string (an unknown value = missing).
   * An unknown feature name, a wrong width, a non-finite number, or no known value at all is a UserError naming
   * the feature. The same embedding as the exported bundle's `/embed {features}` and the ONNX query tower.
   */
  encodeUsers(users: readonly UserFeatures[]): Float32Array {
    return this.encodeQueries(users.map((features) => ({ features })));
  }

  /** The k best items for a user id, `{ history }` or `{ features }` (a new user), best first. */
  recommend(query: Query, k = 10, options: RecommendOptions = {}): Recommendation[] {
    if (!Number.isInteger(k) || k < 1) throw new UserError(`recommend: k must be an integer >= 1, got ${k}`);
    const q = new Float32Array(this.dim);
    this.encodeQuery(query, q);
    const banned = options.excludeSeen === false ? [] : this.seenOf(query);
    const hits = this.search().search(q, k, null, banned);
    return Array.from(hits.ids, (j, r) => ({ item: this.artifacts.itemIds[j], score: hits.scores[r] }));
  }

  /** Writes the model (atomically) in the `towerlab-model` format; `load(dir)` and the CLI read it back. */
  save(dir: string): void {
    saveModel(dir, { ...this.artifacts, meta: { ...this.artifacts.meta, metrics: this.metrics } }, false);
  }

  private encodeQuery(q: Query, out: Float32Array): void {
    if (typeof q === 'object' && q !== null && 'features' in q) {
      this.embedNewUser(q.features, out);
      return;
    }
    if (typeof q === 'object' && q !== null && 'history' in q) {
      if (!Array.isArray(q.history) || q.history.length === 0) throw new UserError('query { history }: needs at least one item id');
      const all = this.allItems();
      const d = this.dim;
      out.fill(0);
      for (const id of q.history) {
        const j = this.item(id);
        for (let c = 0; c < d; c++) out[c] += all[j * d + c];
      }
      normalise(out);
      return;
    }
    const u = this.user(q as Id);
    this.towers.user.embed(this.backend, Int32Array.of(u), out);
  }

  private embedNewUser(features: UserFeatures, out: Float32Array): void {
    if (!this.newUsers) {
      const schema = {
        categorical: this.artifacts.userFeatures.map((f) => ({ name: f.name, index: new Map(f.vocab.map((v, j) => [v, j])) })),
        dense: this.towers.user.dense,
      };
      this.newUsers = { tower: new QueryTower(queryTowerWeights(this.artifacts)), schema };
    }
    const input = newUserInput(features, this.newUsers.schema, (m) => new UserError(m));
    if (!input.known) throw new UserError(`features: none of the given feature values is known to the model${input.warnings.length ? ` (${input.warnings.join('; ')})` : ''}`);
    this.newUsers.tower.embedFeatures(this.backend, input.values, out, input.dense);
  }

  private seenOf(q: Query): number[] {
    if (typeof q === 'object' && q !== null && 'features' in q) return []; // a new user has no training items
    if (typeof q === 'object' && q !== null && 'history' in q) return q.history.map((id) => this.item(id));
    const seen: Csr = this.artifacts.seen;
    const u = this.user(q as Id);
    return u < seen.rows ? Array.from(seen.cols.subarray(seen.offsets[u], seen.offsets[u + 1])) : [];
  }

  private embedItemFeatures(row: { id?: Id } & Record<string, FeatureValue>): Float32Array {
    const tower = this.towers.item;
    const id = row.id === undefined ? undefined : String(row.id);
    const known = id === undefined ? undefined : this.itemIndex.get(id);
    const given = (k: string) => row[k] !== undefined && row[k] !== null;
    for (const k of Object.keys(row)) {
      if (k !== 'id' && !this.artifacts.itemFeatures.some((f) => f.name === k) && !tower.dense.some((f) => f.name === k)) {
        throw new UserError(`item feature '${k}': the model has no such item feature (it has: ${[...this.artifacts.itemFeatures.map((f) => f.name), ...tower.dense.map((f) => f.name)].join(', ') || 'none'})`);
      }
    }
    // Missing values fall back to the known item's stored ones, else to "missing" (categorical) / zeros (dense).
    const categorical = this.artifacts.itemFeatures.map((f) => {
      if (!given(f.name)) return Int32Array.of(known !== undefined ? f.values[known] : 0);
      const v = f.vocab.indexOf(String(row[f.name]));
      return Int32Array.of(v > 0 && f.vocab[v] !== MISSING_VALUE ? v : 0);
    });
    const dense = tower.dense.map((f, k) => {
      const v = row[f.name];
      if (!given(f.name)) return known !== undefined ? tower.denseValues[k].slice(known * f.width, (known + 1) * f.width) : new Float32Array(f.width);
      const arr = typeof v === 'number' ? [v] : (v as ArrayLike<number>);
      if (typeof arr !== 'object' || arr === null || arr.length !== f.width) throw new UserError(`item feature '${f.name}': expected ${f.width} numbers, got ${typeof arr === 'object' && arr !== null ? arr.length : typeof arr}`);
      for (let j = 0; j < f.width; j++) if (typeof arr[j] !== 'number' || !Number.isFinite(arr[j])) throw new UserError(`item feature '${f.name}'[${j}]: not a finite number`);
      return Float32Array.from(arr);
    });
    const out = new Float32Array(this.dim);
    tower.embedRows(this.backend, Int32Array.of(known ?? -1), { categorical, dense }, out);
    return out;
  }

  private user(id: Id): number {
    const u = this.userIndex.get(String(id));
    if (u === undefined) throw new UserError(`unknown user '${id}' (not in the training data); query by { history: [itemIds] } instead`);
    return u;
  }

  private item(id: Id): number {
    const j = this.itemIndex.get(String(id));
    if (j === undefined) throw new UserError(`unknown item '${id}'; embed a new item by its features: encodeItems([{ id, …features }])`);
    return j;
  }

  private allItems(): Float32Array {
    this.itemEmb ??= this.towers.embedAllItems(this.backend);
    return this.itemEmb;
  }

  private search(): ExactSearcher {
    this.searcher ??= new ExactSearcher(this.backend, this.allItems(), this.artifacts.itemIds.length, this.dim);
    return this.searcher;
  }
}

function normalise(v: Float32Array): void {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  for (let i = 0; i < v.length; i++) v[i] /= n;
}

/**
 * Opens a saved model: a run folder (model/ inside), a model folder, or a sequence model (as its tables).
 * A text dual encoder opens with loadTextModel.
 */
export async function load(dir: string, options: { backend?: BackendChoice } = {}): Promise<Model> {
  if (isTextModelDir(dir)) throw new UserError(`${dir}: a text dual encoder; open it with loadTextModel(dir)`);
  const artifacts = openModel(dir);
  const metrics = (artifacts.meta.metrics ?? {}) as Record<string, number>;
  return new Model(artifacts, await getBackend(options.backend), metrics);
}
