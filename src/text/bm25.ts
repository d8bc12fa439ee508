/**
 * Okapi BM25 over an inverted index in typed arrays (Robertson & Zaragoza 2009), with Lucene's idf:
 *   idf(t) = ln(1 + (N − df_t + 0.5) / (df_t + 0.5)),
 *   score(q, d) = Σ_{t ∈ q} idf(t) · tf_{t,d} · (k1 + 1) / (tf_{t,d} + k1 · (1 − b + b · |d| / avgdl)).
 * A query term repeated in the query counts once per occurrence (as Lucene's bag-of-clauses query). The
 * per-posting weight is precomputed at build time, so a query is one pass over its terms' postings.
 */
import type { RankedLists, Retriever } from '../mine/types.ts';
import { topkRow } from './topk.ts';

export interface Bm25Options {
  k1: number;
  b: number;
}

/** Elasticsearch / Lucene defaults (the BEIR paper's BM25 ran on Elasticsearch). */
export const defaultBm25Options: Bm25Options = { k1: 1.2, b: 0.75 };

export class Bm25Index {
  readonly numDocs: number;
  readonly avgdl: number;
  readonly vocab = new Map<string, number>();
  /** CSR over terms: postings of term t are [termOffsets[t], termOffsets[t+1]). */
  termOffsets: Int32Array = new Int32Array(1);
  postDoc: Int32Array = new Int32Array(0);
  /** Precomputed BM25 contribution of each posting. */
  postWeight: Float32Array = new Float32Array(0);
  readonly idf: Float32Array;
  readonly docLen: Int32Array;

  constructor(docs: string[][], readonly opts: Bm25Options = defaultBm25Options) {
    const N = (this.numDocs = docs.length);
    this.docLen = Int32Array.from(docs, (d) => d.length);
    let total = 0;
    for (const d of docs) total += d.length;
    this.avgdl = N ? total / N : 0;
    // Pass 1: per-doc term counts → distinct (term, doc) pairs and document frequencies.
    const df: number[] = [];
    const perDoc: Array<Map<number, number>> = docs.map((d) => {
      const tf = new Map<number, number>();
      for (const w of d) {
        let t = this.vocab.get(w);
        if (t === undefined) this.vocab.set(w, (t = this.vocab.size));
        tf.set(t, (tf.get(t) ?? 0) + 1);
      }
      for (const t of tf.keys()) df[t] = (df[t] ?? 0) + 1;
      return tf;
    });
    const V = this.vocab.size;
    const off = new Int32Array(V + 1);
    for (let t = 0; t < V; t++) off[t + 1] = off[t] + df[t];
    this.idf = new Float32Array(V);
    for (let t = 0; t < V; t++) this.idf[t] = Math.log(1 + (N - df[t] + 0.5) / (df[t] + 0.5));
    const fill = off.slice(0, V);
    this.postDoc = new Int32Array(off[V]);
    this.postWeight = new Float32Array(off[V]);
    const { k1, b } = opts;
    perDoc.forEach((tf, d) => {
      const norm = k1 * (1 - b + (b * this.docLen[d]) / (this.avgdl || 1));
      for (const [t, f] of tf) {
        const p = fill[t]++;
        this.postDoc[p] = d;
        this.postWeight[p] = (this.idf[t] * f * (k1 + 1)) / (f + norm);
      }
    });
    this.termOffsets = off;
  }

  /** out[d] = BM25(query, d) for every doc (overwritten). Words outside the vocabulary contribute nothing. */
  scoreInto(query: string[], out: Float32Array): void {
    out.fill(0);
    for (const w of query) {
      const t = this.vocab.get(w);
      if (t === undefined) continue;
      for (let p = this.termOffsets[t]; p < this.termOffsets[t + 1]; p++) out[this.postDoc[p]] += this.postWeight[p];
    }
  }

  /** Top-k docs of each query (only docs matching at least one term, as Lucene), as RankedLists. */
  search(queries: string[][], k: number): RankedLists {
    const rows = queries.length;
    const ids = new Int32Array(rows * k);
    const scores = new Float32Array(rows * k);
    const buf = new Float32Array(this.numDocs);
    const heap = new Int32Array(k);
    for (let r = 0; r < rows; r++) {
      this.scoreInto(queries[r], buf);
      topkRow(buf, k, ids.subarray(r * k, r * k + k), scores.subarray(r * k, r * k + k), 0, heap);
    }
    return { rows, k, ids, scores };
  }
}

/** BM25 as an ensemble member: query ids index `queryWords` (the tokenized query texts). */
export class Bm25Retriever implements Retriever {
  readonly name = 'bm25';
  constructor(
    readonly index: Bm25Index,
    readonly queryWords: string[][],
  ) {}

  retrieve(queries: Int32Array, k: number): RankedLists {
    return this.index.search(Array.from(queries, (q) => this.queryWords[q]), k);
  }
}
