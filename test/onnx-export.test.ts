/**
 * ONNX export of the query towers, checked by running the exported graphs with onnxruntime-node and comparing
 * with Towerlab's own encoders (max abs diff < 1e-5) over several batches, unknown/padding ids and varying
 * lengths: the id + feature user tower, SASRec and mean pooling (history queries as the server answers them),
 * the text bag-of-embeddings tower. Tiny random towers are built here (with non-trivial layer-norm and bias
 * parameters so no term is a no-op); one model of each kind is trained for 1 epoch through the CLI and
 * exported with `towerlab export --onnx`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { QueryTower } from '../src/bundle/query-tower.ts';
import { readBundle } from '../src/bundle/read.ts';
import { SeqHistoryQuery } from '../src/bundle/seq.ts';
import { getBackend } from '../src/compute/index.ts';
import { loadModel, type ModelArtifacts } from '../src/model/saved-model.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { queryTowerWeights, seqOnnx, textOnnx, twoTowerOnnx, type OnnxExport } from '../src/onnx/export.ts';
import { buildTower, defaultSeqModel } from '../src/seq/experiment.ts';
import { loadSeqModel } from '../src/seq/saved-model.ts';
import type { SasRecTower } from '../src/seq/sasrec.ts';
import type { SeqTower } from '../src/seq/tower.ts';
import { DualEncoder, type DualEncoderConfig } from '../src/text/dual-encoder.ts';
import { HashedTokenizer } from '../src/text/tokenize.ts';
import { Rng } from '../src/util/rng.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';

const TOL = 1e-5;
const dir = mkdtempSync(join(tmpdir(), 'towerlab-onnx-'));
const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const i64 = (vals: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(vals, (v) => BigInt(v)), dims);

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes);
}

async function embed(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const r = await s.run(feeds);
  return { data: r.embedding.data as Float32Array, dims: r.embedding.dims };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Rows of ids padded with −1 to a common width (at least 1); `left` pads at the start. */
function padded(rows: number[][], left: (r: number) => boolean): { vals: number[]; dims: number[] } {
  const W = Math.max(1, ...rows.map((r) => r.length));
  const vals: number[] = [];
  rows.forEach((row, r) => {
    const pad = Array(W - row.length).fill(-1);
    vals.push(...(left(r) ? [...pad, ...row] : [...row, ...pad]));
  });
  return { vals, dims: [rows.length, W] };
}

function jitter(a: Float32Array, rng: Rng, scale: number): void {
  for (let i = 0; i < a.length; i++) a[i] += rng.normal() * scale;
}

// ---------------------------------------------------------------- id + feature tower

function tinyTwoTower(): ModelArtifacts {
  const V = 7;
  const rng = new Rng(11);
  const seg = Int32Array.from({ length: V }, () => rng.int(3));
  const age = Int32Array.from({ length: V }, () => rng.int(4));
  const model = new TwoTowerModel(
    {
      user: { vocabSize: V, idDim: 4, features: [{ name: 'seg', cardinality: 3, dim: 3 }, { name: 'age', cardinality: 4, dim: 2 }], mlp: [10, 6] },
      item: { vocabSize: 5, idDim: 6, features: [], mlp: [] },
      sparseOptimizer: 'adagrad', sparseLr: 0.1, denseLr: 0.01, seed: 5,
    },
    [seg, age],
    [],
  );
  model.init();
  for (const l of model.user.layers) jitter(l.b, rng, 0.3);
  return {
    model,
    userIds: Array.from({ length: V }, (_, u) => `u${u}`),
    itemIds: Array.from({ length: 5 }, (_, i) => `i${i}`),
    userFeatures: [{ name: 'seg', vocab: ['', 'a', 'b'], values: seg }, { name: 'age', vocab: ['', 'x', 'y', 'z'], values: age }],
    itemFeatures: [],
    itemCounts: new Float32Array(5),
    seen: { rows: V, offsets: new Int32Array(V + 1), cols: new Int32Array(0) },
    meta: {},
  };
}

