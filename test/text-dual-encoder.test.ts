/**
 * Text dual encoder on a generated BEIR set with planted structure: every document has its own key word, and
 * its queries say a synonym of that word that never occurs in any document, so BM25 cannot find the document
 * while a dual encoder trained on one query per document learns the mapping and retrieves the document for
 * the other (unseen) query. Also: inverse-cloze pairs, BM25 hard-negative pools, the RRF ensemble, saving and
 * loading, and the `towerlab text` command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '../src/compute/js.ts';
import { getBackend } from '../src/compute/index.ts';
import { loadBeir, relevantByQuery } from '../src/text/beir.ts';
import { Bm25Index, Bm25Retriever } from '../src/text/bm25.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { DualEncoder, DualEncoderRetriever } from '../src/text/dual-encoder.ts';
import { defaultDualEncoder, runTextExperiment } from '../src/text/experiment.ts';
import { evaluateRanking } from '../src/text/metrics.ts';
import { defaultTextTrain, textRecipe, trainDualEncoder, trainText } from '../src/text/train.ts';
import { TextEncoderPair } from '../src/text/text-pair.ts';
import { PretrainRows, SentenceCache, TextTrainingSet } from '../src/text/training-set.ts';
import { Rng } from '../src/util/rng.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';

const tok = { buckets: 1 << 14, bigrams: false, charNgrams: [], stopwords: true, stem: true };

for (const tower of ['boe', 'transformer'] as const) {
  test(`a ${tower} dual encoder learns a planted synonym mapping that BM25 cannot`, async () => {
    const dir = synonymSet(60, 5);
    const r = await runTextExperiment({
      beir: dir,
      model: { ...defaultDualEncoder, tower, dim: 32, heads: 2, window: 32, stride: 24, tokenizer: tok },
      optim: { lrSparse: 0.05, lrDense: 0.005 },
      train: { ...defaultTextTrain, epochs: tower === 'boe' ? 30 : 60, batchSize: 16, temperature: 0.1 },
      bm25: { k1: 1.2, b: 0.75 },
      rrfK: 60,
      weights: [1, 1],
    });
    const m = r.metrics;
    assert.ok(m.bm25['ndcg@10'] < 0.2, `BM25 only matches fillers: ${m.bm25['ndcg@10']}`);
    assert.ok(m.dense['ndcg@10'] > (tower === 'boe' ? 0.8 : 0.6), `dual encoder NDCG@10 ${m.dense['ndcg@10']}`);
    assert.ok(m.ensemble['recall@100'] >= m.dense['recall@100'] - 1e-9, 'the ensemble keeps the dense member\'s hits');
  });
}

test('inverse-cloze pairs: the query is a sentence of the document, mostly removed from the positive', async () => {
  const dir = synonymSet(20, 1);
  const corpus = new TextCorpus(loadBeir(dir), { ...tok, bigrams: false });
  const enc = new DualEncoder({ ...defaultDualEncoder, dim: 8, window: 64, stride: 48, tokenizer: { ...tok, bigrams: false } }, { lrSparse: 0.01, lrDense: 0.01 });
  const pair = new TextEncoderPair(enc, corpus);
  const cache = new SentenceCache();
  const pairs = new PretrainRows(pair.docs, 'ict', new Rng(3), cache);
  assert.equal(pairs.items.length, 20);
  let removed = 0;
  pairs.items.forEach((doc, i) => {
    const words = corpus.docWords[doc];
    assert.ok(pairs.queries[i].length >= 4);
    // Every query token is a token of its document.
    const docTok = new Set(corpus.tokenizer.tokensOfWords(words));
    for (const t of pairs.queries[i]) assert.ok(docTok.has(t));
    if (pairs.positives[i].length < words.length) removed++;
  });
  assert.ok(removed >= 15, `sentence removed in ${removed}/20 pairs`);
  assert.deepEqual(Array.from(pairs.users), new Array(20).fill(-1), 'pre-training rows have no query id');
  const title = new PretrainRows(pair.docs, 'title', new Rng(3), cache);
  assert.equal(title.items.length, 20);
  assert.deepEqual(Array.from(title.queries[0]), Array.from(corpus.tokenizer.tokensOfWords(corpus.titleWords[title.items[0]])));
  // A batch of pre-training rows brings its positives' inputs.
  const batch = title.batch([0, 1]);
  assert.equal(batch.input.positives!.length, 2);
  // Pre-training alone (no supervised epoch) trains the towers on these pairs.
  const before = enc.qTower.tensors()[0][1].slice();
  const res = trainDualEncoder(await createJsBackend({ wasm: false }), enc, corpus, corpus.data.qrels.get('train')!, { ...defaultTextTrain, pretrain: 'ict', pretrainEpochs: 2, epochs: 0, batchSize: 8 });
  assert.deepEqual(res.history.map((h) => h.phase), ['pretrain', 'pretrain']);
  assert.ok(res.steps > 0);
  const after = enc.qTower.tensors()[0][1];
  assert.ok(after.some((v, i) => v !== before[i]), 'pre-training changed the embeddings');
});

test('hard-negative pools: BM25 top documents minus the positives, and they enter the softmax', async () => {
  const dir = synonymSet(20, 2);
  const d = loadBeir(dir);
  const corpus = new TextCorpus(d, tok);
  const bm25 = new Bm25Index(corpus.docWords);
  const enc = new DualEncoder({ ...defaultDualEncoder, dim: 8, window: 64, stride: 48, tokenizer: tok }, { lrSparse: 0.01, lrDense: 0.01 });
  const pair = new TextEncoderPair(enc, corpus);
  const set = new TextTrainingSet(pair.docs, d.qrels.get('train')!, bm25);
  const rel = relevantByQuery(d.qrels.get('train')!);
  const pools = set.bm25Pools(0, 5);
  for (const [q, pool] of pools) {
    assert.ok(pool.length > 0 && pool.length <= 5);
    for (const doc of pool) assert.ok(!rel.get(q)!.has(doc), 'a positive is never a negative');
    const top = new Bm25Retriever(bm25, corpus.queryWords).retrieve(Int32Array.of(q), 10);
    const topNeg = Array.from(top.ids).filter((x) => x >= 0 && !rel.get(q)!.has(x)).slice(0, pool.length);
    assert.deepEqual(Array.from(pool), topNeg);
  }
  // With hard negatives the candidate set is larger than the batch (B + B·H columns), and they come from the pools.
  let N = 0;
  let fromPools = true;
  const orig = pair.forward.bind(pair);
  pair.forward = (b, batch, ids, rng) => {
    N = Math.max(N, ids.length - batch.rows);
    for (let j = batch.rows; j < ids.length; j++) if (!Array.from(pools.values()).some((p) => p.includes(ids[j]))) fromPools = false;
    return orig(b, batch, ids, rng);
  };
  trainText(await createJsBackend({ wasm: false }), pair, set, textRecipe({ hardNegatives: 2, hardPool: 5 }), { ...defaultTextTrain, batchSize: 8 });
  assert.ok(N > 0, 'hard negatives were added to the candidates');
  assert.ok(N <= 2 * 8);
  assert.ok(fromPools, 'every extra column is a pooled BM25 negative');
});

test('save → load gives the same retrieval', async () => {
  const dir = synonymSet(20, 3);
  const d = loadBeir(dir);
  const corpus = new TextCorpus(d, tok);
  const b = await getBackend();
  for (const shared of [true, false]) {
    const enc = new DualEncoder({ ...defaultDualEncoder, shared, tower: 'transformer', dim: 8, heads: 2, window: 16, stride: 8, tokenizer: tok }, { lrSparse: 0.01, lrDense: 0.01 });
    trainDualEncoder(b, enc, corpus, d.qrels.get('train')!, { ...defaultTextTrain, epochs: 2, batchSize: 8 });
    const out = join(mkdtempSync(join(tmpdir(), 'text-model-')), 'm');
    enc.save(out, {});
    const back = DualEncoder.load(out);
    const qs = Int32Array.of(1, 3, 5);
    const a = new DualEncoderRetriever('a', enc, corpus, b).retrieve(qs, 5);
    const c = new DualEncoderRetriever('b', back, corpus, b).retrieve(qs, 5);
    assert.deepEqual(Array.from(c.ids), Array.from(a.ids));
    const rel = relevantByQuery(d.qrels.get('test')!);
    assert.equal(evaluateRanking(a, qs, rel)['ndcg@10'], evaluateRanking(c, qs, rel)['ndcg@10']);
  }
});

test('towerlab text prints the BM25 / dual encoder / ensemble table and JSON; bad input is one line', () => {
  const dir = synonymSet(20, 4);
  const bin = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
  const out = join(mkdtempSync(join(tmpdir(), 'text-cli-')), 'model');
  const r = spawnSync(process.execPath, [bin, 'text', '--beir', dir, '--epochs', '2', '--dim', '16', '--pretrain', 'title', '--pretrain-epochs', '1', '--out', out, '--json', '--no-progress'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /BM25 +\d\.\d{4}/);
  assert.match(r.stdout, /ensemble \(RRF\) +\d\.\d{4}/);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.ok(j.metrics.dense['ndcg@10'] >= 0 && j.metrics.bm25.queries === 20);
  DualEncoder.load(out);
  const bad = spawnSync(process.execPath, [bin, 'text', '--beir', join(dir, 'nope')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^towerlab: error: .*nope: no such directory\n$/);
});
