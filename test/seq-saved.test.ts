/**
 * Saved sequence models and their use: save → load gives identical scores (and a corrupted file is refused);
 * `towerlab eval` / `recommend` / `export` on a saved SASRec model; the GNNO sampled protocol on hand-made
 * cases with known ranks; and a served bundle of a SASRec model answering `/recommend {history}` with the
 * sequence tower (order matters, which mean pooling cannot do).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../src/compute/backend.ts';
import { getBackend } from '../src/compute/index.ts';
import { nextItemScores } from '../src/cli/seq-model.ts';
import { evaluateSeq } from '../src/seq/evaluate.ts';
import { runSeqExperiment, defaultSeqModel, type SeqExperimentResult } from '../src/seq/experiment.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { drawNegatives, evaluateSampled, sampledMetrics, sampledRank } from '../src/seq/sampled-eval.ts';
import { fullSequences, loadSeqModel, saveSeqModel, type SeqArtifacts } from '../src/seq/saved-model.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { ModelHolder } from '../src/serve/model-holder.ts';
import { buildServer, defaultServerOptions } from '../src/serve/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'towerlab-seq-saved-'));
const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const DATA = join(dir, 'chains.txt');
const MODEL = join(dir, 'model');
const N_ITEMS = 30;

/** Planted order: every user walks the ring i0 → i1 → … → i29 → i0 from a random start, 6–11 steps. */
function writeChains(): void {
  let s = 7;
  const r = () => ((s = (s * 1103515245 + 12345) % 2147483648), s / 2147483648);
  const lines: string[] = [];
  for (let u = 0; u < 300; u++) {
    const n = 6 + Math.floor(r() * 6);
    let x = Math.floor(r() * N_ITEMS);
    const items: string[] = [];
    for (let k = 0; k < n; k++, x = (x + 1) % N_ITEMS) items.push(`i${x}`);
    lines.push(`u${u} ${items.join(' ')}`);
  }
  writeFileSync(DATA, lines.join('\n') + '\n');
}

let backend: Backend;
let trained: SeqExperimentResult;
let artifacts: SeqArtifacts;

before(async () => {
  writeChains();
  backend = await getBackend();
  trained = await runSeqExperiment({
    data: { path: DATA, format: 'seq' },
    model: { ...defaultSeqModel, dim: 16, maxLen: 10, blocks: 1, heads: 1, dropout: 0.1, lr: 0.01, seed: 3 },
    objective: { kind: 'softmax', score: 'dot', recipe: parseRecipe({ temperature: 1 }) },
    train: { epochs: 12, batchSize: 32, seed: 3, evalEvery: 0, patience: 0, valMetric: 'ndcg@10', valUsers: 300, progress: 'none' },
    ks: [1, 5, 10],
    excludeHistory: false,
  });
  artifacts = {
    tower: trained.tower,
    options: { ...defaultSeqModel, dim: 16, maxLen: 10, blocks: 1, heads: 1, dropout: 0.1, lr: 0.01, seed: 3 },
    score: 'dot',
    userIds: trained.raw.userVocab.ids,
    itemIds: trained.raw.itemVocab.ids,
    sequences: fullSequences(trained.seqData),
    itemCounts: Float32Array.from(trained.seqData.itemCounts),
    meta: { data: { path: DATA, format: 'seq' }, split: { kind: 'loo' }, metrics: trained.metrics },
  };
  saveSeqModel(MODEL, artifacts);
});

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1)!);
const idx = (id: string) => artifacts.itemIds.indexOf(id);

test('the planted order is learned (a model worth saving)', () => {
  assert.ok(trained.metrics['hr@1'] > 0.5, `hr@1 ${trained.metrics['hr@1']}`);
});

test('save → load: identical weights and identical scores, full ranking and next-item', () => {
  const loaded = loadSeqModel(MODEL);
  assert.equal(loaded.options.tower, 'sasrec');
  assert.deepEqual(loaded.itemIds, artifacts.itemIds);
  const a = new Map(artifacts.tower.tensors());
  for (const [name, t] of loaded.tower.tensors()) assert.deepEqual(t, a.get(name), name);
  const before = evaluateSeq(backend, artifacts.tower, trained.seqData, 'test', { ks: [1, 5, 10], excludeHistory: false, score: 'dot' });
  const after = evaluateSeq(backend, loaded.tower, trained.seqData, 'test', { ks: [1, 5, 10], excludeHistory: false, score: 'dot' });
  assert.deepEqual(after.metrics, before.metrics);
  const h = Int32Array.from(['i3', 'i4', 'i5'], idx);
  assert.deepEqual(nextItemScores(backend, loaded, h), nextItemScores(backend, artifacts, h));
  assert.deepEqual(Array.from(loaded.sequences.cols), Array.from(artifacts.sequences.cols));
});