/** Towerlab's embedding of user rows: known users through Tower.embed, unknown ones through QueryTower.embedFeatures. */
async function referenceUsers(a: ModelArtifacts, users: number[], feats: number[][]): Promise<Float32Array> {
  const backend = await getBackend();
  const t = a.model.user;
  const D = t.outDim;
  const out = new Float32Array(users.length * D);
  const qt = new QueryTower(queryTowerWeights(a));
  const saved = t.featureValues.map((v) => v.slice());
  users.forEach((u, r) => {
    const row = out.subarray(r * D, (r + 1) * D);
    const known = u >= 0 && u < t.config.vocabSize;
    const vals = t.config.features.map((f, k) => {
      const v = feats[k][r];
      const x = v === -1 ? (known ? saved[k][u] : 0) : v;
      return x >= 0 && x < f.cardinality ? x : 0;
    });
    if (known) {
      // A known user with given feature values: the tower with those values stored for the user.
      vals.forEach((v, k) => (t.featureValues[k][u] = v));
      t.embed(backend, Int32Array.of(u), row);
      saved.forEach((s, k) => t.featureValues[k].set(s));
    } else qt.embedFeatures(backend, vals, row);
  });
  return out;
}

async function checkUsers(e: OnnxExport, a: ModelArtifacts, users: number[], feats: number[][]): Promise<number> {
  const s = await session(e.onnx);
  const feeds: Record<string, ort.Tensor> = { user_index: i64(users, [users.length]) };
  feats.forEach((f, k) => (feeds[`feature_${k}`] = i64(f, [users.length])));
  const got = await embed(s, feeds);
  assert.deepEqual(got.dims, [users.length, a.model.user.outDim]);
  return maxAbsDiff(got.data, await referenceUsers(a, users, feats));
}

test('id + feature tower: ONNX = Tower.embed for known users, = QueryTower.embedFeatures for unknown ones', async (t) => {
  const a = tinyTwoTower();
  const e = twoTowerOnnx(a);
  assert.deepEqual(e.spec.inputs.map((i) => i.name), ['user_index', 'feature_0', 'feature_1']);
  const s = await session(e.onnx);
  assert.deepEqual(s.inputNames, ['user_index', 'feature_0', 'feature_1']);
  assert.deepEqual(s.outputNames, ['embedding']);
  // Batch 1: every known user with stored features.
  const all = [0, 1, 2, 3, 4, 5, 6];
  let d = await checkUsers(e, a, all, [all.map(() => -1), all.map(() => -1)]);
  t.diagnostic(`known users: max abs diff ${d}`);
  assert.ok(d < TOL, `known users: max abs diff ${d}`);
  // Batch 2: unknown users (−1, past the end) by features, incl. out-of-range and missing values; a known
  // user with overridden features.
  d = await checkUsers(e, a, [-1, 7, 100, 3, -5], [[1, 2, 0, 2, 9], [3, -1, 7, 0, 1]]);
  t.diagnostic(`unknown users / overrides: max abs diff ${d}`);
  assert.ok(d < TOL, `unknown users / overrides: max abs diff ${d}`);
  // Batch 3: a single row.
  d = await checkUsers(e, a, [5], [[-1], [2]]);
  t.diagnostic(`one row: max abs diff ${d}`);
  assert.ok(d < TOL, `one row: max abs diff ${d}`);
  // The unknown-user path is not the known-user path (guards against Where picking the wrong branch).
  const unk = await referenceUsers(a, [-1], [[1], [1]]);
  const kn = await referenceUsers(a, [0], [[1], [1]]);
  assert.ok(maxAbsDiff(unk, kn) > 1e-3);
});

