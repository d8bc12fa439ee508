// Paths named by a manifest (bundle, model) must stay inside their directory: no absolute path, no `..`, no
// symbolic link out, and the final component a regular file. Checked at every read, not once, so a file
// swapped for a link after loading is refused too. Plain JavaScript so the bundle verification worker can
// use it; typed by contained.d.mts.
import { lstatSync, realpathSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';

const MAX_PATH = 512;

/**
 * What is wrong with `rel` as a path inside a directory, judged by its text alone; null when it is fine.
 * @param {unknown} rel
 * @returns {string | null}
 */
export function manifestPathProblem(rel) {
  if (typeof rel !== 'string' || rel.length === 0) return 'an empty path';
  const shown = JSON.stringify(rel.length > 80 ? `${rel.slice(0, 80)}…` : rel);
  if (rel.length > MAX_PATH) return `path ${shown} is longer than ${MAX_PATH} characters`;
  if (rel.includes('\0') || rel.includes('\\')) return `path ${shown} holds a NUL or a backslash`;
  if (rel.startsWith('/') || /^[A-Za-z]:/.test(rel)) return `path ${shown} is absolute`;
  for (const seg of rel.split('/')) if (seg === '' || seg === '.' || seg === '..') return `path ${shown} leaves the directory or is not normalised`;
  return null;
}

/**
 * The full path of `rel` under `root` (a real directory, links resolved), checked to be a regular file that
 * stays inside it; otherwise `{ problem }`.
 * @param {string} root
 * @param {string} rel
 * @returns {{ path: string } | { problem: string, missing?: boolean }}
 */
export function containedFile(root, rel) {
  const bad = manifestPathProblem(rel);
  if (bad) return { problem: bad };
  const p = join(root, rel);
  let st;
  try {
    st = lstatSync(p);
  } catch {
    return { problem: 'missing', missing: true };
  }
  if (st.isSymbolicLink()) return { problem: 'a symbolic link (bundle and model files must be regular files inside the directory)' };
  if (!st.isFile()) return { problem: 'not a regular file' };
  let realRoot;
  let realDir;
  try {
    realRoot = realpathSync(root);
    realDir = realpathSync(dirname(p));
  } catch {
    return { problem: 'missing', missing: true };
  }
  if (realDir !== realRoot && !realDir.startsWith(realRoot + sep)) return { problem: 'outside the directory (through a linked folder)' };
  return { path: p };
}
