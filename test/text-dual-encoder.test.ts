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
import { TextTrainer, defaultTextTrain } from '../src/text/train.ts';
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
  const tr = new TextTrainer(await createJsBackend({ wasm: false }), enc, corpus, { ...defaultTextTrain, seed: 3 });
  const pairs = tr.pretrainPairs('ict');
  assert.equal(pairs.length, 20);
  let removed = 0;
  for (const p of pairs) {
    const words = corpus.docWords[p.doc];
    assert.ok(p.q.length >= 4);
    // Every query token is a token of its document.
    const docTok = new Set(corpus.tokenizer.tokensOfWords(words));
    for (const t of p.q) assert.ok(docTok.has(t));
    if (p.pos.length < words.length) removed++;
  }
  assert.ok(removed >= 15, `sentence removed in ${removed}/20 pairs`);
  const title = tr.pretrainPairs('title');
  assert.equal(title.length, 20);
  assert.deepEqual(Array.from(title[0].q), Array.from(corpus.tokenizer.tokensOfWords(corpus.titleWords[title[0].doc])));
  // Pre-training alone (no supervised epoch) trains the towers on these pairs.
  const before = enc.qTower.tensors()[0][1].slice();
  const res = new TextTrainer(await createJsBackend({ wasm: false }), enc, corpus, { ...defaultTextTrain, pretrain: 'ict', pretrainEpochs: 2, epochs: 0, batchSize: 8 }).run(corpus.data.qrels.get('train')!, null);
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
  const tr = new TextTrainer(await createJsBackend({ wasm: false }), enc, corpus, { ...defaultTextTrain, hardNegatives: 2, hardPool: 5 });
  const rel = relevantByQuery(d.qrels.get('train')!);
  const pools = tr.minePools(bm25, rel);
  for (const [q, pool] of pools) {
    assert.ok(pool.length > 0 && pool.length <= 5);
    for (const doc of pool) assert.ok(!rel.get(q)!.has(doc), 'a positive is never a negative');
    const top = new Bm25Retriever(bm25, corpus.queryWords).retrieve(Int32Array.of(q), 10);
    const topNeg = Array.from(top.ids).filter((x) => x >= 0 && !rel.get(q)!.has(x)).slice(0, pool.length);
    assert.deepEqual(Array.from(pool), topNeg);
  }
  // With hard negatives the candidate set is larger than the batch: the loss over B + B·H candidates is larger.
  let N = 0;
  const orig = enc.step.bind(enc);
  enc.step = (b, q, c, ...rest) => {
    N = Math.max(N, c.length - q.length);
    return orig(b, q, c, ...rest);
  };
  tr.run(d.qrels.get('train')!, bm25);
  assert.ok(N > 0, 'hard negatives were added to the candidates');
});

test('save → load gives the same retrieval', async () => {
  const dir = synonymSet(20, 3);
  const d = loadBeir(dir);
  const corpus = new TextCorpus(d, tok);
  const b = await getBackend();
  for (const shared of [true, false]) {
    const enc = new DualEncoder({ ...defaultDualEncoder, shared, tower: 'transformer', dim: 8, heads: 2, window: 16, stride: 8, tokenizer: tok }, { lrSparse: 0.01, lrDense: 0.01 });
    new TextTrainer(b, enc, corpus, { ...defaultTextTrain, epochs: 2, batchSize: 8 }).run(d.qrels.get('train')!, null);
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
