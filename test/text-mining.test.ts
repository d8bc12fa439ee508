/**
 * Second-round text mining and the text reranker: the seeded dev split of the train queries, hard-negative
 * pools from a fused ensemble with false-negative filtering, externally mined pools reaching the trainer,
 * the dense score matrix, the text pair features (against hand computation), and LCE over precomputed
 * features (standardisation in float64, a planted signal learned, lists re-ordered).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import type { RankedLists } from '../src/mine/types.ts';
import { drawFeatureGroups, fitStandardizer, rerankLists, standardize, trainOnFeatures } from '../src/rerank/feature-groups.ts';
import { LceReranker } from '../src/rerank/lce.ts';
import { bm25ScoreMatrix, textCandidateFeatures, TEXT_FEATURES, type CandidateFeatures } from '../src/text/rerank-features.ts';
import { loadBeir, type BeirData, type Qrels } from '../src/text/beir.ts';
import { Bm25Index } from '../src/text/bm25.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { DualEncoder, DualEncoderRetriever } from '../src/text/dual-encoder.ts';
import { defaultDualEncoder } from '../src/text/experiment.ts';
import { evaluateRanking } from '../src/text/metrics.ts';
import { mineTextPools } from '../src/text/mine-rounds.ts';
import { splitQrelsByQuery } from '../src/text/query-split.ts';
import { defaultTextTrain, trainDualEncoder } from '../src/text/train.ts';
import { Rng } from '../src/util/rng.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';

const tok = { buckets: 1 << 12, bigrams: false, charNgrams: [], stopwords: true, stem: true };
const list = (rows: number, k: number, ids: number[], scores: number[]): RankedLists => ({ rows, k, ids: Int32Array.from(ids), scores: Float32Array.from(scores) });

test('dev split by query: disjoint, complete, all judgments of a query on one side, seeded', () => {
  const q: number[] = [];
  const d: number[] = [];
  for (let i = 0; i < 50; i++) for (let j = 0; j <= i % 3; j++) {
    q.push(i * 2);
    d.push(i * 10 + j);
  }
  const qr: Qrels = { query: Int32Array.from(q), doc: Int32Array.from(d), grade: new Int32Array(q.length).fill(1) };
  const s = splitQrelsByQuery(qr, 0.2, 7);
  assert.equal(s.devQueries.length, 10);
  assert.equal(s.fit.query.length + s.dev.query.length, q.length);
  const dev = new Set(s.dev.query);
  assert.deepEqual([...dev].sort((a, b) => a - b), Array.from(s.devQueries));
  for (const x of s.fit.query) assert.ok(!dev.has(x));
  // Every judgment of a dev query is in dev (pairs intact).
  for (let i = 0; i < s.dev.query.length; i++) assert.equal(Math.floor(s.dev.doc[i] / 10) * 2, s.dev.query[i]);
  assert.deepEqual(splitQrelsByQuery(qr, 0.2, 7).devQueries, s.devQueries);
  assert.notDeepEqual(Array.from(splitQrelsByQuery(qr, 0.2, 8).devQueries), Array.from(s.devQueries));
  assert.throws(() => splitQrelsByQuery(qr, 1, 1), /fraction/);
});

test('ensemble pools: fused members, positives skipped, rank window and margin on the dense scale', () => {
  // Query 5, positive doc 1. BM25 ranks 1, 2, 3, 4; dense ranks 1, 7, 8, 2.
  const bm = list(1, 4, [1, 2, 3, 4], [10, 8, 6, 4]);
  const de = list(1, 4, [1, 7, 8, 2], [0.9, 0.85, 0.5, 0.3]);
  const rel = new Map([[5, new Map([[1, 1]])]]);
  const qs = Int32Array.of(5);
  const only = mineTextPools([bm], qs, rel, { pool: 3, fusion: 'soft-vote' });
  assert.deepEqual(Array.from(only.pools.get(5)!), [2, 3, 4]);
  // Soft vote (min-max per member): 1: 2, 7: 0.917, 2: 0.667, 3: 0.333, 8: 0.333 (tie → smaller id), 4: 0;
  // the fused list keeps the members' depth (4): 1, 7, 2, 3.
  const ens = mineTextPools([bm, de], qs, rel, { pool: 3, fusion: 'soft-vote' });
  assert.deepEqual(Array.from(ens.pools.get(5)!), [7, 2, 3], "the dense member's candidate enters the pool; positive skipped");
  // Rank window: skip the fused top non-positive.
  const win = mineTextPools([bm, de], qs, rel, { pool: 3, fusion: 'soft-vote', rankStart: 1 });
  assert.deepEqual(Array.from(win.pools.get(5)!), [2, 3]);
  // Margin 0.05 relative on dense cosines (a full row of 9 docs): positive 0.9 → keep ≤ 0.855; doc 7 is 0.86.
  const N = 9;
  const dense = new Float32Array(N);
  dense.set([0, 0.9, 0.3, 0.2, 0.1, 0, 0, 0.86, 0.5]);
  const m = mineTextPools([bm, de], qs, rel, { pool: 5, fusion: 'soft-vote', margin: 0.05, relative: true }, dense, N);
  assert.deepEqual(Array.from(m.pools.get(5)!), [2, 3]);
  assert.ok(Math.abs(m.meanPool - 2) < 1e-9);
  // Several positives: the margin is against the weakest one's score.
  const rel2 = new Map([[5, new Map([[1, 1], [8, 1]])]]);
  const m2 = mineTextPools([bm, de], qs, rel2, { pool: 5, fusion: 'soft-vote', margin: 0.5, relative: true }, dense, N);
  // weakest positive 0.5 (doc 8) → keep ≤ 0.25: only doc 3 (0.2) of 7, 2, 3.
  assert.deepEqual(Array.from(m2.pools.get(5)!), [3]);
  assert.throws(() => mineTextPools([bm], qs, rel, { pool: 2, fusion: 'rrf', margin: 0.1 }), /filterScores/);
});

test('training: externally mined pools are used (weights change), and ignored without hard negatives', async () => {
  const b = await createJsBackend({ wasm: false });
  const data = loadBeir(synonymSet(12, 2));
  const corpus = new TextCorpus(data, tok);
  const cfg = { ...defaultDualEncoder, dim: 8, window: 32, stride: 24, tokenizer: tok };
  const train = data.qrels.get('train')!;
  const pools = new Map<number, Int32Array>();
  for (const q of new Set(train.query)) pools.set(q, Int32Array.of(0, 1, 2, 3));
  const run = (hn: number, p: Map<number, Int32Array> | null) => {
    const enc = new DualEncoder(cfg, { lrSparse: 0.01, lrDense: 0.01 });
    trainDualEncoder(b, enc, corpus, train, { ...defaultTextTrain, epochs: 2, batchSize: 4, hardNegatives: hn, seed: 1 }, { pools: p });
    return Array.from(enc.qTower.tensors()[0][1]);
  };
  const none = run(0, null);
  assert.deepEqual(run(0, pools), none, 'hardNegatives 0: pools ignored');
  assert.notDeepEqual(run(1, pools), none, 'hardNegatives 1: pools used');
});

test('dense score matrix agrees with the retriever; BM25 matrix with the index', async () => {
  const b = await createJsBackend({ wasm: false });
  const data = loadBeir(synonymSet(15, 3));
  const corpus = new TextCorpus(data, tok);
  const enc = new DualEncoder({ ...defaultDualEncoder, dim: 8, window: 16, stride: 12, tokenizer: tok }, { lrSparse: 0.01, lrDense: 0.01 });
  const ret = new DualEncoderRetriever('d', enc, corpus, b);
  const qs = Int32Array.of(0, 3, 7);
  const N = corpus.docWords.length;
  const all = ret.scoreAll(qs);
  const l = ret.retrieve(qs, 5);
  for (let r = 0; r < 3; r++) for (let i = 0; i < 5; i++) assert.ok(Math.abs(all[r * N + l.ids[r * 5 + i]] - l.scores[r * 5 + i]) < 1e-6);
  for (let r = 0; r < 3; r++) assert.ok(Math.max(...all.subarray(r * N, (r + 1) * N)) - l.scores[r * 5] < 1e-6);
  const bm = new Bm25Index(corpus.docWords);
  const bs = bm25ScoreMatrix(bm, corpus, qs);
  const s = bm.search(Array.from(qs, (q) => corpus.queryWords[q]), 3);
  for (let r = 0; r < 3; r++) assert.ok(Math.abs(bs[r * N + s.ids[r * 3]] - s.scores[r * 3]) < 1e-5);
});

test('text pair features match a hand computation', () => {
  const data: BeirData = {
    dir: 'mem', docIds: ['a', 'b', 'c'], titles: ['heart disease', '', 'cancer'],
    texts: ['heart attack risk grows', 'protein folding', 'cancer risk and heart'],
    queryIds: ['q'], queries: ['heart risk factors'], qrels: new Map(),
  };
  const corpus = new TextCorpus(data, tok);
  const bm = new Bm25Index(corpus.docWords);
  const qs = Int32Array.of(0);
  const N = 3;
  const dense = Float32Array.of(0.2, 0.9, 0.5);
  const bms = bm25ScoreMatrix(bm, corpus, qs);
  const lists = list(1, 4, [2, 0, 1, -1], [3, 2, 1, 0]);
  const cf = textCandidateFeatures(corpus, bm, qs, lists, dense, bms);
  const F = TEXT_FEATURES.length;
  assert.equal(cf.F, F);
  const feat = (slot: number, name: (typeof TEXT_FEATURES)[number]) => cf.x[slot * F + TEXT_FEATURES.indexOf(name)];
  const qw = [...new Set(corpus.queryWords[0])];
  assert.equal(qw.length, 3);
  // Slot 0 = doc 2 ("cancer" / "cancer risk and heart"): dense 0.5 of candidates {0.5, 0.2, 0.9}.
  assert.ok(Math.abs(feat(0, 'dense') - 0.5) < 1e-6);
  assert.ok(Math.abs(feat(0, 'denseGap') - (0.5 - 0.9)) < 1e-6);
  assert.ok(Math.abs(feat(0, 'denseMinMax') - (0.5 - 0.2) / 0.7) < 1e-6);
  assert.ok(Math.abs(feat(0, 'denseRank') - Math.log1p(1) / Math.log1p(4)) < 1e-6);
  assert.ok(Math.abs(feat(0, 'listRank') - 0) < 1e-6);
  assert.ok(Math.abs(feat(1, 'listRank') - Math.log1p(1) / Math.log1p(4)) < 1e-6);
  assert.ok(Math.abs(feat(0, 'bm25') - Math.log1p(bms[2])) < 1e-6);
  // Doc 2 holds heart and risk of {heart, risk, factor}: 2/3; doc 1 none; doc 0 heart + risk: 2/3.
  assert.ok(Math.abs(feat(0, 'overlap') - 2 / 3) < 1e-6);
  assert.equal(feat(2, 'overlap'), 0);
  assert.equal(feat(2, 'bm25'), 0);
  // Title overlap: doc 0 title has heart (1/3); doc 2 title "cancer" none.
  assert.ok(Math.abs(feat(1, 'titleOverlap') - 1 / 3) < 1e-6);
  assert.equal(feat(0, 'titleOverlap'), 0);
  const idf = qw.map((w) => (bm.vocab.has(w) ? bm.idf[bm.vocab.get(w)!] : 0));
  const hits = qw.map((w) => corpus.docWords[2].includes(w));
  const want = idf.reduce((a, v, i) => a + (hits[i] ? v : 0), 0) / idf.reduce((a, v) => a + v, 0);
  assert.ok(Math.abs(feat(0, 'idfOverlap') - want) < 1e-6);
  // The −1 slot stays zero.
  for (let f = 0; f < F; f++) assert.equal(cf.x[3 * F + f], 0);
});

/** Rows of K candidates; the positive sits at a random slot (often low in the list) and feature 0 carries it. */
function planted(rows: number, K: number, seed: number): { cf: CandidateFeatures; pos: (r: number) => Set<number>; rel: Map<number, Map<number, number>>; qs: Int32Array } {
  const rng = new Rng(seed);
  const F = 3;
  const ids = new Int32Array(rows * K);
  const x = new Float32Array(rows * K * F);
  const rel = new Map<number, Map<number, number>>();
  for (let r = 0; r < rows; r++) {
    const p = 2 + rng.int(K - 2);
    for (let i = 0; i < K; i++) {
      ids[r * K + i] = r * 1000 + i;
      x[(r * K + i) * F] = (i === p ? 2 : 0) + 0.5 * rng.normal() + 5;
      x[(r * K + i) * F + 1] = rng.normal() * 3;
      x[(r * K + i) * F + 2] = i / K;
    }
    rel.set(r, new Map([[r * 1000 + p, 1]]));
  }
  const qs = Int32Array.from({ length: rows }, (_, r) => r);
  return { cf: { queries: qs, lists: { rows, k: K, ids, scores: new Float32Array(rows * K) }, F, x }, pos: (r) => new Set(rel.get(r)!.keys()), rel, qs };
}

