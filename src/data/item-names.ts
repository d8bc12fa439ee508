/**
 * Human-readable item names from a metadata file: `--item-names FILE[:COLUMN]` (e.g. `ml-100k.item:title`).
 * Any tabular format the data readers take (CSV/TSV/Parquet/JSONL/RecBole/MovieLens). The id column is the
 * given item column name when the file has it, else a conventional item column (item_id, movie_id, ...), else
 * the first column. COLUMN may be a column's exact name, its name in another case, or a word that exactly one
 * column's name contains (`title` → RecBole's `movie_title`); without it, the first conventional name column
 * (name, title, ...) or the first column that is not the id. Items the file lacks get no name (null).
 */
import { existsSync } from 'node:fs';
import { InputError, UserError } from '../util/errors.ts';
import { withDuck } from './duck.ts';
import { COLUMN_CANDIDATES, detectFormat, pickColumn } from './format.ts';
import { materialize, openSource, textExpr } from './table.ts';

const NAME_CANDIDATES = ['name', 'title', 'item_name', 'movie_title', 'product_title', 'label'];

/** FILE[:COLUMN]: the colon splits only when the whole string is not itself an existing file. */
export function parseItemNamesSpec(spec: string): { path: string; column?: string } {
  const at = spec.lastIndexOf(':');
  if (at > 0 && !existsSync(spec) && !spec.slice(at + 1).includes('/')) return { path: spec.slice(0, at), column: spec.slice(at + 1) || undefined };
  return { path: spec };
}

function pickNameColumn(file: string, columns: string[], idCol: string, wanted?: string): string {
  if (wanted !== undefined) {
    if (columns.includes(wanted)) return wanted;
    const ci = columns.filter((c) => c.toLowerCase() === wanted.toLowerCase());
    if (ci.length === 1) return ci[0];
    const part = columns.filter((c) => c !== idCol && c.toLowerCase().includes(wanted.toLowerCase()));
    if (part.length === 1) return part[0];
    throw new InputError(file, undefined, wanted, `no ${part.length > 1 ? 'single ' : ''}name column '${wanted}' (columns: ${columns.join(', ')})`);
  }
  const c = pickColumn(columns.filter((x) => x !== idCol), NAME_CANDIDATES) ?? columns.find((x) => x !== idCol);
  if (!c) throw new InputError(file, undefined, undefined, 'needs an item id column and a name column');
  return c;
}

/**
 * Names aligned with `itemIds` (null where the file has none). `itemCol` is the data's item column name, tried
 * first as the id column. Fails when no id of the file matches an item of the model/data (wrong file or column).
 */
export async function loadItemNames(spec: string, itemIds: readonly string[], itemCol?: string): Promise<(string | null)[]> {
  const { path, column } = parseItemNamesSpec(spec);
  const format = detectFormat(path);
  if (format === 'seq') throw new UserError(`--item-names: ${path} is a sequence file; give a table with an item id column and a name column`);
  return withDuck(async (duck) => {
    const t = await openSource(duck, path, format);
    const idCol = itemCol !== undefined && t.columns.includes(itemCol) ? itemCol : (pickColumn(t.columns, COLUMN_CANDIDATES.item) ?? t.columns[0]);
    const nameCol = pickNameColumn(path, t.columns, idCol, column);
    const rows = await materialize(duck, t, 'item_names', [`${textExpr(t, idCol)} AS id`, `${textExpr(t, nameCol)} AS name`]);
    if (rows === 0) throw new InputError(path, undefined, undefined, 'no data rows');
    const [ids, names] = await duck.stringColumns('SELECT id, name FROM item_names ORDER BY rowid');
    const index = new Map(itemIds.map((id, i) => [id, i]));
    const out = new Array<string | null>(itemIds.length).fill(null);
    let matched = 0;
    for (let r = 0; r < ids.length; r++) {
      const i = ids[r] === null ? undefined : index.get(ids[r]!.trim());
      const name = names[r]?.trim();
      if (i === undefined || !name) continue;
      if (out[i] === null) matched++;
      out[i] = name;
    }
    if (!matched) throw new InputError(path, undefined, idCol, `no id in column '${idCol}' matches an item id of the data (e.g. '${itemIds[0]}'); is it the item file?`);
    return out;
  });
}

/** Checks an untrusted names list (from a model or bundle directory): one string or null per item. */
export function checkItemNames(where: string, names: unknown, items: number): (string | null)[] {
  if (!Array.isArray(names) || names.length !== items || names.some((n) => n !== null && typeof n !== 'string')) {
    throw new UserError(`${where}: item names must be a list of ${items} strings or nulls`);
  }
  return names as (string | null)[];
}
