/**
 * The HTTP API through fastify's inject (no sockets): every endpoint's answer checked against the model
 * itself (exact search, the query tower, popularity), seen-item exclusion, filters, cold-start fallback,
 * the history query, Prometheus metrics and the demo's bundle files.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { getBackend } from '../src/compute/index.ts';
import { QueryTower } from '../src/bundle/query-tower.ts';
import type { Bundle } from '../src/bundle/read.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { ModelHolder } from '../src/serve/model-holder.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { buildServer, defaultServerOptions } from '../src/serve/server.ts';
import { makeBundle, makeModelDir, tmp, ITEMS } from './helpers/serve-fixture.ts';

let app: FastifyInstance;
let bundle: Bundle;
let exactTop: (q: Float32Array, k: number, banned?: Iterable<number>) => string[];
let userVec: (u: number) => Float32Array;

before(async () => {
  const backend = await getBackend();
  const dir = join(tmp('api'), 'b');
  await makeBundle(dir, 1);
  const holder = new ModelHolder(dir, backend, 'ann');
  await holder.reload();
  bundle = holder.current!.bundle;
  app = buildServer(holder, new ServerMetrics(), { ...defaultServerOptions, demo: true });
  const ex = new ExactSearcher(backend, bundle.itemEmb, ITEMS, bundle.manifest.model.dim);
  exactTop = (q, k, banned = []) => Array.from(ex.search(q, k, null, banned).ids, (j) => bundle.itemIds[j]);
  const tower = new QueryTower(bundle.query);
  userVec = (u) => {
    const v = new Float32Array(tower.dim);
    tower.embedUser(backend, u, v);
    return v;
  };
});

const post = async (url: string, payload: unknown) => {
  const r = await app.inject({ method: 'POST', url, payload: payload as any });
  return { status: r.statusCode, body: r.json() };
};
const seenOf = (u: number) => Array.from(bundle.seen.cols.subarray(bundle.seen.offsets[u], bundle.seen.offsets[u + 1]));

test('GET /health and /model describe the served bundle', async () => {
  const h = (await app.inject({ url: '/health' })).json();
  assert.equal(h.status, 'ok');
  assert.equal(h.model.id, bundle.id);
  assert.equal(h.model.items, ITEMS);
  assert.equal(h.search, 'ann');
  const m = (await app.inject({ url: '/model' })).json();
  assert.equal(m.id, bundle.id);
  assert.deepEqual(m.itemFeatures, ['category']);
  assert.equal(m.files, undefined, 'file list not exposed');
});

test('POST /recommend {user}: the exact top-k without the seen items; ANN agrees; excludeSeen=false keeps them', async () => {
  const u = 7;
  const seen = seenOf(u);
  const want = exactTop(userVec(u), 10, seen);
  const ex = await post('/recommend', { user: 'u7', k: 10, search: 'exact' });
  assert.equal(ex.status, 200);
  assert.equal(ex.body.source, 'model');
  assert.equal(ex.body.search, 'exact');
  assert.equal(ex.body.excludedSeen, seen.length);
  assert.deepEqual(ex.body.items.map((x: any) => x.item), want);
  for (let i = 1; i < 10; i++) assert.ok(ex.body.items[i - 1].score >= ex.body.items[i].score);
  const ann = await post('/recommend', { user: 'u7', k: 10 });
  assert.equal(ann.body.search, 'hnsw');
  assert.ok(ann.body.items.filter((x: any) => want.includes(x.item)).length >= 9, 'hnsw recall');
  const seenIds = new Set(seen.map((j) => bundle.itemIds[j]));
  assert.ok(!ann.body.items.some((x: any) => seenIds.has(x.item)), 'seen items excluded');
  const all = await post('/recommend', { user: 'u7', k: 10, excludeSeen: false, search: 'exact' });
  assert.deepEqual(all.body.items.map((x: any) => x.item), exactTop(userVec(u), 10));
  const num = await post('/recommend', { user: 'u7', k: 3 });
  assert.equal(num.body.items.length, 3);
});

test('cold start: an unknown user gets the most popular items, and the response says so', async () => {
  const r = await post('/recommend', { user: 'newcomer', k: 5 });
  assert.equal(r.status, 200);
  assert.equal(r.body.source, 'popularity');
  assert.match(r.body.reason, /unknown user 'newcomer'/);
  assert.deepEqual(r.body.items.map((x: any) => x.item), ['i0', 'i1', 'i2', 'i3', 'i4'], 'fixture counts fall with the index');
  const f = await post('/recommend', { user: 'newcomer', k: 3, filter: { features: { category: ['c2'] } } });
  assert.deepEqual(f.body.items.map((x: any) => x.item), ['i1', 'i6', 'i11'], 'popularity honours filters');
});

test('{features} embeds a new user from features; {history} from items; both match the model', async () => {
  const f = await post('/recommend', { features: { segment: 's2' }, k: 5, search: 'exact' });
  assert.equal(f.status, 200);
  assert.equal(f.body.source, 'model');
  assert.equal(f.body.query, 'features');
  const e = await post('/embed', { features: { segment: 's2' } });
  assert.deepEqual(f.body.items.map((x: any) => x.item), exactTop(Float32Array.from(e.body.embedding), 5));
  const unknownVal = await post('/recommend', { features: { segment: 'zz' } });
  assert.equal(unknownVal.body.source, 'popularity');
  assert.match(unknownVal.body.warnings[0], /unknown value 'zz'/);

  const h = await post('/recommend', { history: ['i3', 'i4', 'nope'], k: 5, search: 'exact' });
  assert.equal(h.body.query, 'history');
  assert.match(h.body.warnings[0], /1 unknown item ignored \('nope'\)/);
  const d = bundle.manifest.model.dim;
  const q = new Float32Array(d);
  for (const j of [3, 4]) for (let t = 0; t < d; t++) q[t] += bundle.itemEmb[j * d + t];
  const n = Math.hypot(...q);
  for (let t = 0; t < d; t++) q[t] /= n;
  assert.deepEqual(h.body.items.map((x: any) => x.item), exactTop(q, 5, [3, 4]), 'history items themselves excluded');
  const none = await post('/recommend', { history: ['x', 'y'] });
  assert.equal(none.body.source, 'popularity');
});

test('filters: include, exclude and item features are honoured by ANN and exact search alike', async () => {
  for (const search of ['ann', 'exact']) {
    const cat = await post('/recommend', { user: 'u3', k: 20, search, filter: { features: { category: ['c1', 'c3'] } } });
    assert.equal(cat.status, 200);
    assert.equal(cat.body.items.length, 20);
    for (const it of cat.body.items) assert.ok([0, 2].includes(Number(it.item.slice(1)) % 5), `${it.item} has category c1 or c3`);
    const top = await post('/recommend', { user: 'u3', k: 5, search });
    const ex = top.body.items.slice(0, 2).map((x: any) => x.item);
    const without = await post('/recommend', { user: 'u3', k: 5, search, filter: { exclude: ex } });
    assert.ok(!without.body.items.some((x: any) => ex.includes(x.item)));
    const inc = await post('/recommend', { user: 'u3', k: 5, search, excludeSeen: false, filter: { include: ['i10', 'i20', 'i30', 'ghost'] } });
    assert.deepEqual(inc.body.items.map((x: any) => x.item).sort(), ['i10', 'i20', 'i30']);
    assert.match(inc.body.warnings[0], /filter\.include: 1 unknown item ignored/);
  }
});

test('a broad filter over-fetches from the HNSW index and keeps only allowed items', async () => {
  const backend = await getBackend();
  const r = new Recommender(bundle, backend, 'ann', 0);
  const body = { user: 'u3', k: 20, excludeSeen: true, filter: { features: { category: ['c1', 'c3'] } } };
  const ann = r.recommend(body);
  assert.equal(ann.search, 'hnsw');
  assert.equal(ann.items.length, 20);
  for (const it of ann.items) assert.ok([0, 2].includes(Number(it.item.slice(1)) % 5), it.item);
  const exact = r.recommend({ ...body, search: 'exact' as const });
  assert.equal(exact.search, 'exact');
  assert.ok(ann.items.filter((x) => exact.items.some((y) => y.item === x.item)).length >= 18);
});

test('POST /similar and /embed', async () => {
  const s = await post('/similar', { item: 'i12', k: 5, search: 'exact' });
  assert.equal(s.status, 200);
  const d = bundle.manifest.model.dim;
  assert.deepEqual(s.body.items.map((x: any) => x.item), exactTop(bundle.itemEmb.slice(12 * d, 13 * d), 5, [12]));
  assert.equal((await post('/similar', { item: 'i404404' })).status, 404);
  const e = await post('/embed', { user: 'u9' });
  assert.equal(e.body.dim, d);
  assert.deepEqual(e.body.embedding, Array.from(userVec(9)));
  assert.ok(Math.abs(Math.hypot(...e.body.embedding) - 1) < 1e-5, 'unit length');
  const it = await post('/embed', { item: 'i1' });
  assert.deepEqual(it.body.embedding, Array.from(bundle.itemEmb.subarray(d, 2 * d)));
  const unk = await post('/embed', { user: 'ghost' });
  assert.equal(unk.status, 404);
  assert.match(unk.body.message, /unknown user 'ghost'/);
});

test('GET /metrics is Prometheus text (prom-client) with request counts, latencies, answer sources, the model and process/GC/event-loop metrics', async () => {
  await post('/recommend', { user: 'nobody' });
  const r = await app.inject({ url: '/metrics' });
  assert.equal(r.statusCode, 200);
  assert.match(r.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
  const t = r.body;
  assert.match(t, /# TYPE towerlab_http_requests_total counter/);
  assert.match(t, /towerlab_http_requests_total\{route="\/recommend",status="200"\} \d+/);
  assert.match(t, /towerlab_http_request_duration_seconds_bucket\{le="\+Inf",route="\/recommend"\} \d+/);
  assert.match(t, /towerlab_answers_total\{endpoint="recommend",source="popularity",search="popularity"\} [1-9]/);
  assert.match(t, new RegExp(`towerlab_model_info\\{id="${bundle.id}",created="[^"]+"\\} 1`));
  assert.match(t, /process_resident_memory_bytes \d+/);
  // prom-client's default metrics: process CPU, event-loop lag, GC, heap.
  assert.match(t, /# TYPE process_cpu_seconds_total counter/);
  assert.match(t, /nodejs_eventloop_lag_p99_seconds [\d.e+-]+/);
  assert.match(t, /# TYPE nodejs_gc_duration_seconds histogram/);
  assert.match(t, /nodejs_heap_used_bytes \d+/);
  for (const line of t.trim().split('\n').filter((l) => l !== '')) assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? [-\d.e+]+)$/, line);
});

test('demo: the page, TF.js assets, and the bundle files by content id', async () => {
  const page = await app.inject({ url: '/' });
  assert.equal(page.statusCode, 200);
  assert.match(page.body, /tf-core\.min\.js/);
  assert.equal((await app.inject({ url: '/assets/tf-core.min.js' })).statusCode, 200);
  assert.equal((await app.inject({ url: '/assets/tf-backend-cpu.min.js' })).statusCode, 200);
  const mj = await app.inject({ url: `/bundle/${bundle.id}/model.json` });
  assert.equal(mj.statusCode, 200);
  assert.ok(mj.json().weightsManifest.length > 1);
  assert.equal((await app.inject({ url: `/bundle/${bundle.id}/weights/item.embeddings.bin` })).rawPayload.length, ITEMS * bundle.manifest.model.dim * 4);
  assert.equal((await app.inject({ url: `/bundle/old/model.json` })).statusCode, 410);
  assert.equal((await app.inject({ url: `/bundle/${bundle.id}/../../package.json` })).statusCode, 404);
});

test('a model directory can be served directly (bundled in memory)', async () => {
  const backend = await getBackend();
  const dir = join(tmp('api-model'), 'run');
  makeModelDir(join(dir, 'model'), 1);
  const holder = new ModelHolder(dir, backend, 'ann');
  await holder.reload();
  const a = buildServer(holder, new ServerMetrics(), defaultServerOptions);
  const r = await a.inject({ method: 'POST', url: '/recommend', payload: { user: 'u7', k: 10, search: 'exact' } });
  assert.deepEqual(r.json().items.map((x: any) => x.item), exactTop(userVec(7), 10, seenOf(7)), 'same answers as the exported bundle');
  assert.equal((await a.inject({ url: '/' })).statusCode, 404, 'no demo page without --demo');
});