for (const mlp of [[8, 5], []]) {
  test(`dense user features (mlp [${mlp}]): ONNX dense_<k> inputs = the TS tower; NaN elements take the stored values`, async (t) => {
    const V = 6;
    const rng = new Rng(21);
    const seg = Int32Array.from({ length: V }, () => rng.int(3));
    const taste = Float32Array.from({ length: V * 4 }, () => rng.normal());
    const age = Float32Array.from({ length: V }, () => rng.normal());
    const dense = [{ name: 'taste', width: 4, dim: 3 }, { name: 'age', width: 1, dim: 2 }];
    const model = new TwoTowerModel(
      {
        user: { vocabSize: V, idDim: 4, features: [{ name: 'seg', cardinality: 3, dim: 2 }], dense, mlp },
        item: { vocabSize: 3, idDim: mlp.length ? 4 : 11, features: [], mlp },
        sparseOptimizer: 'adagrad', sparseLr: 0.1, denseLr: 0.01, seed: 5,
      },
      [seg], [], [taste, age], [],
    );
    model.init();
    for (const p of model.user.projections) jitter(p.b, rng, 0.3);
    const a: ModelArtifacts = { ...tinyTwoTower(), model, userIds: Array.from({ length: V }, (_, u) => `u${u}`), userFeatures: [{ name: 'seg', vocab: ['', 'a', 'b'], values: seg }], seen: { rows: V, offsets: new Int32Array(V + 1), cols: new Int32Array(0) } };
    const e = twoTowerOnnx(a);
    assert.deepEqual(e.spec.inputs.map((i) => [i.name, i.dtype, i.shape]), [['user_index', 'int64', ['batch']], ['feature_0', 'int64', ['batch']], ['dense_0', 'float32', ['batch', 4]], ['dense_1', 'float32', ['batch', 1]]]);
    assert.deepEqual(e.spec.dense, [{ input: 'dense_0', name: 'taste', width: 4 }, { input: 'dense_1', name: 'age', width: 1 }]);
    const s = await session(e.onnx);
    const backend = await getBackend();
    const D = model.user.outDim;
    // Rows: known users with stored values (all NaN), a known user with a new vector and one NaN element, unknown users.
    const users = [0, 1, 2, 3, 4, 5, 2, -1, 9];
    const given = users.map((u, r) => (r < 6 ? [NaN, NaN, NaN, NaN] : r === 6 ? [0.5, NaN, -1, 2] : [0.3, -0.2, 1, 0]));
    const ages = users.map((u, r) => (r < 6 ? NaN : r === 6 ? 1.5 : -0.7));
    const got = await s.run({
      user_index: i64(users, [users.length]),
      feature_0: i64(users.map(() => -1), [users.length]),
      dense_0: new ort.Tensor('float32', Float32Array.from(given.flat()), [users.length, 4]),
      dense_1: new ort.Tensor('float32', Float32Array.from(ages), [users.length, 1]),
    });
    const out = got.embedding.data as Float32Array;
    const want = new Float32Array(users.length * D);
    const qt = new QueryTower(queryTowerWeights(a));
    users.forEach((u, r) => {
      const row = want.subarray(r * D, (r + 1) * D);
      if (u >= 0 && u < V) {
        const vec = Float32Array.from(given[r], (x, j) => (Number.isNaN(x) ? taste[u * 4 + j] : x));
        const ag = Float32Array.of(Number.isNaN(ages[r]) ? age[u] : ages[r]);
        model.user.embedRows(backend, Int32Array.of(u), { categorical: [Int32Array.of(seg[u])], dense: [vec, ag] }, row);
      } else qt.embedFeatures(backend, [0], row, [Float32Array.from(given[r]), Float32Array.of(ages[r])]);
    });
    const d = maxAbsDiff(out, want);
    t.diagnostic(`max abs diff ${d}`);
    assert.ok(d < TOL, `max abs diff ${d}`);
    // The dense inputs are not ignored: another age for user 0 moves its embedding.
    const moved = await s.run({ user_index: i64([0], [1]), feature_0: i64([-1], [1]), dense_0: new ort.Tensor('float32', new Float32Array(4).fill(NaN), [1, 4]), dense_1: new ort.Tensor('float32', Float32Array.of(age[0] + 1), [1, 1]) });
    assert.ok(maxAbsDiff((moved.embedding.data as Float32Array), out.subarray(0, D)) > 1e-3);
  });
}

test('id tower trained 1 epoch: export --out --onnx puts query-tower.onnx + .json in a bundle that still reads', async (t) => {
  let r = cli(['train', '--data', 'synthetic:users=300,items=200,clusters=5,zipf=1,seed=3', '--epochs', '1', '--batch-size', '256', '--no-progress', '--out', 'run']);
  assert.equal(r.code, 0, r.err);
  r = cli(['export', '--model', 'run', '--out', 'bundle', '--onnx', '--no-index']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /onnx: user-id-features query tower/);
  const spec = JSON.parse(readFileSync(join(dir, 'bundle', 'query-tower.json'), 'utf8'));
  const bytes = readFileSync(join(dir, 'bundle', 'query-tower.onnx'));
  const a = loadModel(join(dir, 'run', 'model'));
  assert.deepEqual(spec.vocabularies.users, a.userIds);
  assert.equal(spec.features.length, a.userFeatures.length);
  const bundle = await readBundle(join(dir, 'bundle'));
  assert.ok(bundle.manifest.files['query-tower.onnx'], 'the bundle lists (and so checksums) the ONNX file');
  const e: OnnxExport = { onnx: bytes, spec };
  for (const users of [Array.from({ length: 300 }, (_, u) => u), [0, -1, 299, 300]]) {
    const feats = spec.features.map(() => users.map((u) => (u >= 0 && u < 300 ? -1 : 1)));
    const d = await checkUsers(e, a, users, feats);
    t.diagnostic(`trained model: max abs diff ${d}`);
  assert.ok(d < TOL, `trained model: max abs diff ${d}`);
  }
});

