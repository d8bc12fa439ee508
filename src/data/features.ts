/**
 * Side features per user or item. Categorical: index 0 of every feature vocabulary is reserved for "missing", so
 * an entity with no value (absent, null or empty) still has a valid embedding row. Dense (numbers or vectors,
 * e.g. content embeddings; from in-memory rows, featuresFromRows): entities×width values, zeros when missing;
 * the tower projects them linearly (src/model/tower.ts).
 */
import { InputError, UserError } from '../util/errors.ts';
import type { Duck } from './duck.ts';
import { COLUMN_CANDIDATES, detectFormat, pickColumn, type DataFormat } from './format.ts';
import { ident } from './sql.ts';
import { materialize, openSource, requireColumn, textExpr } from './table.ts';
import { Vocab, type CategoricalFeature, type DenseFeature } from './types.ts';

/** The vocabulary entry at index 0 of every feature. */
export const MISSING_VALUE = '<missing>';

/**
 * A feature from one value per entity (null = missing). Values get indices in order of first appearance over
 * entities 0, 1, 2, ..., which makes the vocabulary deterministic for a given file.
 */
export function featureFromValues(name: string, perEntity: readonly (string | null)[]): CategoricalFeature {
  const vocab = Vocab.from([MISSING_VALUE]);
  const values = new Int32Array(perEntity.length);
  for (let e = 0; e < perEntity.length; e++) {
    const v = perEntity[e];
    if (v !== null && v !== '') values[e] = vocab.add(v);
  }
  return { name, vocab, values };
}

export interface FeatureFileSpec {
  path: string;
  /** 'user' or 'item': which vocabulary the key column refers to. */
  entity: 'user' | 'item';
  /** Key column name (default: the spec's userCol/itemCol if present, else a conventional name). */
  keyCol?: string;
  /** Feature columns (default: every other column; for RecBole files only the ":token" ones). */
  cols?: string[];
  format?: DataFormat;
}

/**
 * Reads a separate feature file (e.g. MovieLens-100K's ml-100k.user) and aligns it with `vocab`. Rows whose key
 * is not in the vocabulary are ignored (entities without interactions); a key seen twice takes its last non-missing
 * value; entities absent from the file get "missing".
 */
export async function loadFeatureFile(duck: Duck, spec: FeatureFileSpec, vocab: Vocab, table: string): Promise<CategoricalFeature[]> {
  const format = spec.format ?? detectFormat(spec.path);
  if (format === 'seq') throw new InputError(spec.path, undefined, undefined, 'a feature file must be tabular, not a sequence file');
  const t = await openSource(duck, spec.path, format);
  const candidates = COLUMN_CANDIDATES[spec.entity];
  const keyCol =
    spec.keyCol !== undefined && t.columns.includes(spec.keyCol)
      ? spec.keyCol
      : (pickColumn(t.columns, candidates) ?? requireColumn(t, spec.keyCol ?? candidates[0], `${spec.entity} key`));
  let cols: string[];
  if (spec.cols) cols = spec.cols.map((c) => requireColumn(t, c, `${spec.entity} feature`));
  else
    cols = t.columns.filter(
      (c, k) => c !== keyCol && (t.declaredTypes === undefined || t.declaredTypes[k] === 'token'),
    );
  const rows = await materialize(duck, t, table, [keyCol, ...cols].map((c, k) => `${textExpr(t, c)} AS c${k}`));
  if (rows === 0) throw new InputError(spec.path, undefined, undefined, 'no data rows');
  const [keys, ...values] = await duck.stringColumns(`SELECT * FROM ${table} ORDER BY rowid`);
  const perFeature = cols.map(() => new Array<string | null>(vocab.size).fill(null));
  for (let row = 0; row < keys.length; row++) {
    const key = keys[row];
    if (key === null) throw new InputError(spec.path, t.locate(row), keyCol, `missing ${spec.entity} id`);
    const e = vocab.get(key);
    if (e === undefined) continue;
    for (let f = 0; f < cols.length; f++) {
      const v = values[f][row];
      if (v !== null) perFeature[f][e] = v;
    }
  }
  await duck.run(`DROP TABLE ${table}`);
  return cols.map((c, f) => featureFromValues(c, perFeature[f]));
}

