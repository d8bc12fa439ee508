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
import { materialize, openSource, rawValue, requireColumn, textExpr, type Source } from './table.ts';
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
  /** Feature columns (default: every other column except denseCols; for RecBole files only the ":token" ones). */
  cols?: string[];
  /** Dense (numeric / vector) feature columns (see denseExpr); default none. */
  denseCols?: string[];
  format?: DataFormat;
}

/**
 * Reads a separate feature file (e.g. MovieLens-100K's ml-100k.user) and aligns it with `vocab`. Rows whose key
 * is not in the vocabulary are ignored (entities without interactions); a key seen twice takes its last non-missing
 * value; entities absent from the file get "missing".
 */
export async function loadFeatureFile(duck: Duck, spec: FeatureFileSpec, vocab: Vocab, table: string): Promise<{ categorical: CategoricalFeature[]; dense: DenseFeature[] }> {
  const format = spec.format ?? detectFormat(spec.path);
  if (format === 'seq') throw new InputError(spec.path, undefined, undefined, 'a feature file must be tabular, not a sequence file');
  const t = await openSource(duck, spec.path, format);
  const candidates = COLUMN_CANDIDATES[spec.entity];
  const keyCol =
    spec.keyCol !== undefined && t.columns.includes(spec.keyCol)
      ? spec.keyCol
      : (pickColumn(t.columns, candidates) ?? requireColumn(t, spec.keyCol ?? candidates[0], `${spec.entity} key`));
  const denseCols = (spec.denseCols ?? []).map((c) => requireColumn(t, c, `${spec.entity} dense feature`));
  let cols: string[];
  if (spec.cols) cols = spec.cols.map((c) => requireColumn(t, c, `${spec.entity} feature`));
  else
    cols = t.columns.filter(
      (c, k) => c !== keyCol && !denseCols.includes(c) && (t.declaredTypes === undefined || t.declaredTypes[k] === 'token'),
    );
  const rows = await materialize(duck, t, table, [
    ...[keyCol, ...cols].map((c, k) => `${textExpr(t, c)} AS c${k}`),
    ...denseCols.flatMap((c, k) => [`${denseExpr(t, c)} AS d${k}`, `${presentExpr(t, c)} AS p${k}`]),
  ]);
  if (rows === 0) throw new InputError(spec.path, undefined, undefined, 'no data rows');
  const widths: number[] = [];
  for (let k = 0; k < denseCols.length; k++) widths.push(await checkDense(duck, t, table, `d${k}`, `p${k}`, denseCols[k]));
  const [keys, ...values] = await duck.stringColumns(`SELECT ${[keyCol, ...cols].map((_, k) => `c${k}`).join(', ')} FROM ${table} ORDER BY rowid`);
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
  // Dense: each row's vector, in row order, so a later row for the same key overrides an earlier one.
  const dense: DenseFeature[] = [];
  for (let k = 0; k < denseCols.length; k++) {
    const w = widths[k];
    if (keys.length * w > MAX_DENSE_VALUES || vocab.size * w > MAX_DENSE_VALUES) throw new InputError(spec.path, undefined, denseCols[k], `${Math.max(keys.length, vocab.size)} rows × ${w} numbers is over the limit of ${MAX_DENSE_VALUES} values per feature`);
    const out = new Float32Array(vocab.size * w);
    const n = Number(await duck.scalar(`SELECT count(*) FROM ${table} WHERE d${k} IS NOT NULL`));
    if (n && w) {
      const [pos, vals] = await duck.numericColumns(
        `SELECT (r * ${w} + i - 1)::INTEGER, x::FLOAT FROM (SELECT rowid AS r, unnest(d${k}) AS x, generate_subscripts(d${k}, 1) AS i FROM ${table} WHERE d${k} IS NOT NULL) ORDER BY r, i`,
        n * w,
        ['i32', 'f32'],
      );
      for (let q = 0; q < pos.length; q++) {
        const row = Math.floor(pos[q] / w);
        const e = vocab.get(keys[row]!);
        if (e !== undefined) out[e * w + (pos[q] - row * w)] = vals[q];
      }
    }
    dense.push({ name: denseCols[k], width: w, values: out });
  }
  await duck.run(`DROP TABLE ${table}`);
  return { categorical: cols.map((c, f) => featureFromValues(c, perFeature[f])), dense };
}

/** Quoted SQL identifier for the f-th feature column of the typed event table. */
export function featureAlias(entity: 'user' | 'item', f: number): string {
  return ident(`${entity}_f${f}`);
}

