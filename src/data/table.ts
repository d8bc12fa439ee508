/**
 * Describes one tabular file as a DuckDB table-function expression (its "reader") plus its column names and types,
 * without reading the data yet. Text formats are read with an explicit dialect and all-VARCHAR columns: DuckDB's
 * sniffer can silently skip or merge malformed lines, and VARCHAR lets us report bad values ourselves.
 * Materialising a reader with CREATE TABLE ... AS keeps file order, so the table's rowid is the data row.
 */
import { statSync } from 'node:fs';
import { InputError } from '../util/errors.ts';
import type { Duck } from './duck.ts';
import { firstLine, recboleName, sniffDelimiter, splitHeader, type DataFormat } from './format.ts';
import { lineOfDataRow, readFailure } from './locate.ts';
import { ident, lit } from './sql.ts';

export interface Source {
  file: string;
  format: DataFormat;
  /** e.g. read_csv('f.csv', ...): usable after FROM. */
  reader: string;
  /** Column names as addressable in SQL and in a DataSpec (RecBole ":type" suffixes stripped). */
  columns: string[];
  /** DuckDB type per column (VARCHAR for text formats). */
  types: string[];
  /** RecBole declared type per column ("token", "float", "token_seq", ...), for recbole files only. */
  declaredTypes?: string[];
  /** The 1-based position to report for a 0-based data row: the file line for text formats, else the row. */
  locate(row: number): number;
}

const MOVIELENS_COLUMNS = ['user_id', 'item_id', 'rating', 'timestamp'];

/** Fails with an InputError unless `path` is a non-empty regular file. */
export function checkReadable(path: string): void {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new InputError(path, undefined, undefined, 'file not found');
  }
  if (!st.isFile()) throw new InputError(path, undefined, undefined, 'not a regular file');
  if (st.size === 0) throw new InputError(path, undefined, undefined, 'file is empty (no data rows)');
}

export async function openSource(duck: Duck, path: string, format: DataFormat): Promise<Source> {
  checkReadable(path);
  if (format === 'seq') throw new Error('openSource: the sequence format is read by seq.ts');
  if (format === 'parquet' || format === 'jsonl') {
    const reader =
      format === 'parquet' ? `read_parquet(${lit(path)})` : `read_json(${lit(path)}, format='newline_delimited')`;
    let desc: unknown[][];
    try {
      desc = await duck.rows(`DESCRIBE SELECT * FROM ${reader}`);
    } catch (e) {
      throw readFailure(path, e, [], format === 'jsonl');
    }
    return {
      file: path,
      format,
      reader,
      columns: desc.map((r) => String(r[0])),
      types: desc.map((r) => String(r[1])),
      locate: format === 'jsonl' ? (row) => lineOfDataRow(path, row, 0) : (row) => row + 1,
    };
  }

  // Delimited text: the dialect is fixed by the format; names come from the header (or are MovieLens's).
  const head = firstLine(path);
  let delim: string;
  let quote = '"';
  let header = true;
  let columns: string[];
  let declaredTypes: string[] | undefined;
  if (format === 'movielens') {
    delim = head.includes('::') ? '::' : head.includes('\t') ? '\t' : sniffDelimiter(head);
    header = false;
    quote = '';
    const n = head.split(delim).length;
    columns = Array.from({ length: n }, (_, k) => MOVIELENS_COLUMNS[k] ?? `column${k}`);
  } else if (format === 'recbole') {
    delim = '\t';
    quote = '';
    const typed = splitHeader(head, delim).map(recboleName);
    columns = typed.map((t) => t.name);
    declaredTypes = typed.map((t) => t.type);
  } else {
    delim = format === 'tsv' ? '\t' : sniffDelimiter(head);
    columns = splitHeader(head, delim);
  }
  const seen = new Set<string>();
  for (const c of columns) {
    if (c === '') throw new InputError(path, 1, undefined, 'empty column name in the header');
    if (seen.has(c)) throw new InputError(path, 1, c, 'duplicate column name in the header');
    seen.add(c);
  }
  const colSpec = `{${columns.map((c) => `${lit(c)}: 'VARCHAR'`).join(', ')}}`;
  const reader =
    `read_csv(${lit(path)}, auto_detect=false, header=${header}, delim=${lit(delim)}, ` +
    `quote=${lit(quote)}, escape=${lit(quote)}, strict_mode=true, columns=${colSpec})`;
  const headerLines = header ? 1 : 0;
  return {
    file: path,
    format,
    reader,
    columns,
    types: columns.map(() => 'VARCHAR'),
    declaredTypes,
    locate: (row) => lineOfDataRow(path, row, headerLines),
  };
}

/** CREATE TEMP TABLE `table` AS SELECT `select` FROM the source, with read failures located in the file. */
export async function materialize(duck: Duck, src: Source, table: string, select: string[]): Promise<number> {
  try {
    await duck.run(`CREATE OR REPLACE TEMP TABLE ${table} AS SELECT ${select.join(', ')} FROM ${src.reader}`);
  } catch (e) {
    throw readFailure(src.file, e, src.columns, src.format === 'jsonl');
  }
  return Number(await duck.scalar(`SELECT count(*) FROM ${table}`));
}

/** The file's own text of column `col` at data row `row` (for error messages; re-reads the file). */
export async function rawValue(duck: Duck, src: Source, col: string, row: number): Promise<string | null> {
  const v = await duck.scalar(`SELECT CAST(${ident(col)} AS VARCHAR) FROM ${src.reader} LIMIT 1 OFFSET ${row}`);
  return v === null || v === undefined ? null : String(v);
}

/** The column named `name`, or an InputError listing what the file has. `role` says what it was wanted for. */
export function requireColumn(t: Source, name: string, role: string): string {
  if (t.columns.includes(name)) return name;
  throw new InputError(
    t.file,
    undefined,
    name,
    `no such column (wanted as the ${role} column); available: ${t.columns.join(', ')}`,
  );
}

/** A SQL expression giving column `name` as trimmed text, NULL when missing or empty. */
export function textExpr(t: Source, name: string): string {
  const type = t.types[t.columns.indexOf(name)];
  const c = ident(name);
  const s = type === 'JSON' ? `(${c} ->> '$')` : type === 'VARCHAR' ? c : `CAST(${c} AS VARCHAR)`;
  return `nullif(trim(${s}), '')`;
}

/** A SQL expression giving column `name` as DOUBLE: numbers as is, timestamps/dates as epoch seconds, text parsed. */
export function numberExpr(t: Source, name: string, allowTimestamps: boolean): string {
  const type = t.types[t.columns.indexOf(name)];
  const c = ident(name);
  if (/^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL)/.test(type)) {
    return `CAST(${c} AS DOUBLE)`;
  }
  if (allowTimestamps && /^(TIMESTAMP|DATE)/.test(type)) return `CAST(epoch(${c}) AS DOUBLE)`;
  const s = textExpr(t, name);
  return allowTimestamps
    ? `coalesce(try_cast(${s} AS DOUBLE), CAST(epoch(try_cast(${s} AS TIMESTAMP)) AS DOUBLE))`
    : `try_cast(${s} AS DOUBLE)`;
}