/** Quoted SQL identifier for the f-th feature column of the typed event table. */
export function featureAlias(entity: 'user' | 'item', f: number): string {
  return ident(`${entity}_f${f}`);
}

/** A feature value given in memory: categorical (string, boolean), dense (number, array of numbers), or missing. */
export type FeatureValue = string | number | boolean | null | undefined | readonly number[] | Float32Array | Float64Array;
export type FeatureRow = { id: string | number } & Record<string, FeatureValue>;

export function isVector(v: unknown): v is ArrayLike<number> {
  return Array.isArray(v) || v instanceof Float32Array || v instanceof Float64Array;
}

function entityId(v: unknown, where: string): string {
  if (typeof v === 'string' && v.trim() !== '') return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  throw new UserError(`${where}: expected a non-empty string or finite number id, got ${JSON.stringify(v) ?? String(v)}`);
}

/**
 * Per-entity features from `{ id, …features }` rows (a later row for the same id overrides earlier values).
 * Each feature's kind is decided by its first non-missing value; a dense feature's width by its first vector.
 */
export function featuresFromRows(rows: readonly FeatureRow[], vocab: Vocab, where: string): { categorical: CategoricalFeature[]; dense: DenseFeature[] } {
  const kinds = new Map<string, { kind: 'cat' } | { kind: 'dense'; width: number }>();
  rows.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) throw new UserError(`${where}[${i}]: expected an object { id, … }`);
    vocab.add(entityId(r.id, `${where}[${i}].id`));
    for (const [k, v] of Object.entries(r)) {
      if (k === 'id' || v === undefined || v === null) continue;
      const kind = typeof v === 'string' || typeof v === 'boolean' ? { kind: 'cat' as const } : typeof v === 'number' ? { kind: 'dense' as const, width: 1 } : isVector(v) ? { kind: 'dense' as const, width: v.length } : null;
      if (!kind) throw new UserError(`${where}[${i}].${k}: a feature must be a string, boolean, number or array of numbers`);
      const seen = kinds.get(k);
      if (!seen) kinds.set(k, kind);
      else if (seen.kind !== kind.kind) throw new UserError(`${where}[${i}].${k}: mixes categorical (string) and numeric values`);
      else if (seen.kind === 'dense' && kind.kind === 'dense' && seen.width !== kind.width) throw new UserError(`${where}[${i}].${k}: has ${kind.width} numbers, earlier rows ${seen.width}`);
    }
  });
  const n = vocab.size;
  const categorical: CategoricalFeature[] = [];
  const dense: DenseFeature[] = [];
  for (const [name, kind] of kinds) {
    if (kind.kind === 'cat') {
      const per = new Array<string | null>(n).fill(null);
      for (const r of rows) if (r[name] !== undefined && r[name] !== null) per[vocab.get(entityId(r.id, where))!] = String(r[name]);
      categorical.push(featureFromValues(name, per));
    } else {
      const values = new Float32Array(n * kind.width);
      rows.forEach((r, i) => {
        const v = r[name];
        if (v === undefined || v === null) return;
        const e = vocab.get(entityId(r.id, where))!;
        const arr = typeof v === 'number' ? [v] : (v as ArrayLike<number>);
        for (let j = 0; j < kind.width; j++) {
          if (typeof arr[j] !== 'number' || !Number.isFinite(arr[j])) throw new UserError(`${where}[${i}].${name}[${j}]: not a finite number`);
          values[e * kind.width + j] = arr[j];
        }
      });
      dense.push({ name, width: kind.width, values });
    }
  }
  return { categorical, dense };
}