// ---------------------------------------------------------------- sequence towers

function randomHistories(rng: Rng, n: number, maxLen: number, numItems: number): number[][] {
  return Array.from({ length: n }, () =>
    Array.from({ length: rng.int(maxLen + 1) }, () => {
      const x = rng.next();
      return x < 0.1 ? -1 : x < 0.2 ? numItems + rng.int(5) : rng.int(numItems);
    }),
  );
}

async function checkSeq(e: OnnxExport, tower: SeqTower, numItems: number, batches: number[][][]): Promise<number> {
  const backend = await getBackend();
  const s = await session(e.onnx);
  const q = new SeqHistoryQuery(tower, backend);
  const D = tower.dim;
  let worst = 0;
  for (const [b, rows] of batches.entries()) {
    const { vals, dims } = padded(rows, (r) => (r + b) % 2 === 0);
    const got = await embed(s, { item_ids: i64(vals, dims) });
    assert.deepEqual(got.dims, [rows.length, D]);
    const want = new Float32Array(rows.length * D);
    rows.forEach((row, r) => {
      // The server's history query: unknown items skipped, the rest through the tower.
      const known = row.filter((j) => j >= 0 && j < numItems);
      if (known.length) q.embed(known, want.subarray(r * D, (r + 1) * D));
    });
    worst = Math.max(worst, maxAbsDiff(got.data, want));
  }
  return worst;
}

for (const heads of [1, 2]) {
  test(`SASRec (${heads} head${heads > 1 ? 's' : ''}, 2 blocks): ONNX = the server's history query, padding/unknown ids skipped, histories longer than maxLen`, async (t) => {
    const numItems = 12;
    const tower = buildTower({ ...defaultSeqModel, tower: 'sasrec', dim: 8, maxLen: 5, blocks: 2, heads, dropout: 0.3, seed: 4 + heads }, numItems, true) as SasRecTower;
    const rng = new Rng(21);
    // Layer norms and biases away from their (1, 0) start, so each term of the graph matters.
    for (const p of tower.denseParams()) jitter(p.p, rng, 0.2);
    for (const blk of tower.blocks) for (const [, l] of blk.layers()) jitter(l.b, rng, 0.2);
    const e = seqOnnx({ tower, options: { ...defaultSeqModel }, score: 'dot', userIds: [], itemIds: Array.from({ length: numItems }, (_, i) => `i${i}`), sequences: { rows: 0, offsets: Int32Array.of(0), cols: new Int32Array(0) }, itemCounts: new Float32Array(numItems), meta: {} });
    assert.equal(e.spec.tower, 'sasrec');
    const batches = [randomHistories(rng, 9, 9, numItems), randomHistories(rng, 4, 3, numItems), [[3]], [[], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], randomHistories(rng, 6, 14, numItems)];
    const d = await checkSeq(e, tower, numItems, batches);
    t.diagnostic(`max abs diff ${d}`);
  assert.ok(d < TOL, `max abs diff ${d}`);
    // Order matters (the graph is not a bag): reversing a history changes the query.
    const s = await session(e.onnx);
    const fwd = await embed(s, { item_ids: i64([1, 2, 3, 4], [1, 4]) });
    const rev = await embed(s, { item_ids: i64([4, 3, 2, 1], [1, 4]) });
    assert.ok(maxAbsDiff(fwd.data, rev.data) > 1e-3);
  });
}

test('mean-pool sequence tower: ONNX = the server history query', async (t) => {
  const numItems = 10;
  const tower = buildTower({ ...defaultSeqModel, tower: 'meanpool', dim: 6, maxLen: 4, seed: 9 }, numItems, true);
  const rng = new Rng(3);
  jitter((tower as any).proj.b, rng, 0.3);
  const e = seqOnnx({ tower, options: { ...defaultSeqModel, tower: 'meanpool' }, score: 'dot', userIds: [], itemIds: Array.from({ length: numItems }, (_, i) => `i${i}`), sequences: { rows: 0, offsets: Int32Array.of(0), cols: new Int32Array(0) }, itemCounts: new Float32Array(numItems), meta: {} });
  const d = await checkSeq(e, tower, numItems, [randomHistories(rng, 8, 9, numItems), [[], [2]], randomHistories(rng, 3, 4, numItems)]);
  t.diagnostic(`max abs diff ${d}`);
  assert.ok(d < TOL, `max abs diff ${d}`);
});

