/**
 * In-memory data for the library API → the Interactions the trainer reads. Accepted shapes:
 * - a path or `synthetic:` spec (string), or a full DataSpec ({ path, userCol, … }) — read by src/data/load.ts;
 * - columns: `{ users, items, times?, ratings? }` with ids as Int32Array / number[] / string[];
 * - rows: `[{ user, item, time?, rating?, …features }]`;
 * - already loaded Interactions.
 * Either shape may come with per-entity tables `users: [...]`-style via `userFeatures` / `itemFeatures`:
 * `[{ id, …features }]`, which may list entities without interactions (catalogue items).
 *
 * A feature value that is a string or boolean is categorical; a number is a dense feature of width 1; an array
 * of numbers (or a Float32Array) is a dense vector (e.g. a precomputed content embedding) — its width must be the
 * same for every entity. Extra fields of interaction rows are item features when constant per item, else user
 * features when constant per user; anything else is an error naming the field.
 */
import { featuresFromRows, isVector, type FeatureRow, type FeatureValue } from '../data/features.ts';
import { loadInteractions, type DataSpec } from '../data/load.ts';
import { Vocab, type Interactions } from '../data/types.ts';
import { UserError } from '../util/errors.ts';

export type Id = string | number;
export type { FeatureRow, FeatureValue };

export interface InteractionRow {
  user: Id;
  item: Id;
  /** Event time: a number (any monotone unit) or a Date. */
  time?: number | Date;
  rating?: number;
  [feature: string]: FeatureValue | Date;
}

export interface InteractionColumns {
  users: Int32Array | ArrayLike<Id>;
  items: Int32Array | ArrayLike<Id>;
  times?: Float64Array | ArrayLike<number>;
  ratings?: Float32Array | ArrayLike<number>;
}

interface EntityTables {
  /** Per-user features: one row per user, `{ id, …features }`. */
  userFeatures?: readonly FeatureRow[];
  /** Per-item features: one row per item, `{ id, …features }`; may list items with no interactions. */
  itemFeatures?: readonly FeatureRow[];
}

export type InteractionData =
  | string
  | DataSpec
  | Interactions
  | (InteractionColumns & EntityTables)
  | readonly InteractionRow[]
  | ({ rows: readonly InteractionRow[] } & EntityTables);

const RESERVED = new Set(['user', 'item', 'time', 'rating']);

export function isInteractions(d: unknown): d is Interactions {
  return typeof d === 'object' && d !== null && 'userVocab' in d && (d as Interactions).userVocab instanceof Vocab;
}

/** Reads or converts any accepted shape. */
export async function toInteractions(data: InteractionData): Promise<Interactions> {
  if (typeof data === 'string') return loadInteractions({ path: data });
  if (Array.isArray(data)) return fromRows(data as readonly InteractionRow[], {});
  if (isInteractions(data)) return data;
  const d = data as unknown as Record<string, unknown>;
  if ('path' in d && typeof d.path === 'string') return loadInteractions(data as DataSpec);
  if ('rows' in d && Array.isArray(d.rows)) return fromRows(d.rows as InteractionRow[], data as EntityTables);
  if ('users' in d && 'items' in d) return fromColumns(data as InteractionColumns & EntityTables);
  throw new UserError("data: expected a path, { path, … }, { users, items, times? } columns, [{ user, item, … }] rows, or { rows, itemFeatures? }");
}

function idOf(v: unknown, where: string): string {
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'bigint') return String(v);
  throw new UserError(`${where}: expected a non-empty string or finite number id, got ${JSON.stringify(v) ?? String(v)}`);
}

function timeOf(v: unknown, where: string): number {
  const t = v instanceof Date ? v.getTime() / 1000 : v;
  if (typeof t !== 'number' || !Number.isFinite(t)) throw new UserError(`${where}: time must be a finite number or a valid Date`);
  return t;
}

function fromColumns(c: InteractionColumns & EntityTables): Interactions {
  const n = c.users.length;
  if (c.items.length !== n) throw new UserError(`data: users has ${n} entries but items ${c.items.length}`);
  if (c.times && c.times.length !== n) throw new UserError(`data: times has ${c.times.length} entries, expected ${n}`);
  if (c.ratings && c.ratings.length !== n) throw new UserError(`data: ratings has ${c.ratings.length} entries, expected ${n}`);
  const userVocab = new Vocab();
  const itemVocab = new Vocab();
  const users = new Int32Array(n);
  const items = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    users[i] = userVocab.add(idOf(c.users[i], `data: users[${i}]`));
    items[i] = itemVocab.add(idOf(c.items[i], `data: items[${i}]`));
  }
  const times = c.times ? Float64Array.from({ length: n }, (_, i) => timeOf(c.times![i], `data: times[${i}]`)) : null;
  const ratings = c.ratings ? Float32Array.from(c.ratings) : null;
  if (ratings?.some((r) => !Number.isFinite(r))) throw new UserError('data: ratings must be finite numbers');
  const base: Interactions = { source: 'in-memory columns', users, items, times, ratings, userVocab, itemVocab, userFeatures: [], itemFeatures: [] };
  return withEntityTables(base, c);
}

