/**
 * Chunking of long documents for encoders with a bounded window: a document of n tokens becomes the spans
 * [0, w), [s, s + w), [2s, 2s + w), … — the last one reaching the end — so every token is in at least one
 * chunk when s ≤ w. A document's score is the maximum over its chunks (MaxP, Dai & Callan 2019).
 */

/** Spans [lo, hi) of a sequence of length n; an empty sequence has one empty chunk (the doc still exists). */
export function chunkSpans(n: number, window: number, stride: number): Array<[number, number]> {
  if (!(window >= 1 && stride >= 1 && stride <= window)) throw new RangeError(`chunking: need 1 ≤ stride ≤ window, got window ${window}, stride ${stride}`);
  const out: Array<[number, number]> = [];
  for (let lo = 0; ; lo += stride) {
    out.push([lo, Math.min(n, lo + window)]);
    if (lo + window >= n) break;
  }
  return out;
}

export interface ChunkSet {
  /** Document of each chunk (non-decreasing). */
  doc: Int32Array;
  lo: Int32Array;
  hi: Int32Array;
}

export function chunkDocs(lengths: ArrayLike<number>, window: number, stride: number): ChunkSet {
  const doc: number[] = [];
  const lo: number[] = [];
  const hi: number[] = [];
  for (let d = 0; d < lengths.length; d++) {
    for (const [a, b] of chunkSpans(lengths[d], window, stride)) {
      doc.push(d);
      lo.push(a);
      hi.push(b);
    }
  }
  return { doc: Int32Array.from(doc), lo: Int32Array.from(lo), hi: Int32Array.from(hi) };
}

/**
 * out[r, d] = max over the chunks c of doc d of scores[r, c] (rows × chunks → rows × docs); docs without a
 * chunk get −Infinity.
 */
export function maxOverChunks(scores: Float32Array, rows: number, chunkDoc: Int32Array, numDocs: number, out: Float32Array): void {
  const C = chunkDoc.length;
  out.fill(-Infinity, 0, rows * numDocs);
  for (let r = 0; r < rows; r++) {
    const so = r * C;
    const oo = r * numDocs;
    for (let c = 0; c < C; c++) {
      const v = scores[so + c];
      const i = oo + chunkDoc[c];
      if (v > out[i]) out[i] = v;
    }
  }
}
