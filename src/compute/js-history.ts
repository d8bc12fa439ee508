/**
 * The portable backend's user-history pooling (the loop that was src/model/user-history.ts; semantics in
 * backend.ts, HistoryPoolArgs). native/history_pool.cc computes the same, bit for bit.
 */
import type { Backend, HistoryPoolArgs } from './backend.ts';

/** Items user u contributes (0 for ids outside the history's rows). */
function count(a: HistoryPoolArgs, u: number): number {
  if (u < 0 || u >= a.offsets.length - 1) return 0;
  const len = a.offsets[u + 1] - a.offsets[u];
  return a.maxLen > 0 ? Math.min(len, a.maxLen) : len;
}

/** Position (into cols) of user u's k-th used item: all, or `maxLen` evenly strided ones. */
function pick(a: HistoryPoolArgs, u: number, k: number): number {
  const s = a.offsets[u];
  const len = a.offsets[u + 1] - s;
  const L = a.maxLen;
  if (L <= 0 || len <= L) return s + k;
  return s + Math.floor((k * len) / L);
}

export const historyPoolForwardJs: Backend['historyPoolForward'] = (a, E, x) => {
  const { ids, n, dim, cols, gate: g } = a;
  for (let r = 0; r < n; r++) {
    const o = r * dim;
    for (let j = 0; j < dim; j++) x[o + j] *= g;
    const u = ids[r];
    const c = count(a, u);
    if (c === 0) continue;
    const w = (1 - g) / c;
    for (let k = 0; k < c; k++) {
      const item = cols[pick(a, u, k)];
      if (!(item >= 0 && (item + 1) * dim <= E.length)) throw new Error(`historyPoolForward: history item ${item} of user ${u} is not a row of the table`);
      const eo = item * dim;
      for (let j = 0; j < dim; j++) x[o + j] += w * E[eo + j];
    }
  }
};

// Item → slot map of the backward (−1 = unseen), grown to the largest table seen and reset after each call.
let slot = new Int32Array(0);

export const historyPoolBackwardJs: Backend['historyPoolBackward'] = (a, tableRows, dX, uniq, acc) => {
  const { ids, n, dim, cols, gate: g } = a;
  if (slot.length < tableRows) slot = new Int32Array(tableRows).fill(-1);
  let u = 0;
  try {
    for (let r = 0; r < n; r++) {
      const user = ids[r];
      const c = count(a, user);
      const o = r * dim;
      if (c > 0) {
        const w = (1 - g) / c;
        for (let k = 0; k < c; k++) {
          const item = cols[pick(a, user, k)];
          if (!(item >= 0 && item < tableRows)) throw new Error(`historyPoolBackward: history item ${item} of user ${user} is outside [0, ${tableRows})`);
          let s = slot[item];
          if (s < 0) {
            s = u++;
            slot[item] = s;
            uniq[s] = item;
            acc.fill(0, s * dim, (s + 1) * dim);
          }
          const ao = s * dim;
          for (let j = 0; j < dim; j++) acc[ao + j] += w * dX[o + j];
        }
      }
      for (let j = 0; j < dim; j++) dX[o + j] *= g;
    }
  } finally {
    // Reset even when a bad item threw half-way, so the next call starts from a clean map.
    for (let s = 0; s < u; s++) slot[uniq[s]] = -1;
  }
  return u;
};
