/**
 * Text dual encoders as first-class models: a BoE encoder trained on the planted-synonym BEIR set
 * (helpers/beir-synthetic.ts: a test query says `syn<i>`, which no document contains; only document d<i>
 * carries the matching `key<i>`) is exported to a serving bundle and served: `POST /search` must return the
 * planted relevant document, rank exactly as the model itself does (every chunk scored, a document by its
 * best chunk), and answer bad bodies with 400 and a message. Also: the HNSW/IVF index path, `/embed {text}`,
 * the checksums covering the text files, `towerlab export` / `recommend --query` from the command line.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Backend } from '../src/compute/backend.ts';
import { getBackend } from '../src/compute/index.ts';
import { bundleFromDraft, readBundle } from '../src/bundle/read.ts';
import { openTextModel, textAsArtifacts } from '../src/bundle/text.ts';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { TextModel } from '../src/api/text-model.ts';
import { loadBeir } from '../src/text/beir.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { DualEncoder } from '../src/text/dual-encoder.ts';
import { defaultDualEncoder } from '../src/text/experiment.ts';
import { defaultTextTrain, trainDualEncoder } from '../src/text/train.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { ModelHolder } from '../src/serve/model-holder.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { buildServer, defaultServerOptions } from '../src/serve/server.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';
import { makeBundle } from './helpers/serve-fixture.ts';

const N = 30;
const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const tok = { buckets: 1 << 14, bigrams: false, charNgrams: [], stopwords: true, stem: true };
let backend: Backend;
let work: string;
let beir: string;
let modelDir: string;
let exactBundle: string;
let app: FastifyInstance;
let model: TextModel;
let queries: string[];

before(async () => {
  backend = await getBackend();
  work = mkdtempSync(join(tmpdir(), 'text-bundle-'));
  beir = synonymSet(N, 5);
  const data = loadBeir(beir);
  queries = data.queries;
  const corpus = new TextCorpus(data, tok);
  // A window shorter than the documents: each has 2–3 chunks, so the best-chunk (MaxP) scoring matters.
  const enc = new DualEncoder({ ...defaultDualEncoder, tower: 'boe', dim: 32, window: 12, stride: 6, tokenizer: tok }, { lrSparse: 0.05, lrDense: 0.005 });
  trainDualEncoder(backend, enc, corpus, data.qrels.get('train')!, { ...defaultTextTrain, epochs: 30, batchSize: 16, temperature: 0.1 });
  modelDir = join(work, 'model');
  enc.save(modelDir, { data: beir }); // as `towerlab text --out` does: the corpus is found through `data`
  model = new TextModel(enc, corpus, backend);
  const m = openTextModel(modelDir);
  exactBundle = join(work, 'exact');
  writeBundle(exactBundle, createBundle(backend, textAsArtifacts(m.encoder, m.corpus, m.meta), { index: null, recallQueries: 50, source: modelDir }));
  const holder = new ModelHolder(exactBundle, backend, 'exact');
  await holder.reload();
  app = buildServer(holder, new ServerMetrics(), { ...defaultServerOptions, maxK: 50, demo: true });
});

const post = async (url: string, payload: unknown) => {
  const r = await app.inject({ method: 'POST', url, payload: payload as any });
  return { status: r.statusCode, body: r.json() };
};

/** The held-out query of document i ("<filler> syn<i>", never trained on). */
const testQuery = (i: number) => queries[2 * i + 1];