test('SASRec trained 1 epoch: export --onnx FILE (no bundle) matches the saved model', async (t) => {
  let s = 7;
  const r01 = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648);
  const lines: string[] = [];
  for (let u = 0; u < 120; u++) {
    let x = Math.floor(r01() * 20);
    const items: string[] = [];
    for (let k = 0, n = 5 + Math.floor(r01() * 6); k < n; k++, x = (x + 1) % 20) items.push(`i${x}`);
    lines.push(`u${u} ${items.join(' ')}`);
  }
  writeFileSync(join(dir, 'chains.txt'), lines.join('\n') + '\n');
  let r = cli(['seq', '--data', 'chains.txt', '--format', 'seq', '--epochs', '1', '--dim', '8', '--max-len', '6', '--blocks', '1', '--heads', '2', '--batch-size', '32', '--eval-every', '0', '--no-progress', '--out', 'seqmodel']);
  assert.equal(r.code, 0, r.err);
  r = cli(['export', '--model', 'seqmodel', '--onnx', 'seq.onnx', '--json']);
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(dir, 'seq.json')));
  const a = loadSeqModel(join(dir, 'seqmodel'));
  const spec = JSON.parse(readFileSync(join(dir, 'seq.json'), 'utf8'));
  assert.deepEqual(spec.vocabularies.items, a.itemIds);
  assert.equal(spec.maxLen, 6);
  const e: OnnxExport = { onnx: readFileSync(join(dir, 'seq.onnx')), spec };
  const rng = new Rng(8);
  const d = await checkSeq(e, a.tower, a.itemIds.length, [randomHistories(rng, 16, 10, a.itemIds.length), randomHistories(rng, 5, 3, a.itemIds.length)]);
  t.diagnostic(`max abs diff ${d}`);
  assert.ok(d < TOL, `max abs diff ${d}`);
});

// ---------------------------------------------------------------- text bag of embeddings

const textConfig = (over: Partial<DualEncoderConfig>): DualEncoderConfig => ({
  tower: 'boe', shared: true, dim: 8, proj: 0, pooling: 'mean', heads: 1, blocks: 1, window: 20, stride: 10, queryMaxLen: 16,
  tokenizer: { buckets: 50, bigrams: true, charNgrams: [3], stopwords: true, stem: true }, seed: 3, ...over,
});

async function checkText(e: OnnxExport, enc: DualEncoder, batches: number[][][]): Promise<number> {
  const backend = await getBackend();
  const s = await session(e.onnx);
  const D = enc.qTower.outDim;
  let worst = 0;
  for (const [b, rows] of batches.entries()) {
    const { vals, dims } = padded(rows, (r) => (r + b) % 3 === 0);
    const got = await embed(s, { token_ids: i64(vals, dims) });
    assert.deepEqual(got.dims, [rows.length, D]);
    const want = enc.encode(backend, enc.qTower, rows.map((r) => Int32Array.from(r)));
    worst = Math.max(worst, maxAbsDiff(got.data, want));
  }
  return worst;
}

for (const [pooling, proj] of [['mean', 0], ['sqrt', 6]] as const) {
  test(`text BoE tower (${pooling} pooling, ${proj ? 'dense layer' : 'no dense layer'}): ONNX = DualEncoder.encode`, async (t) => {
    const enc = new DualEncoder(textConfig({ pooling, proj, shared: proj === 0 }), { lrSparse: 0.01, lrDense: 0.01 });
    const rng = new Rng(12);
    const tower = enc.qTower as any;
    if (tower.dense) jitter(tower.dense.b, rng, 0.3);
    const e = textOnnx(enc);
    const bags = (n: number, len: number) => Array.from({ length: n }, () => Array.from({ length: rng.int(len + 1) }, () => rng.int(50)));
    const d = await checkText(e, enc, [bags(7, 12), [[], [4], [4, 4, 4]], bags(3, 30)]);
    t.diagnostic(`max abs diff ${d}`);
  assert.ok(d < TOL, `max abs diff ${d}`);
  });
}

