/**
 * Bench results record paths relative to the repository root, never the absolute paths of the machine they
 * ran on (which say nothing to a reader and differ between checkouts): `/…/repo/x` → `x`, a sibling such as
 * the shared data folder `/…/shared/data/f` → `../shared/data/f`, the temp folder → `<tmp>/…`. Applied to
 * every string of a result, embedded paths included ("…/ml-100k.inter: 943 users").
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, resolve, sep } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..');

/** Rewrites the absolute paths inside `s` that lie under the repository, its parent folder or the temp folder. */
export function relativePathsIn(s: string, root = REPO_ROOT): string {
  const prefixes: Array<[string, string]> = [
    [root + sep, ''],
    [root, '.'],
    [dirname(root) + sep, '..' + sep],
    [tmpdir() + sep, '<tmp>' + sep],
  ];
  let out = s;
  for (const [from, to] of prefixes) {
    // Only where a path starts: at the beginning, or after a space, quote, bracket, '=' or ':'.
    out = out.replace(new RegExp(`(^|[\\s"'(=:\\[])${escape(from)}`, 'g'), (_m, pre: string) => pre + to);
  }
  return out;
}

/** A deep copy of a JSON value with every string passed through relativePathsIn. */
export function relativePaths<T>(value: T, root = REPO_ROOT): T {
  if (typeof value === 'string') return relativePathsIn(value, root) as T;
  if (Array.isArray(value)) return value.map((v) => relativePaths(v, root)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, relativePaths(v, root)])) as T;
  return value;
}

/** Writes a bench result as indented JSON with repository-relative paths. */
export function writeResultJson(file: string, value: unknown): void {
  writeFileSync(file, JSON.stringify(relativePaths(value), null, 1) + '\n');
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