test('POST /search returns the planted relevant document for held-out queries, ranked as the model ranks', async (t) => {
  let top1 = 0;
  let top5 = 0;
  for (let i = 0; i < N; i++) {
    const r = await post('/search', { query: testQuery(i), k: 5 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.query, 'text');
    assert.equal(r.body.search, 'exact');
    const ids = r.body.documents.map((d: { id: string }) => d.id);
    if (ids[0] === `d${i}`) top1++;
    if (ids.includes(`d${i}`)) top5++;
    // The documents' titles come along ("key<i> <filler>").
    assert.match(r.body.documents[0].title, /^key\d+ /);
    const want = model.recommend(testQuery(i), 5);
    assert.deepEqual(ids, want.map((x) => x.item));
    r.body.documents.forEach((d: { score: number }, j: number) => assert.ok(Math.abs(d.score - want[j].score) < 1e-5));
  }
  t.diagnostic(`planted document first for ${top1}/${N}, in the top 5 for ${top5}/${N} held-out queries`);
  assert.ok(top5 >= 0.9 * N && top1 >= 0.5 * N, `planted document first for ${top1}/${N}, in the top 5 for ${top5}/${N} held-out queries`);
});

test('bad /search bodies get 400 with a message naming the field', async () => {
  const cases: Array<[unknown, RegExp]> = [
    [{}, /^query: /],
    [{ query: '' }, /^query: must not be empty/],
    [{ query: '   ' }, /^query: must not be empty/],
    [{ query: 42 }, /^query: must be a string/],
    [{ query: 'syn1', k: 0 }, /^k: must be at least 1/],
    [{ query: 'syn1', k: 51 }, /^k: must be at most 50/],
    [{ query: 'syn1', k: 2.5 }, /^k: must be an integer/],
    [{ query: 'syn1', search: 'fast' }, /^search: /],
    [{ query: 'syn1', user: 'u1' }, /unknown field 'user'/],
    [{ query: 'the of and' }, /no searchable words/],
    [[1, 2], /./],
  ];
  for (const [body, msg] of cases) {
    const r = await post('/search', body);
    assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status}`);
    assert.equal(r.body.error, 'bad_request');
    assert.match(r.body.message, msg, JSON.stringify(body));
  }
  const raw = await app.inject({ method: 'POST', url: '/search', payload: '{"query":', headers: { 'content-type': 'application/json' } });
  assert.equal(raw.statusCode, 400);
});

test('/embed {text} is the query vector /search uses; /model describes the text model', async () => {
  const r = await post('/embed', { text: testQuery(3) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const want = model.encodeQueries([testQuery(3)]);
  assert.equal(r.body.embedding.length, want.length);
  r.body.embedding.forEach((v: number, j: number) => assert.ok(Math.abs(v - want[j]) < 1e-6));
  assert.equal((await post('/embed', { text: 'the of' })).status, 400);
  const m = (await app.inject({ url: '/model' })).json();
  assert.equal(m.model.text.documents, N);
  assert.ok(m.model.items > N, 'more chunks than documents');
  // serve --model <text model directory>: bundled in memory (the corpus found through the model's `data`).
  const holder = new ModelHolder(modelDir, backend, 'exact');
  await holder.reload();
  assert.deepEqual(holder.current!.search({ query: testQuery(3), k: 3 }).documents.map((d) => d.id), model.recommend(testQuery(3), 3).map((x) => x.item));
  // The demo page offers the text box for a text bundle.
  assert.match((await app.inject({ url: '/' })).body, /id="text-query"/);
});

test('the index path (HNSW and IVF) finds the same documents; every text file is checksummed', async () => {
  const m = openTextModel(modelDir);
  for (const index of [{ metric: 'ip', connectivity: 16, expansionAdd: 128, expansionSearch: 64 } as const, { kind: 'ivf', metric: 'ip', lists: 4, nprobe: 4 } as const]) {
    const dir = join(work, `ix-${'kind' in index ? 'ivf' : 'hnsw'}`);
    const draft = createBundle(backend, textAsArtifacts(m.encoder, m.corpus, m.meta), { index, recallQueries: 30, indexThreads: 1, source: modelDir });
    assert.ok(draft.manifest.index!.recallAt10 > 0.9, `recall@10 ${draft.manifest.index!.recallAt10}`);
    writeBundle(dir, draft);
    const b = await readBundle(dir);
    const rec = new Recommender(b, backend, 'ann');
    let same = 0;
    for (let i = 0; i < N; i++) {
      const r = rec.search({ query: testQuery(i), k: 3 });
      assert.equal(r.search, 'kind' in index ? 'ivf' : 'hnsw');
      if (r.documents[0].id === model.recommend(testQuery(i), 1)[0].item) same++;
    }
    assert.ok(same >= N - 2, `index agrees with exact on ${same}/${N}`);
  }
  const mf = JSON.parse(readFileSync(join(exactBundle, 'manifest.json'), 'utf8'));
  for (const f of ['weights/text-query.bin', 'data/text.chunk-doc.bin', 'vocab/documents.json', 'weights/item.embeddings.bin']) assert.match(mf.files[f]?.sha256 ?? '', /^[0-9a-f]{64}$/, f);
  // A tampered query tower is refused by the bundle checks, naming the file.
  const copy = join(work, 'tampered');
  spawnSync('cp', ['-rL', exactBundle, copy]);
  appendFileSync(join(copy, 'weights/text-query.bin'), Buffer.alloc(4));
  await assert.rejects(readBundle(copy), /text-query\.bin/);
  // /search on a two-tower bundle is a 400 naming the reason (not a crash).
  const two = join(work, 'two-tower');
  await makeBundle(two, 1);
  const rec = new Recommender(await readBundle(two), backend, 'exact');
  assert.throws(() => rec.search({ query: testQuery(0), k: 1 }), (e: any) => e.status === 400 && /not a text dual encoder/.test(e.message));
});

test('CLI: export --out writes a text bundle; recommend --query prints the documents; bad flags are one line', () => {
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: work, env: { ...process.env, TOWERLAB_DEBUG: '' } });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  let r = cli(['export', '--model', modelDir, '--out', 'cli-bundle', '--kind', 'ivf', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim().split('\n').at(-1)!);
  assert.equal(j.index.kind, 'ivf');
  assert.ok(j.items > N);
  r = cli(['recommend', '--model', modelDir, '--query', testQuery(7), '--k', '3', '--json']);
  assert.equal(r.code, 0, r.err);
  const rec = JSON.parse(r.out.trim().split('\n').at(-1)!);
  assert.deepEqual(rec.documents.map((d: { id: string }) => d.id), model.recommend(testQuery(7), 3).map((x) => x.item));
  r = cli(['recommend', '--model', modelDir, '--user', 'u1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^towerlab: error: .*--query <text>.*\n$/);
  r = cli(['export', '--model', modelDir, '--out', 'x', '--corpus', join(work, 'nope')]);
  assert.equal(r.code, 2);
  assert.match(r.err, /^towerlab: error: .*nope: no such corpus folder\n$/);
});

test('a transformer text tower (separate document tower) serves /search as the model ranks', async () => {
  const data = loadBeir(beir);
  const corpus = new TextCorpus(data, tok);
  const enc = new DualEncoder({ ...defaultDualEncoder, tower: 'transformer', shared: false, dim: 8, heads: 2, blocks: 1, window: 12, stride: 6, tokenizer: tok }, { lrSparse: 0.01, lrDense: 0.01 });
  const b = await bundleFromDraft(createBundle(backend, textAsArtifacts(enc, corpus), { index: null, recallQueries: 10, source: 'mem' }));
  const rec = new Recommender(b, backend, 'exact');
  const m = new TextModel(enc, corpus, backend);
  for (const i of [0, 5, 9]) {
    const got = rec.search({ query: testQuery(i), k: 4 }).documents;
    const want = m.recommend(testQuery(i), 4);
    assert.deepEqual(got.map((d) => d.id), want.map((x) => x.item));
    got.forEach((d, j) => assert.ok(Math.abs(d.score - want[j].score) < 1e-5));
  }
});
