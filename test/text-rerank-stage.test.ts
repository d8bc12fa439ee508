/**
 * Retrieve → rerank for text (src/text/rerank-stage.ts, `towerlab text --rerank`). Planted structure: queries
 * say their document's key word, so BM25 is perfect while a dual encoder trained for one epoch is not; a
 * reranker over the dense top-K trained on held-out queries must learn the lexical features and beat its first
 * stage (a no-op reranker, or one trained on nothing, cannot). The CLI test checks the printed rerank rows, the
 * JSON and that the reranker saved beside the model loads and reproduces the reported ranking.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { loadReranker } from '../src/rerank/saved-reranker.ts';
import { TEXT_FEATURES } from '../src/text/rerank-features.ts';
import { loadBeir, relevantByQuery } from '../src/text/beir.ts';
import { Bm25Index } from '../src/text/bm25.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { DualEncoder, DualEncoderRetriever } from '../src/text/dual-encoder.ts';
import { defaultDualEncoder, rerankerDir, runTextExperiment } from '../src/text/experiment.ts';
import { evaluateRanking } from '../src/text/metrics.ts';
import { applyTextReranker, defaultTextLce, stageFeatures, stageScores } from '../src/text/rerank-stage.ts';
import { defaultTextTrain } from '../src/text/train.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';

const tok = { buckets: 1 << 14, bigrams: false, charNgrams: [], stopwords: true, stem: true };

/** synonymSet with the queries saying the key word itself: BM25 finds every document. */
function lexicalSet(n: number, seed: number): string {
  const dir = synonymSet(n, seed);
  const qp = join(dir, 'queries.jsonl');
  writeFileSync(qp, readFileSync(qp, 'utf8').replace(/syn(\d+)/g, 'key$1'));
  return dir;
}

test('a reranker trained on held-out queries learns the lexical signal its dense first stage misses', async () => {
  const dir = lexicalSet(60, 1);
  const run = (over: 'dense' | 'soft-vote') =>
    runTextExperiment({
      beir: dir,
      model: { ...defaultDualEncoder, dim: 16, tokenizer: tok },
      optim: { lrSparse: 0.05, lrDense: 0.005 },
      train: { ...defaultTextTrain, epochs: 1, pretrain: 'none', batchSize: 16, temperature: 0.1 },
      bm25: { k1: 1.2, b: 0.75 },
      rrfK: 60,
      weights: [1, 1],
      rerank: { over, K: 100, holdout: 0.3, splitSeed: 1, lce: { ...defaultTextLce, epochs: 20 } },
    });
  const r = await run('dense');
  const rr = r.rerank!;
  assert.equal(rr.heldOutQueries, 18);
  assert.equal(rr.fitQueries + rr.heldOutQueries, r.data.trainQueries);
  assert.equal(r.train.history.length, 1);
  assert.ok(r.metrics.bm25['ndcg@10'] > 0.95, `BM25 ${r.metrics.bm25['ndcg@10']}`);
  assert.equal(rr.retrieve['ndcg@10'], r.metrics.dense['ndcg@10'], 'the dense first stage is the dual encoder row');
  assert.ok(rr.retrieve['ndcg@10'] < 0.9, `dense first stage ${rr.retrieve['ndcg@10']}`);
  assert.ok(rr.rerank['ndcg@10'] > 0.95, `reranked ${rr.rerank['ndcg@10']} (first stage ${rr.retrieve['ndcg@10']})`);
  assert.equal(rr.rerank['recall@100'], rr.retrieve['recall@100'], 'reranking only reorders the candidates');
  assert.ok(rr.losses.at(-1)! < rr.losses[0], `loss ${rr.losses[0]} → ${rr.losses.at(-1)}`);
  assert.equal(rr.out, null);
  // Over the soft vote, the first stage is the fused list.
  const s = (await run('soft-vote')).rerank!;
  assert.equal(s.over, 'soft-vote');
  assert.ok(s.retrieve['ndcg@10'] > rr.retrieve['ndcg@10'], 'soft vote with a perfect BM25 beats dense alone');
});

test('towerlab text --rerank prints and saves the reranker beside the model; it reloads to the same ranking', async () => {
  const dir = synonymSet(20, 4);
  const bin = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
  const out = join(mkdtempSync(join(tmpdir(), 'text-rerank-cli-')), 'model');
  const args = [bin, 'text', '--beir', dir, '--epochs', '3', '--dim', '16', '--pretrain', 'none', '--window', '32', '--stride', '24', '--buckets', String(1 << 14), '--no-bigrams'];
  const r = spawnSync(process.execPath, [...args, '--rerank', '--rerank-over', 'soft-vote', '--rerank-k', '20', '--rerank-holdout', '0.25', '--rerank-group', '4', '--rerank-epochs', '5', '--out', out, '--json', '--no-progress'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /retrieve → rerank \(LCE over the soft vote top-20; dual encoder trained on 15 train queries, reranker on 5 held out/);
  assert.match(r.stdout, /first stage +\d\.\d{4} +\d\.\d{4} +\d\.\d{4}/);
  assert.match(r.stdout, /reranked \(LCE\) +\d\.\d{4} +\d\.\d{4} +\d\.\d{4}/);
  assert.match(r.stdout, new RegExp(`reranker saved to ${rerankerDir(out).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  const rr = j.rerank;
  assert.equal(rr.K, 20);
  assert.equal(rr.heldOutQueries, 5);
  for (const stage of ['retrieve', 'rerank']) for (const m of ['ndcg@10', 'recall@100', 'mrr@10']) assert.ok(Number.isFinite(rr[stage][m]) && rr[stage][m] >= 0 && rr[stage][m] <= 1, `${stage} ${m} ${rr[stage][m]}`);
  assert.equal(rr.losses.length, 5);
  assert.ok(rr.losses.every(Number.isFinite));
  assert.equal(rr.out, rerankerDir(out));

  // The saved reranker (and model) rebuild the reported reranked ranking.
  const b = await getBackend();
  const { model, meta, standardizer } = loadReranker(rr.out, b);
  assert.deepEqual(meta.features, [...TEXT_FEATURES]);
  assert.equal(meta.K, 20);
  assert.ok(standardizer && standardizer.mean.length === TEXT_FEATURES.length);
  assert.ok(meta.members[0].checksum && existsSync(meta.members[0].dir));
  const data = loadBeir(dir);
  const enc = DualEncoder.load(out);
  const corpus = new TextCorpus(data, enc.config.tokenizer);
  const ctx = { corpus, bm25: new Bm25Index(corpus.docWords, { k1: 1.2, b: 0.75 }), dense: new DualEncoderRetriever('d', enc, corpus, b), K: meta.K };
  const rel = relevantByQuery(data.qrels.get('test')!);
  const qs = Int32Array.from(rel.keys()).sort();
  const feats = stageFeatures(ctx, stageScores(ctx, qs), 'soft-vote');
  const again = evaluateRanking(applyTextReranker({ model, standardizer: standardizer! }, feats), qs, rel);
  assert.ok(Math.abs(again['ndcg@10'] - rr.rerank['ndcg@10']) < 1e-9, `${again['ndcg@10']} vs ${rr.rerank['ndcg@10']}`);

  // Bad values are one line.
  const bad = spawnSync(process.execPath, [...args, '--rerank', '--rerank-holdout', '1.5'], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^towerlab: error: --rerank-holdout: must be in \(0, 1\), got 1.5\n$/);
});
