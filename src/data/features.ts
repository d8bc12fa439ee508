/**
 * Categorical side features per user or item. Index 0 of every feature vocabulary is reserved for "missing", so
 * an entity with no value (absent, null or empty) still has a valid embedding row.
 */
import { InputError } from '../util/errors.ts';
import type { Duck } from './duck.ts';
import { COLUMN_CANDIDATES, detectFormat, pickColumn, type DataFormat } from './format.ts';
import { ident } from './sql.ts';
import { materialize, openSource, requireColumn, textExpr } from './table.ts';
import { Vocab, type CategoricalFeature } from './types.ts';

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