test('a corrupted saved model is refused with one line naming the file', () => {
  const copy = join(dir, 'corrupt');
  saveSeqModel(copy, artifacts);
  const bin = join(copy, 'tensors.bin');
  const b = readFileSync(bin);
  b[100] ^= 0xff;
  writeFileSync(bin, b);
  assert.throws(() => loadSeqModel(copy), /tensors\.bin: checksum mismatch/);
  const r = cli(['eval', '--model', copy]);
  assert.equal(r.code, 2);
  assert.match(r.err, /checksum mismatch/);
  assert.doesNotMatch(r.err, /^\s+at /m);
});

test('a saved model whose vocab.json is not an object is refused with one line naming the file', () => {
  const copy = join(dir, 'bad-vocab');
  saveSeqModel(copy, artifacts);
  writeFileSync(join(copy, 'vocab.json'), 'null');
  // The checksum catches the edit; with the checksum recomputed too, the structure check does.
  assert.throws(() => loadSeqModel(copy), (e: Error) => e.name !== 'TypeError' && /vocab\.json: checksum mismatch/.test(e.message));
  const m = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8'));
  m.checksums['vocab.json'] = createHash('sha256').update('null').digest('hex');
  writeFileSync(join(copy, 'manifest.json'), JSON.stringify(m));
  assert.throws(() => loadSeqModel(copy), (e: Error) => e.name !== 'TypeError' && /vocab\.json: expected 'users' and 'items'/.test(e.message));
});