function fromRows(rows: readonly InteractionRow[], tables: EntityTables): Interactions {
  const n = rows.length;
  const userVocab = new Vocab();
  const itemVocab = new Vocab();
  const users = new Int32Array(n);
  const items = new Int32Array(n);
  const hasTime = n > 0 && rows[0].time !== undefined;
  const hasRating = n > 0 && rows[0].rating !== undefined;
  const times = hasTime ? new Float64Array(n) : null;
  const ratings = hasRating ? new Float32Array(n) : null;
  const extra = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    if (typeof r !== 'object' || r === null) throw new UserError(`data[${i}]: expected an object { user, item, … }`);
    users[i] = userVocab.add(idOf(r.user, `data[${i}].user`));
    items[i] = itemVocab.add(idOf(r.item, `data[${i}].item`));
    if ((r.time !== undefined) !== hasTime) throw new UserError(`data[${i}]: 'time' must be given on every row or on none`);
    if (times) times[i] = timeOf(r.time, `data[${i}].time`);
    if ((r.rating !== undefined) !== hasRating) throw new UserError(`data[${i}]: 'rating' must be given on every row or on none`);
    if (ratings) {
      if (typeof r.rating !== 'number' || !Number.isFinite(r.rating)) throw new UserError(`data[${i}].rating: must be a finite number`);
      ratings[i] = r.rating;
    }
    for (const k of Object.keys(r)) if (!RESERVED.has(k)) extra.add(k);
  }
  // Per-row fields become per-entity features: item features when constant per item, else user features.
  const userRows = new Map<string, Record<string, FeatureValue>>();
  const itemRows = new Map<string, Record<string, FeatureValue>>();
  for (const f of extra) {
    const owner = constantPer(rows, items, f) ? itemRows : constantPer(rows, users, f) ? userRows : null;
    if (!owner) throw new UserError(`data: field '${f}' varies within an item and within a user; a feature must belong to the item or to the user (per-interaction features are not supported)`);
    const vocab = owner === itemRows ? itemVocab : userVocab;
    const ids = owner === itemRows ? items : users;
    for (let i = 0; i < n; i++) {
      const key = vocab.ids[ids[i]];
      const row = owner.get(key) ?? {};
      if (rows[i][f] !== undefined && rows[i][f] !== null) row[f] = rows[i][f] as FeatureValue;
      owner.set(key, row);
    }
  }
  const toTable = (m: Map<string, Record<string, FeatureValue>>): FeatureRow[] => [...m].map(([id, feats]) => ({ ...feats, id }));
  const base: Interactions = { source: 'in-memory rows', users, items, times, ratings, userVocab, itemVocab, userFeatures: [], itemFeatures: [] };
  return withEntityTables(base, {
    userFeatures: [...toTable(userRows), ...(tables.userFeatures ?? [])],
    itemFeatures: [...toTable(itemRows), ...(tables.itemFeatures ?? [])],
  });
}

function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (isVector(a) && isVector(b)) return a.length === b.length && Array.prototype.every.call(a, (x: number, k: number) => x === b[k]);
  return false;
}


function constantPer(rows: readonly InteractionRow[], ids: Int32Array, f: string): boolean {
  const first = new Map<number, unknown>();
  for (let i = 0; i < rows.length; i++) {
    const v = rows[i][f];
    if (v === undefined || v === null) continue;
    if (!first.has(ids[i])) first.set(ids[i], v);
    else if (!same(first.get(ids[i]), v)) return false;
  }
  return true;
}

/** Adds feature tables; entities they name that have no interactions join the vocabulary (cold-start items). */
function withEntityTables(d: Interactions, t: EntityTables): Interactions {
  const u = t.userFeatures ? featuresFromRows(t.userFeatures, d.userVocab, 'userFeatures') : { categorical: [], dense: [] };
  const it = t.itemFeatures ? featuresFromRows(t.itemFeatures, d.itemVocab, 'itemFeatures') : { categorical: [], dense: [] };
  return {
    ...d,
    userFeatures: u.categorical,
    itemFeatures: it.categorical,
    ...(u.dense.length ? { userDense: u.dense } : {}),
    ...(it.dense.length ? { itemDense: it.dense } : {}),
  };
}