/** Quoted SQL identifiers for the f-th dense column of the typed event table: its parsed vector, or its presence flag. */
export function denseAlias(entity: 'user' | 'item', f: number, present = false): string {
  return ident(`${entity}_d${f}${present ? '_present' : ''}`);
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

/** Widest dense feature a file may declare (values per entity), and most values of one feature in memory. */
export const MAX_DENSE_WIDTH = 4096;
const MAX_DENSE_VALUES = 2 ** 28;

/**
 * SQL giving column `name` as DOUBLE[] (NULL when the cell is missing or empty): a numeric column is a vector of
 * one, a list/array column is cast element by element, text is a number or a list written `[0.1, 0.2, …]`. An
 * element that is not a number becomes NULL inside the list, which checkDense reports.
 */
export function denseExpr(t: { columns: string[]; types: string[] }, name: string): string {
  const type = t.types[t.columns.indexOf(name)];
  const c = ident(name);
  if (/\]$/.test(type) || type === 'JSON') return `try_cast(${c} AS DOUBLE[])`;
  if (/^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL)/.test(type)) {
    return `CASE WHEN ${c} IS NULL THEN NULL ELSE [CAST(${c} AS DOUBLE)] END`;
  }
  const s = type === 'VARCHAR' ? `nullif(trim(${c}), '')` : `nullif(trim(CAST(${c} AS VARCHAR)), '')`;
  return `CASE WHEN ${s} IS NULL THEN NULL WHEN starts_with(${s}, '[') THEN try_cast(${s} AS DOUBLE[]) WHEN try_cast(${s} AS DOUBLE) IS NOT NULL THEN [try_cast(${s} AS DOUBLE)] ELSE NULL END`;
}

/** SQL: true when column `name` has a value (not NULL, not empty text) — a present value that parses to NULL is an error. */
export function presentExpr(t: { columns: string[]; types: string[] }, name: string): string {
  const c = ident(name);
  return `(${c} IS NOT NULL AND trim(CAST(${c} AS VARCHAR)) <> '')`;
}

/**
 * Checks a dense column materialised in `table` (rowid = data row) as `parsed` (DOUBLE[]) and `present` (bool):
 * every present value parses, every element is a finite number, and every vector has the width of the first one.
 * Returns that width (0 when no row has a value). Errors name the file, the row (as the file counts it) and the column.
 */
export async function checkDense(duck: Duck, src: Source, table: string, parsed: string, present: string, column: string): Promise<number> {
  const first = (await duck.rows(`SELECT len(${parsed})::INTEGER, rowid::INTEGER FROM ${table} WHERE ${parsed} IS NOT NULL ORDER BY rowid LIMIT 1`))[0];
  const width = first ? Number(first[0]) : 0;
  const checks: Array<{ cond: string; problem: (raw: string | null) => string }> = [
    { cond: `${present} AND ${parsed} IS NULL`, problem: (raw) => `not a number or a list of numbers [x, y, …]: '${raw}'` },
    { cond: `len(list_filter(${parsed}, x -> x IS NULL OR NOT isfinite(x))) > 0`, problem: (raw) => `every element must be a finite number (not NaN, infinite or missing): '${clip(raw)}'` },
    { cond: `len(${parsed}) <> ${width}`, problem: (raw) => `has ${countOf(raw)} numbers, but the first row with a value (row ${first ? src.locate(Number(first[1])) : '?'}) has ${width}` },
  ];
  const firsts = (await duck.rows(`SELECT ${checks.map((k) => `min(rowid) FILTER (WHERE ${k.cond})`).join(', ')} FROM ${table}`))[0];
  let worst = -1;
  for (let k = 0; k < checks.length; k++) if (firsts[k] !== null && (worst < 0 || Number(firsts[k]) < Number(firsts[worst]))) worst = k;
  if (worst >= 0) {
    const row = Number(firsts[worst]);
    throw new InputError(src.file, src.locate(row), column, checks[worst].problem(await rawValue(duck, src, column, row)));
  }
  if (first && width === 0) throw new InputError(src.file, src.locate(Number(first[1])), column, 'an empty list: a dense feature needs at least one number');
  if (width > MAX_DENSE_WIDTH) throw new InputError(src.file, src.locate(Number(first![1])), column, `${width} numbers per value, over the limit of ${MAX_DENSE_WIDTH}`);
  return width;
}

function clip(raw: string | null): string {
  const s = String(raw);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function countOf(raw: string | null): string {
  if (raw === null) return '0';
  const s = raw.trim();
  return s.startsWith('[') ? String(s.slice(1, -1).trim() === '' ? 0 : s.slice(1, -1).split(',').length) : '1';
}

/**
 * A dense feature from `sql` returning (entity INTEGER, vector DOUBLE[]) with at most one row per entity and
 * vectors of `width` numbers (checked before); entities without a row get zeros.
 */
export async function denseFromQuery(duck: Duck, sql: string, name: string, size: number, width: number, where: string): Promise<DenseFeature> {
  if (size * width > MAX_DENSE_VALUES) throw new InputError(where, undefined, name, `${size} entities × ${width} numbers is over the limit of ${MAX_DENSE_VALUES} values per feature`);
  const values = new Float32Array(size * width);
  const rows = `(SELECT * FROM (${sql}) AS q(e, v) WHERE v IS NOT NULL)`;
  const count = Number(await duck.scalar(`SELECT count(*) FROM ${rows}`));
  if (count && width) {
    const [pos, vals] = await duck.numericColumns(
      `SELECT (e * ${width} + i - 1)::INTEGER, x::FLOAT FROM (SELECT e, unnest(v) AS x, generate_subscripts(v, 1) AS i FROM ${rows})`,
      count * width,
      ['i32', 'f32'],
    );
    for (let k = 0; k < pos.length; k++) values[pos[k]] = vals[k];
  }
  return { name, width, values };
}