test('towerlab eval --model on a sequence model: both protocols, stated, same numbers as at training', () => {
  const r = cli(['eval', '--model', MODEL, '--ks', '1,5,10', '--sampled', '20,5', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = lastJson(r.out);
  assert.equal(j.kind, 'sequence');
  assert.match(j.protocol, /full ranking over all 30 items, nothing excluded/);
  for (const k of ['hr@1', 'ndcg@5', 'ndcg@10']) assert.ok(Math.abs(j.metrics[k] - trained.metrics[k]) < 1e-9, k);
  assert.match(j.sampled.sampled20.protocol, /against 20 uniformly sampled items/);
  // 5 negatives: rank ≤ 6 always, and the sampled HR is at least the full-ranking HR.
  assert.equal(j.sampled.sampled5.metrics['hr@10'], 1);
  assert.ok(j.sampled.sampled20.metrics['hr@5'] >= j.metrics['hr@5']);
  assert.ok(j.metrics['hr@5'] > j.baselines.popularity['hr@5'] + 0.3);
  const ex = lastJson(cli(['eval', '--model', MODEL, '--ks', '5', '--exclude-history', '--json']).out);
  assert.match(ex.protocol, /history items excluded/);
});

test('towerlab recommend on a sequence model: the next item of a user and of an explicit history', () => {
  const u = lastJson(cli(['recommend', '--model', MODEL, '--user', 'u0', '--k', '3', '--json']).out);
  const seq = readFileSync(DATA, 'utf8').split('\n')[0].split(' ').slice(1);
  const last = Number(seq.at(-1)!.slice(1));
  assert.equal(u.items[0].item, `i${(last + 1) % N_ITEMS}`, JSON.stringify(u));
  assert.ok(!u.items.some((x: any) => seq.includes(x.item)), 'history excluded by default');
  const h = lastJson(cli(['recommend', '--model', MODEL, '--history', 'i10,i11,i12', '--k', '1', '--json']).out);
  assert.equal(h.items[0].item, 'i13');
  const bad = cli(['recommend', '--model', MODEL, '--history', 'nope', '--k', '1']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /none of the 1 items is known/);
});

test('sampled protocol: ranks and metrics on a hand-made case', () => {
  // ties count against the target
  assert.equal(sampledRank(0.5, [0.9, 0.5, 0.1, 0.2]), 3);
  assert.equal(sampledRank(1, [0.9, 0.5]), 1);
  // dim 1: user vector [1], item j scores j; targets 5 (user 0) and 2 (user 1).
  const items = Float32Array.from({ length: 10 }, (_, j) => j);
  const negs = [Int32Array.of(1, 6, 7, 3), Int32Array.of(0, 9, 8, 7)];
  const r = sampledMetrics(Int32Array.of(0, 1), Float32Array.of(1, 1), items, 1, Int32Array.of(5, 2), (u, out) => (out.set(negs[u]), 4), 4, [1, 3, 5]);
  assert.deepEqual(Array.from(r.ranks), [3, 4]); // 5 < 6, 7 → rank 3; 2 < 9, 8, 7 → rank 4
  assert.equal(r.metrics['hr@1'], 0);
  assert.equal(r.metrics['hr@3'], 0.5);
  assert.equal(r.metrics['hr@5'], 1);
  assert.ok(Math.abs(r.metrics['ndcg@3'] - 0.5 / Math.log2(4)) < 1e-12);
  assert.ok(Math.abs(r.metrics['ndcg@5'] - (1 / Math.log2(4) + 1 / Math.log2(5)) / 2) < 1e-12);
});

test('sampled negatives: distinct, never an interacted item, reproducible, capped by what is left', () => {
  const interacted = new Set([0, 1, 2, 3, 4]);
  const out = new Int32Array(20);
  const c = drawNegatives(7, interacted, 30, 20, 0, out);
  assert.equal(c, 20);
  const got = Array.from(out.subarray(0, c));
  assert.equal(new Set(got).size, 20);
  assert.ok(got.every((j) => j >= 5 && j < 30));
  const again = new Int32Array(20);
  drawNegatives(7, interacted, 30, 20, 0, again);
  assert.deepEqual(again, out);
  const small = new Int32Array(100);
  assert.equal(drawNegatives(7, interacted, 30, 100, 0, small), 25);
  assert.deepEqual(Array.from(small.subarray(0, 25)).sort((a, b) => a - b), Array.from({ length: 25 }, (_, k) => k + 5));
  // Asking for more negatives than there are non-interacted items takes them all: the sampled protocol then
  // is the full ranking with the user's history excluded (up to score ties).
  const all = evaluateSampled(backend, trained.tower, trained.seqData, 'test', { negatives: 1000, ks: [1, 5], score: 'dot' });
  const full = evaluateSeq(backend, trained.tower, trained.seqData, 'test', { ks: [1, 5], excludeHistory: true, score: 'dot' });
  assert.ok(Math.abs(all.metrics['hr@5'] - full.metrics['hr@5']) < 0.02, `${all.metrics['hr@5']} vs ${full.metrics['hr@5']}`);
});

test('sampled protocol: a given user without a target is left out, not counted as a hit', () => {
  const testItem = Int32Array.from(trained.seqData.testItem);
  testItem[0] = -1;
  const data = { ...trained.seqData, testItem };
  const none = evaluateSampled(backend, trained.tower, data, 'test', { negatives: 5, ks: [1], score: 'dot', users: Int32Array.of(0) });
  assert.equal(none.users, 0);
  assert.equal(none.metrics['hr@1'], 0);
  const two = evaluateSampled(backend, trained.tower, data, 'test', { negatives: 5, ks: [1], score: 'dot', users: Int32Array.of(0, 1) });
  const one = evaluateSampled(backend, trained.tower, data, 'test', { negatives: 5, ks: [1], score: 'dot', users: Int32Array.of(1) });
  assert.equal(two.users, 1);
  assert.deepEqual(two.metrics, one.metrics);
});

test('export + serve: POST /recommend {history} is answered by the SASRec tower (order matters)', async () => {
  const bundleDir = join(dir, 'bundle');
  const r = cli(['export', '--model', MODEL, '--out', bundleDir, '--json']);
  assert.equal(r.code, 0, r.err);
  const manifest = JSON.parse(readFileSync(join(bundleDir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.model.historyQuery, 'sequence-tower');
  assert.equal(manifest.model.sequence.tower, 'sasrec');
  const holder = new ModelHolder(bundleDir, backend, 'exact');
  await holder.reload();
  const app = buildServer(holder, new ServerMetrics(), defaultServerOptions);
  const ask = async (history: string[]) => {
    const res = await app.inject({ method: 'POST', url: '/recommend', payload: { history, k: 5 } });
    assert.equal(res.statusCode, 200, res.body);
    return res.json();
  };
  const fwd = await ask(['i20', 'i21', 'i22', 'i23']);
  const rev = await ask(['i23', 'i22', 'i21', 'i20']);
  assert.equal(fwd.source, 'model');
  assert.equal(fwd.items[0].item, 'i24');
  assert.notDeepEqual(fwd.items.map((x: any) => x.item), rev.items.map((x: any) => x.item), 'a mean-pooled query would not depend on the order');
  // Exactly the saved model's next-item ranking (history excluded by default).
  const loaded = loadSeqModel(MODEL);
  const s = nextItemScores(backend, loaded, Int32Array.from(['i20', 'i21', 'i22', 'i23'], idx));
  for (const j of [20, 21, 22, 23].map((x) => idx(`i${x}`))) s[j] = -Infinity;
  const want = Array.from(s.keys()).sort((a, b) => s[b] - s[a]).slice(0, 5).map((j) => loaded.itemIds[j]);
  assert.deepEqual(fwd.items.map((x: any) => x.item), want);
  // A known user is answered from their stored sequence.
  const u0 = (await app.inject({ method: 'POST', url: '/recommend', payload: { user: 'u0', k: 1 } })).json();
  const seq = readFileSync(DATA, 'utf8').split('\n')[0].split(' ').slice(1);
  assert.equal(u0.items[0].item, `i${(Number(seq.at(-1)!.slice(1)) + 1) % N_ITEMS}`);
  await app.close();
});