test('text BoE trained 1 epoch: export --onnx FILE; the JSON carries the tokenizer, tokenised queries match', async (t) => {
  const beir = synonymSet(20, 4);
  let r = cli(['text', '--beir', beir, '--epochs', '1', '--dim', '16', '--buckets', '4096', '--out', 'textmodel', '--no-progress']);
  assert.equal(r.code, 0, r.err);
  // A text model exports a serving bundle (test/text-bundle.test.ts) that carries the ONNX query tower with --onnx;
  // tables are refused with one line; --onnx FILE alone works.
  r = cli(['export', '--model', 'textmodel', '--out', 'tb', '--onnx', '--no-index']);
  assert.equal(r.code, 0, r.err);
  assert.ok(existsSync(join(dir, 'tb', 'query-tower.onnx')));
  r = cli(['export', '--model', 'textmodel', '--embeddings', 'e.parquet']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^towerlab: error: .*text dual encoder exports a serving bundle.*\n$/);
  r = cli(['export', '--model', 'textmodel', '--onnx', 'text.onnx']);
  assert.equal(r.code, 0, r.err);
  const spec = JSON.parse(readFileSync(join(dir, 'text.json'), 'utf8'));
  const enc = DualEncoder.load(join(dir, 'textmodel'));
  assert.equal(spec.tokenizer.buckets, 4096);
  assert.equal(spec.tokenizer.queryMaxLen, enc.config.queryMaxLen);
  const tok = new HashedTokenizer(enc.config.tokenizer);
  const queries = ['syn3 fillerab fillerc', 'What are the filters of the cats?', '', 'Ünïcode wörds 42'];
  const rows = queries.map((q) => Array.from(tok.featuresOfWords(tok.words(q), 0, Math.min(tok.words(q).length, spec.tokenizer.queryMaxLen))));
  const d = await checkText({ onnx: readFileSync(join(dir, 'text.onnx')), spec }, enc, [rows]);
  t.diagnostic(`max abs diff ${d}`);
  assert.ok(d < TOL, `max abs diff ${d}`);
});

test('export --onnx: bad combinations are one line, exit 2', () => {
  const r = cli(['export', '--model', 'run']);
  assert.equal(r.code, 2);
  assert.match(r.err, /give --out <dir>.*--onnx/);
  const r2 = cli(['export', '--model', 'run', '--onnx']);
  assert.equal(r2.code, 2);
  assert.match(r2.err, /--onnx: give a file/);
});

test("docs/onnx.md's Python tokenizer gives the TypeScript tokenizer's ids", (t) => {
  const py = spawnSync('python3', ['--version'], { encoding: 'utf8' });
  if (py.status !== 0) {
    console.log('# skipping: python3 not found (the Python tokenizer of docs/onnx.md is checked only where it is)');
    t.skip('python3 not found');
    return;
  }
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'onnx.md'), 'utf8');
  const block = doc.split('```python\n').find((b) => b.startsWith('# towerlab_tokenizer.py'));
  assert.ok(block, 'docs/onnx.md has the towerlab_tokenizer.py block');
  const code = block.slice(0, block.indexOf('```'));
  const enc = new DualEncoder(textConfig({ tokenizer: { buckets: 1 << 17, bigrams: true, charNgrams: [3, 4], stopwords: true, stem: true }, queryMaxLen: 12 }), { lrSparse: 0.01, lrDense: 0.01 });
  const spec = textOnnx(enc).spec;
  const texts = [
    'What are the effects of the cities on boxes, dogs, buses and glasses?',
    'Ünïcode naïve CAFÉ Αθήνα 東京 snake_case x2 3.14 — the end',
    '',
    'studies flies agrees heroes the a an of is',
    'one two three four five six seven eight nine ten eleven twelve thirteen fourteen',
  ];
  const run = spawnSync('python3', ['-c', `${code}\nimport json, sys\nd = json.load(sys.stdin)\nprint(json.dumps([features(x, d["tk"]) for x in d["texts"]]))`], { input: JSON.stringify({ tk: spec.tokenizer, texts }), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const got = JSON.parse(run.stdout);
  const tok = new HashedTokenizer(enc.config.tokenizer);
  texts.forEach((x, i) => {
    const w = tok.words(x);
    assert.deepEqual(got[i], Array.from(tok.featuresOfWords(w, 0, Math.min(w.length, enc.config.queryMaxLen))), x);
  });
});
