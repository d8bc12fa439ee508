/**
 * Which reader a file needs, decided from its name (or given explicitly), and how its header line looks.
 * Detection is by name, not content, so a misnamed file fails loudly rather than being half-read.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { UserError } from '../util/errors.ts';

export type DataFormat = 'csv' | 'tsv' | 'parquet' | 'jsonl' | 'seq' | 'movielens' | 'recbole';

export const DATA_FORMATS: readonly DataFormat[] = ['csv', 'tsv', 'parquet', 'jsonl', 'seq', 'movielens', 'recbole'];

const BY_EXTENSION: Record<string, DataFormat> = {
  '.csv': 'csv',
  '.tsv': 'tsv',
  '.tab': 'tsv',
  '.txt': 'seq',
  '.seq': 'seq',
  '.parquet': 'parquet',
  '.pq': 'parquet',
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.inter': 'recbole',
  '.user': 'recbole',
  '.item': 'recbole',
  '.dat': 'movielens',
};

/** MovieLens 100K's u.data and its split files (u1.base, ua.test, ...). */
const MOVIELENS_100K = /^u[0-9ab]?\.(data|base|test)$/;

export function detectFormat(path: string): DataFormat {
  const name = basename(path).toLowerCase();
  if (MOVIELENS_100K.test(name)) return 'movielens';
  const fmt = BY_EXTENSION[extname(name)];
  if (fmt) return fmt;
  throw new UserError(
    `${path}: cannot tell the format from the name; use one of the extensions ${Object.keys(BY_EXTENSION).join(' ')} ` +
      `(or u.data), or give the format explicitly (${DATA_FORMATS.join(', ')})`,
  );
}

/** The first line of a text file (without its line break or a UTF-8 BOM); '' for an empty file. */
export function firstLine(path: string): string {
  const fd = openSync(path, 'r');
  try {
    const parts: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const nl = buf.subarray(0, n).indexOf(10);
      if (nl >= 0) {
        parts.push(Buffer.from(buf.subarray(0, nl)));
        break;
      }
      parts.push(Buffer.from(buf.subarray(0, n)));
    }
    return Buffer.concat(parts).toString('utf8').replace(/^\uFEFF/, '').replace(/\r$/, '');
  } finally {
    closeSync(fd);
  }
}

/** The delimiter of a CSV-like header line: the most frequent of , TAB ; | (',' when none occurs). */
export function sniffDelimiter(header: string): string {
  let best = ',';
  let bestCount = 0;
  for (const d of [',', '\t', ';', '|']) {
    const count = header.split(d).length - 1;
    if (count > bestCount) {
      best = d;
      bestCount = count;
    }
  }
  return best;
}

/** Splits a header line into names, unquoting "quoted" names. */
export function splitHeader(header: string, delim: string): string[] {
  return header.split(delim).map((h) => {
    const t = h.trim();
    return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).replace(/""/g, '"') : t;
  });
}

/** RecBole atomic headers type their columns ("user_id:token"): the name is the part before the colon. */
export function recboleName(header: string): { name: string; type: string } {
  const i = header.lastIndexOf(':');
  return i > 0 ? { name: header.slice(0, i), type: header.slice(i + 1) } : { name: header, type: 'token' };
}

/** Conventional column names, tried in order (case-insensitively) when the spec names none. */
export const COLUMN_CANDIDATES = {
  user: ['user_id', 'userId', 'user', 'uid'],
  item: ['item_id', 'itemId', 'item', 'iid', 'movie_id', 'movieId', 'product_id', 'asin'],
  time: ['timestamp', 'time', 'ts', 'datetime', 'date', 'unix_time'],
  rating: ['rating', 'ratings', 'score', 'stars'],
} as const;

/** The first candidate present among `columns` (exact match first, then case-insensitive), or undefined. */
export function pickColumn(columns: readonly string[], candidates: readonly string[]): string | undefined {
  for (const c of candidates) if (columns.includes(c)) return c;
  const lower = new Map(columns.map((c) => [c.toLowerCase(), c]));
  for (const c of candidates) {
    const hit = lower.get(c.toLowerCase());
    if (hit !== undefined) return hit;
  }
  return undefined;
}
