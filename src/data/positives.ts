/**
 * Per-user item sets and per-item counts over a subset of rows (a split part): the CSR shapes that training,
 * sampling and evaluation share (train positives, test targets, exclusions, popularity).
 */
import { csrFromPairs, type Csr } from './csr.ts';
import type { Interactions } from './types.ts';

/** user -> items over `rows`, deduplicated and sorted per user; one CSR row per user in the vocabulary. */
export function itemsByUser(data: Interactions, rows: Int32Array): Csr {
  const u = new Int32Array(rows.length);
  const it = new Int32Array(rows.length);
  for (let k = 0; k < rows.length; k++) {
    u[k] = data.users[rows[k]];
    it[k] = data.items[rows[k]];
  }
  return csrFromPairs(data.userVocab.size, u, it, true);
}

/** user -> distinct training items: positives for training and the exclusion set at evaluation. */
export function trainPositives(data: Interactions, rows: Int32Array): Csr {
  return itemsByUser(data, rows);
}

/** user -> items over `rows` in (time, row) order with repeats kept: histories for sequential features. */
export function historiesByUser(data: Interactions, rows: Int32Array): Csr {
  const sorted = rows.slice();
  const times = data.times;
  if (times) sorted.sort((a, b) => times[a] - times[b] || a - b);
  else sorted.sort();
  const u = new Int32Array(sorted.length);
  const it = new Int32Array(sorted.length);
  for (let k = 0; k < sorted.length; k++) {
    u[k] = data.users[sorted[k]];
    it[k] = data.items[sorted[k]];
  }
  return csrFromPairs(data.userVocab.size, u, it, false);
}

/** Interaction count per item over `rows` (numItems entries): popularity for baselines, sampling and metrics. */
export function itemPopularity(data: Interactions, rows: Int32Array): Float64Array {
  const counts = new Float64Array(data.itemVocab.size);
  for (let k = 0; k < rows.length; k++) counts[data.items[rows[k]]]++;
  return counts;
}

/** Rows (users) of a CSR with at least one column, ascending. */
export function nonEmptyRows(m: Csr): Int32Array {
  let n = 0;
  for (let r = 0; r < m.rows; r++) if (m.offsets[r + 1] > m.offsets[r]) n++;
  const out = new Int32Array(n);
  for (let r = 0, w = 0; r < m.rows; r++) if (m.offsets[r + 1] > m.offsets[r]) out[w++] = r;
  return out;
}

/** All row indices 0..n-1 of the log (e.g. to build structures over the full data). */
export function allRows(data: Interactions): Int32Array {
  return Int32Array.from({ length: data.users.length }, (_, i) => i);
}
