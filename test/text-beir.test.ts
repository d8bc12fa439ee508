/**
 * BEIR loader: a small folder round trip (gzip corpus, qrels splits, ids in file order) and malformed input
 * reported as FILE:LINE plus the field, never a stack trace; SciFact's published BM25 (skips without
 * ../shared/data).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { loadBeir, relevantByQuery } from '../src/text/beir.ts';
import { Bm25Index, Bm25Retriever } from '../src/text/bm25.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { evaluateRanking } from '../src/text/metrics.ts';
import { defaultTokenizerOptions } from '../src/text/tokenize.ts';
import { InputError } from '../src/util/errors.ts';

function folder(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'beir-'));
  mkdirSync(join(dir, 'qrels'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const corpus = '{"_id": "d1", "title": "Alpha", "text": "alpha beta"}\n{"_id": "d2", "text": "gamma"}\n';
const queries = '{"_id": "q1", "text": "alpha?"}\n{"_id": 7, "text": "gamma"}\n';
const qrels = 'query-id\tcorpus-id\tscore\nq1\td1\t1\n7\td2\t2\n7\td1\t0\n';

test('BEIR folder: gzip corpus, numeric ids, qrels splits, relevance = grade > 0', () => {
  const dir = folder({ 'corpus.jsonl.gz': gzipSync(corpus), 'queries.jsonl': queries, 'qrels/test.tsv': qrels });
  const d = loadBeir(dir);
  assert.deepEqual(d.docIds, ['d1', 'd2']);
  assert.deepEqual(d.titles, ['Alpha', '']);
  assert.deepEqual(d.queryIds, ['q1', '7']);
  assert.deepEqual([...d.qrels.keys()], ['test']);
  const rel = relevantByQuery(d.qrels.get('test')!);
  assert.deepEqual([...rel.entries()].map(([q, m]) => [q, [...m.entries()]]), [[0, [[0, 1]]], [1, [[1, 2]]]]);
});

function errorOf(files: Record<string, string | Buffer>): string {
  const dir = folder({ 'corpus.jsonl': corpus, 'queries.jsonl': queries, 'qrels/test.tsv': qrels, ...files });
  try {
    loadBeir(dir);
  } catch (e) {
    assert.ok(e instanceof InputError || (e as Error).name === 'UserError', `a user error, got ${(e as Error).stack}`);
    return (e as Error).message.replace(dir + '/', '');
  }
  assert.fail('no error');
}

test('BEIR errors name the file, the line and the field', () => {
  assert.equal(errorOf({ 'corpus.jsonl': corpus + '{"_id": "d3", "text": 5}\n' }), "corpus.jsonl:3: field 'text': missing or not a string");
  assert.equal(errorOf({ 'corpus.jsonl': '{"_id": "d1", "text": "x"}\n{oops\n' }).split(': not valid JSON')[0], 'corpus.jsonl:2');
  assert.equal(errorOf({ 'corpus.jsonl': '{"text": "x"}\n' }), "corpus.jsonl:1: field '_id': missing or not a string");
  assert.equal(errorOf({ 'corpus.jsonl': '{"_id": "d1", "title": 3, "text": "x"}\n' }), "corpus.jsonl:1: field 'title': not a string");
  assert.equal(errorOf({ 'corpus.jsonl': corpus + '{"_id": "d1", "text": "again"}\n' }), "corpus.jsonl: field '_id': duplicate id 'd1'");
  assert.equal(errorOf({ 'qrels/test.tsv': qrels + 'q9\td1\t1\n' }), "qrels/test.tsv:5: field 'query-id': unknown query 'q9'");
  assert.equal(errorOf({ 'qrels/test.tsv': qrels + 'q1\tdx\t1\n' }), "qrels/test.tsv:5: field 'corpus-id': unknown document 'dx'");
  assert.equal(errorOf({ 'qrels/test.tsv': qrels + 'q1\td2\thigh\n' }), "qrels/test.tsv:5: field 'score': not an integer: 'high'");
  assert.equal(errorOf({ 'qrels/test.tsv': qrels + 'q1 d2 1\n' }), 'qrels/test.tsv:5: expected 3 tab-separated fields (query-id, corpus-id, score), got 1');
  assert.match(errorOf({ 'qrels/test.tsv': 'q1\td1\t1\n' }), /^qrels\/test.tsv:1: expected a header line/);
  const noCorpus = mkdtempSync(join(tmpdir(), 'beir-'));
  assert.throws(() => loadBeir(noCorpus), /corpus.jsonl: missing/);
});

const SCIFACT = join(import.meta.dirname, '..', '..', 'shared', 'data', 'scifact');

test('SciFact: BM25 NDCG@10 within ±0.03 of the published 0.665', (t) => {
  if (!existsSync(SCIFACT)) {
    t.skip(`${SCIFACT} absent`);
    console.log(`# skipped: ${SCIFACT} absent`);
    return;
  }
  const d = loadBeir(SCIFACT);
  assert.equal(d.docIds.length, 5183);
  assert.equal(d.queries.length, 1109);
  assert.equal(new Set(d.qrels.get('train')!.query).size, 809);
  const rel = relevantByQuery(d.qrels.get('test')!);
  assert.equal(rel.size, 300);
  const c = new TextCorpus(d, defaultTokenizerOptions);
  const qs = Int32Array.from(rel.keys());
  const m = evaluateRanking(new Bm25Retriever(new Bm25Index(c.docWords), c.queryWords).retrieve(qs, 100), qs, rel);
  console.log(`# SciFact BM25: NDCG@10 ${m['ndcg@10'].toFixed(4)}, Recall@100 ${m['recall@100'].toFixed(4)}`);
  assert.ok(Math.abs(m['ndcg@10'] - 0.665) <= 0.03, `NDCG@10 ${m['ndcg@10']}`);
});
