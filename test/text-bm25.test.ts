/**
 * Text retrieval basics: tokenizer (stable hashing, stop words, S-stemmer, feature kinds), BM25 against a
 * hand-computed score, chunking and max-over-chunks pooling, ranking metrics against hand-computed values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bm25Index } from '../src/text/bm25.ts';
import { chunkDocs, chunkSpans, maxOverChunks } from '../src/text/chunk.ts';
import { evaluateRanking } from '../src/text/metrics.ts';
import { fnv1a, HashedTokenizer, sStem, words } from '../src/text/tokenize.ts';
import { topkRow } from '../src/text/topk.ts';

test('tokenizer: lowercase unicode words, stop words, S-stemmer', () => {
  assert.deepEqual(words('The Café, naïve 3D-printing!'), ['the', 'café', 'naïve', '3d', 'printing']);
  assert.deepEqual(words('The cells of mice are studies', { stopwords: true, stem: true }), ['cell', 'mice', 'study']);
  assert.equal(sStem('diseases'), 'disease');
  assert.equal(sStem('glass'), 'glass');
  assert.equal(sStem('virus'), 'virus');
});

test('tokenizer: hashing is stable (FNV-1a reference values) and feature kinds are separate', () => {
  // Reference values of 32-bit FNV-1a (offset basis 0x811c9dc5, prime 0x01000193).
  assert.equal(fnv1a(''), 0x811c9dc5);
  assert.equal(fnv1a('a'), 0xe40c292c);
  assert.equal(fnv1a('foobar'), 0xbf9cf968);
  const t = new HashedTokenizer({ buckets: 1 << 20, bigrams: true, charNgrams: [3], stopwords: false, stem: false });
  const a = t.tokens('protein folding');
  assert.deepEqual(Array.from(a), Array.from(t.tokens('Protein  FOLDING.')));
  assert.equal(a.length, 2);
  const f = t.features('protein folding');
  // 2 unigrams + 1 bigram + trigrams of '<protein>' (7) and '<folding>' (7).
  assert.equal(f.length, 2 + 1 + 7 + 7);
  assert.equal(f[0], a[0]);
  assert.equal(new Set(f).size, f.length, 'no collisions among distinct features in 2^20 buckets');
  const t2 = new HashedTokenizer({ buckets: 1 << 20, bigrams: false, charNgrams: [], stopwords: false, stem: false });
  assert.deepEqual(Array.from(t2.features('protein folding')), Array.from(a));
});

test('BM25 matches a hand-computed score (Lucene idf, k1, b)', () => {
  const docs = [['apple', 'banana', 'apple'], ['banana', 'cherry'], ['cherry', 'date', 'elder', 'fig']];
  const k1 = 1.2;
  const b = 0.75;
  const idx = new Bm25Index(docs, { k1, b });
  const N = 3;
  const avgdl = 9 / 3;
  const idf = (df: number) => Math.log(1 + (N - df + 0.5) / (df + 0.5));
  const w = (tf: number, dl: number, df: number) => (idf(df) * tf * (k1 + 1)) / (tf + k1 * (1 - b + (b * dl) / avgdl));
  const out = new Float32Array(3);
  idx.scoreInto(['apple', 'banana', 'unknown'], out);
  assert.ok(Math.abs(out[0] - (w(2, 3, 1) + w(1, 3, 2))) < 1e-5);
  assert.ok(Math.abs(out[1] - w(1, 2, 2)) < 1e-5);
  assert.equal(out[2], 0);
  // A repeated query term counts twice.
  idx.scoreInto(['cherry', 'cherry'], out);
  assert.ok(Math.abs(out[2] - 2 * w(1, 4, 2)) < 1e-5);
  const r = idx.search([['apple', 'banana'], ['zzz']], 3);
  assert.deepEqual(Array.from(r.ids), [0, 1, -1, -1, -1, -1], 'only matching docs are returned, best first');
});

test('topkRow: best first, ties to the lower index, floor excludes', () => {
  const ids = new Int32Array(4);
  const sc = new Float32Array(4);
  const n = topkRow(Float32Array.of(0.5, 2, 2, 0, 1, -1), 4, ids, sc, 0);
  assert.equal(n, 4);
  assert.deepEqual(Array.from(ids), [1, 2, 4, 0]);
  const n2 = topkRow(Float32Array.of(0.5, 2, 2, 0, 1, -1), 4, ids, sc, 0.6);
  assert.equal(n2, 3);
  assert.deepEqual(Array.from(ids), [1, 2, 4, -1]);
});

test('chunking covers every token; a document scores the max over its chunks', () => {
  assert.deepEqual(chunkSpans(10, 4, 3), [[0, 4], [3, 7], [6, 10]]);
  assert.deepEqual(chunkSpans(3, 4, 3), [[0, 3]]);
  assert.deepEqual(chunkSpans(0, 4, 3), [[0, 0]]);
  assert.deepEqual(chunkSpans(8, 4, 4), [[0, 4], [4, 8]]);
  const cs = chunkDocs([10, 2, 5], 4, 3);
  assert.deepEqual(Array.from(cs.doc), [0, 0, 0, 1, 2, 2]);
  const out = new Float32Array(2 * 3);
  maxOverChunks(Float32Array.of(0.1, 0.9, 0.3, 0.2, 0.5, 0.4, /* row 2 */ -1, -2, -3, 0, -5, 7), 2, cs.doc, 3, out);
  assert.deepEqual(Array.from(out), [0.9, 0.2, 0.5, -1, 0, 7].map(Math.fround));
});

test('metrics: NDCG@10 with graded gains, Recall@100, MRR@10 against hand-computed values', () => {
  // Query 0: relevant {5: grade 2, 7: grade 1}; ranking [3, 7, 5]. Query 1: relevant {1}; ranking [] (misses).
  const lists = { rows: 2, k: 3, ids: Int32Array.of(3, 7, 5, -1, -1, -1), scores: new Float32Array(6) };
  const rel = new Map([[0, new Map([[5, 2], [7, 1]])], [1, new Map([[1, 1]])]]);
  const m = evaluateRanking(lists, Int32Array.of(0, 1), rel);
  const dcg = 1 / Math.log2(3) + 2 / Math.log2(4);
  const idcg = 2 / Math.log2(2) + 1 / Math.log2(3);
  assert.ok(Math.abs(m['ndcg@10'] - dcg / idcg / 2) < 1e-12);
  assert.equal(m['recall@100'], 0.5);
  assert.equal(m['mrr@10'], 0.25);
  assert.equal(m.queries, 2);
});
