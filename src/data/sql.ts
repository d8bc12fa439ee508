/** Quoting for the SQL we assemble from file paths and column names (DuckDB dialect). */

/** A string literal: 'it''s'. */
export function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A quoted identifier: "a ""b""". Column names come from files, so always quote. */
export function ident(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