test('feature LCE: z-scoring in float64, groups hold the positive first, a planted signal is learned', async () => {
  const b = await createJsBackend({ wasm: false });
  const tr = planted(60, 20, 1);
  const st = fitStandardizer(tr.cf);
  for (let f = 0; f < 3; f++) {
    let m = 0;
    for (let s = 0; s < 60 * 20; s++) m += tr.cf.x[s * 3 + f];
    m /= 1200;
    let v = 0;
    for (let s = 0; s < 60 * 20; s++) v += (tr.cf.x[s * 3 + f] - m) ** 2;
    assert.ok(Math.abs(st.mean[f] - m) < 1e-4 && Math.abs(st.std[f] - Math.sqrt(v / 1200)) < 1e-3);
  }
  const z = standardize(tr.cf, st);
  const g = drawFeatureGroups(z, tr.pos, 5, new Rng(2));
  assert.equal(g.Q, 60);
  for (let q = 0; q < g.Q; q++) {
    const first = g.x[q * 5 * 3];
    for (let j = 1; j < 5; j++) assert.notEqual(g.x[(q * 5 + j) * 3], first);
  }
  const te = planted(80, 20, 9);
  const zt = standardize(te.cf, st);
  const before = evaluateRanking(te.cf.lists, te.qs, te.rel)['ndcg@10'];
  const model = new LceReranker(b, { inDim: 3, hidden: [8], temperature: 1, lr: 0.01, seed: 1 });
  const untrained = evaluateRanking(rerankLists(model, zt), te.qs, te.rel)['ndcg@10'];
  const losses = trainOnFeatures(model, z, tr.pos, { epochs: 30, batch: 8, G: 5, rng: new Rng(3) });
  assert.ok(losses[losses.length - 1] < losses[0] * 0.6, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  const after = evaluateRanking(rerankLists(model, zt), te.qs, te.rel)['ndcg@10'];
  assert.ok(after > before + 0.3 && after > untrained + 0.2, `NDCG@10 list ${before.toFixed(3)}, untrained ${untrained.toFixed(3)}, trained ${after.toFixed(3)}`);
  // Reranking permutes each row: same ids.
  const re = rerankLists(model, zt);
  for (let r = 0; r < 80; r++) assert.deepEqual([...re.ids.subarray(r * 20, r * 20 + 20)].sort((a, c) => a - c), [...te.cf.lists.ids.subarray(r * 20, r * 20 + 20)]);
});
