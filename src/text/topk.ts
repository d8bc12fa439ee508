/**
 * Top-k of one score row, best first, into caller slices; ties go to the lower index (as the backend's
 * topkRows). Entries below `floor` (default: −Infinity, i.e. none) are never returned; empty slots hold −1.
 * A bounded min-heap: O(n log k), no allocation beyond the heap.
 */
export function topkRow(scores: Float32Array, k: number, outIds: Int32Array, outScores: Float32Array, floor = -Infinity, heapIds = new Int32Array(k)): number {
  let n = 0;
  // "worse" = lower score, or equal score and higher index.
  const worse = (a: number, b: number) => scores[a] < scores[b] || (scores[a] === scores[b] && a > b);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && worse(heapIds[l], heapIds[m])) m = l;
      if (r < n && worse(heapIds[r], heapIds[m])) m = r;
      if (m === i) return;
      const t = heapIds[i];
      heapIds[i] = heapIds[m];
      heapIds[m] = t;
      i = m;
    }
  };
  for (let j = 0; j < scores.length; j++) {
    const s = scores[j];
    if (!(s > floor)) continue;
    if (n < k) {
      let i = n++;
      heapIds[i] = j;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!worse(heapIds[i], heapIds[p])) break;
        const t = heapIds[i];
        heapIds[i] = heapIds[p];
        heapIds[p] = t;
        i = p;
      }
    } else if (k > 0 && worse(heapIds[0], j)) {
      heapIds[0] = j;
      siftDown(0);
    }
  }
  const cnt = n;
  for (let i = cnt - 1; i >= 0; i--) {
    outIds[i] = heapIds[0];
    outScores[i] = scores[heapIds[0]];
    heapIds[0] = heapIds[--n];
    siftDown(0);
  }
  for (let i = cnt; i < k; i++) {
    outIds[i] = -1;
    outScores[i] = -Infinity;
  }
  return cnt;
}
