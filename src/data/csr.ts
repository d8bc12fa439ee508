/**
 * Compressed sparse rows: for each row r (a user), its column ids (items) are cols[offsets[r] .. offsets[r+1]).
 * The shared shape for "items per user" (train positives, test targets, exclusions) across data, sampling and eval.
 */
export interface Csr {
  rows: number;
  offsets: Int32Array; // rows + 1
  cols: Int32Array;
}

/** Builds a CSR from parallel (row, col) arrays, keeping input order within a row; duplicates kept unless dedupe. */
export function csrFromPairs(rows: number, r: Int32Array, c: Int32Array, dedupe = false): Csr {
  const counts = new Int32Array(rows + 1);
  for (let i = 0; i < r.length; i++) counts[r[i] + 1]++;
  for (let i = 0; i < rows; i++) counts[i + 1] += counts[i];
  const offsets = counts.slice();
  const fill = counts.slice(0, rows);
  const cols = new Int32Array(r.length);
  for (let i = 0; i < r.length; i++) cols[fill[r[i]]++] = c[i];
  if (!dedupe) return { rows, offsets, cols };
  const out = new Int32Array(cols.length);
  const newOff = new Int32Array(rows + 1);
  let w = 0;
  for (let row = 0; row < rows; row++) {
    newOff[row] = w;
    const seg = cols.subarray(offsets[row], offsets[row + 1]).slice().sort();
    for (let k = 0; k < seg.length; k++) if (k === 0 || seg[k] !== seg[k - 1]) out[w++] = seg[k];
  }
  newOff[rows] = w;
  return { rows, offsets: newOff, cols: out.slice(0, w) };
}

/** The columns of one row (a view, not a copy). */
export function csrRow(m: Csr, row: number): Int32Array {
  return m.cols.subarray(m.offsets[row], m.offsets[row + 1]);
}
