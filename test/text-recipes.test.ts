/**
 * Every recipe module on the text encoders (bag of embeddings, transformer), through the one contrastive step
 * (src/train/contrastive-step.ts) and the text pair: each module changes the step's loss against the plain
 * in-batch recipe on the same batch and weights, and — for the modules without random draws or step-to-step
 * state (masks, logQ, same-tower, symmetric, false-negative masking, debiased loss, BM25-mined columns) — the
 * step's loss matches the float64 reference of test/helpers/step64.ts. For BoE the reference embeddings are
 * computed here from the raw hashed table (Σ rows / √n, L2-normalised); for the transformer they are the
 * tower's own outputs (its forward/backward is checked against finite differences in text-towers.test.ts), so
 * there the check covers the composition: columns, masks, logQ, same-tower block, both directions.
 * Also: the batch's planted collisions (one document positive of two queries, one query with two positives)
 * are masked as the recipe says; the default text recipe file equals the built-in one; a checkpointed run
 * resumed midway ends with the same weights as an uninterrupted one (queue + momentum state included); the
 * batch samplers run on text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../src/compute/backend.ts';
import { createJsBackend } from '../src/compute/js.ts';
import { parseRecipe, type Recipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { loadBeir, type Qrels } from '../src/text/beir.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { DualEncoder } from '../src/text/dual-encoder.ts';
import { defaultDualEncoder } from '../src/text/experiment.ts';
import { TextEncoderPair } from '../src/text/text-pair.ts';
import { DEFAULT_TEXT_RECIPE_JSON, defaultTextTrain, textRecipe, trainText } from '../src/text/train.ts';
import { TextTrainingSet } from '../src/text/training-set.ts';
import { ContrastiveStep } from '../src/train/contrastive-step.ts';
import { Rng } from '../src/util/rng.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';
import { stepLoss64, trainFrequencyCount, type Col64, type StepRecipe64, type Vec } from './helpers/step64.ts';

const tok = { buckets: 256, bigrams: false, charNgrams: [], stopwords: true, stem: true };
const corpus = new TextCorpus(loadBeir(synonymSet(12, 5)), tok);
// Planted collisions: document 0 is the positive of queries 0 and 2; query 0 has a second positive, document 3.
const QRELS: Qrels = {
  query: Int32Array.of(0, 2, 0, 4, 6, 8, 10, 12),
  doc: Int32Array.of(0, 0, 3, 4, 5, 6, 7, 8),
  grade: new Int32Array(8).fill(1),
};
const ROWS = [0, 1, 2, 3, 4, 5, 6, 7];
const B = ROWS.length;

type Kind = 'boe' | 'transformer';

function setup(b: Backend, tower: Kind, recipeJson: object, seed = 2) {
  const cfg = { ...defaultDualEncoder, tower, shared: true, dim: 8, proj: 0, pooling: 'sqrt' as const, heads: 2, blocks: 1, window: 12, stride: 8, queryMaxLen: 12, tokenizer: tok, seed };
  const enc = new DualEncoder(cfg, { lrSparse: 0.05, lrDense: 0.01 });
  const pair = new TextEncoderPair(enc, corpus);
  const set = new TextTrainingSet(pair.docs, QRELS);
  const recipe = parseRecipe({ temperature: 0.5, ...recipeJson });
  const sources = buildSources(recipe, { ...set.sourceContext(), dim: pair.dim, batchSize: B });
  return { pair, set, recipe, step: new ContrastiveStep(b, pair, recipe, sources) };
}

interface Captured {
  loss: number;
  q: Float64Array[];
  c: Float64Array[];
  ids: Int32Array;
  inputs: Int32Array[];
  table: Float32Array;
}

/** `warm` steps, then one captured step (same batch, seeded draws). */
function runCase(b: Backend, tower: Kind, recipeJson: object, warm = 0): Captured & { recipe: Recipe; set: TextTrainingSet } {
  const { pair, set, recipe, step } = setup(b, tower, recipeJson);
  for (let k = 0; k < warm; k++) step.run(set.batch(ROWS), new Rng(100 + k));
  const table = (pair.enc.qTower as unknown as { table: { data: Float32Array } }).table.data.slice();
  let cap: Omit<Captured, 'loss' | 'table'> | null = null;
  const orig = pair.forward.bind(pair);
  pair.forward = (bk, batch, ids, rng) => {
    const out = orig(bk, batch, ids, rng);
    const d = pair.dim;
    const rows = (a: Float32Array, n: number) => Array.from({ length: n }, (_, r) => Float64Array.from(a.subarray(r * d, (r + 1) * d)));
    cap = { q: rows(out.q, batch.rows), c: rows(out.c, ids.length), ids: ids.slice(), inputs: pair.lastColumnInputs.slice() };
    return out;
  };
  const { loss } = step.run(set.batch(ROWS), new Rng(7));
  return { ...cap!, loss, table, recipe, set };
}

/** BoE embedding from first principles: Σ E[id] / √n, L2-normalised (float64). */
function boe64(table: Float32Array, d: number, ids: Int32Array): Vec {
  const p = new Float64Array(d);
  for (const id of ids) for (let j = 0; j < d; j++) p[j] += table[id * d + j];
  const z = Math.sqrt(Math.max(1, ids.length));
  let n = 0;
  for (let j = 0; j < d; j++) n += (p[j] / z) ** 2;
  n = Math.sqrt(n);
  return p.map((v) => v / z / n);
}

function reference(tower: Kind, cap: ReturnType<typeof runCase>): number {
  const r = cap.recipe;
  const d = 8;
  const batch = cap.set.batch(ROWS);
  const q = tower === 'boe' ? batch.input.queries.map((x) => boe64(cap.table, d, x)) : cap.q;
  const emb = (k: number) => (tower === 'boe' ? boe64(cap.table, d, cap.inputs[k]) : cap.c[k]);
  const mined = r.sources.some((s) => s.type === 'mined');
  const logq = (j: number, isMined: boolean) => (!r.corrections.logQ || isMined ? 0 : Math.log(trainFrequencyCount(cap.set.items, cap.set.numItems, j, B)));
  const cols: Col64[] = Array.from(cap.ids, (j, k) => ({ emb: emb(k), item: j, user: k < B ? batch.users[k] : -1, kind: k < B ? 'positive' : 'negative', logq: logq(j, k >= B && mined) }));
  const same = r.sources.some((s) => s.type === 'same-tower');
  if (same) q.forEach((e, k) => cols.push({ emb: e, item: batch.items[k], user: batch.users[k], kind: 'query', logq: 0 }));
  const fn = r.corrections.fnMask;
  const rr: StepRecipe64 = {
    temperature: r.temperature,
    inBatch: true,
    maskSameItem: r.corrections.maskSameItem,
    maskSameUser: r.corrections.maskSameUser,
    fnMask: fn ? fn : null,
    loss: { type: r.loss.type as 'infonce' | 'debiased', tauPlus: r.loss.tauPlus, symmetric: r.loss.symmetric },
    sameTower: same,
  };
  return stepLoss64(rr, batch.users, batch.items, q, cols);
}

const BASE = {};
const REFERENCE_CASES: Record<string, object> = {
  'no masks': { corrections: { maskSameItem: false, maskSameUser: false } },
  'maskSameItem only': { corrections: { maskSameItem: true, maskSameUser: false } },
  'logQ (train frequency)': { corrections: { logQ: {} } },
  'same-tower (SamToNe)': { sources: [{ type: 'in-batch' }, { type: 'same-tower' }] },
  symmetric: { loss: { symmetric: true } },
  'same-tower + symmetric + logQ': { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], corrections: { logQ: {} }, loss: { symmetric: true } },
  'fnMask threshold + margin': { corrections: { fnMask: { threshold: 0.3, margin: 0.3 } } },
  debiased: { loss: { type: 'debiased', tauPlus: 0.1 } },
  'mined from bm25 (top 2 of ranks 0–4)': { sources: [{ type: 'in-batch' }, { type: 'mined', from: 'bm25', n: 2, rankRange: [0, 4], sample: 'top' }] },
};
const STATEFUL_CASES: Record<string, [object, number]> = {
  uniform: [{ sources: [{ type: 'in-batch' }, { type: 'uniform', n: 4 }] }, 0],
  'popularity + logQ': [{ sources: [{ type: 'in-batch' }, { type: 'popularity', n: 4 }], corrections: { logQ: {} } }, 0],
  queue: [{ sources: [{ type: 'in-batch' }, { type: 'queue', size: 16 }] }, 2],
  'queue + momentum 0.5': [{ sources: [{ type: 'in-batch' }, { type: 'queue', size: 16, momentum: 0.5 }] }, 2],
  'mined from bm25 (random)': [{ sources: [{ type: 'in-batch' }, { type: 'mined', from: 'bm25', n: 1, rankRange: [0, 4] }] }, 0],
};

for (const tower of ['boe', 'transformer'] as const) {
  test(`text recipes (${tower}): every module changes the loss; stateless ones match the float64 reference`, async () => {
    const b = await createJsBackend({ wasm: false });
    const base = runCase(b, tower, BASE);
    assert.ok(Math.abs(base.loss - reference(tower, base)) < 1e-4, `${tower} in-batch: ${base.loss} vs ${reference(tower, base)}`);
    for (const [name, json] of Object.entries(REFERENCE_CASES)) {
      const c = runCase(b, tower, json);
      assert.ok(Number.isFinite(c.loss), `${tower} ${name}: loss ${c.loss}`);
      const ref = reference(tower, c);
      assert.ok(Math.abs(c.loss - ref) < 1e-4 * (1 + Math.abs(ref)), `${tower} ${name}: step ${c.loss} vs float64 ${ref}`);
      assert.ok(Math.abs(c.loss - base.loss) > 1e-4, `${tower} ${name}: the module does not change the loss (${c.loss})`);
    }
    for (const [name, [json, warm]] of Object.entries(STATEFUL_CASES)) {
      const c = runCase(b, tower, json, warm);
      const ref = runCase(b, tower, BASE, warm);
      assert.ok(Number.isFinite(c.loss), `${tower} ${name}: loss ${c.loss}`);
      assert.ok(Math.abs(c.loss - ref.loss) > 1e-4, `${tower} ${name}: the module does not change the loss (${c.loss})`);
    }
  });
}

test('text recipes: the planted collisions are masked as the recipe says (document 0 twice, query 0 twice)', async () => {
  const b = await createJsBackend({ wasm: false });
  // Without masks, row 0 (query 0 → doc 0) sees row 1's column (also doc 0) and row 2's (query 0's other positive).
  const masked = runCase(b, 'boe', {});
  const itemOnly = runCase(b, 'boe', { corrections: { maskSameItem: true, maskSameUser: false } });
  const none = runCase(b, 'boe', { corrections: { maskSameItem: false, maskSameUser: false } });
  assert.deepEqual(Array.from(masked.ids.subarray(0, 3)), [0, 0, 3]);
  const losses = new Set([masked.loss, itemOnly.loss, none.loss].map((x) => x.toFixed(6)));
  assert.equal(losses.size, 3, 'each mask removes different logits');
});

test('the default text recipe: recipes/text.json equals the built-in one; --hard-negatives 0 is in-batch alone', () => {
  const file = parseRecipe(JSON.parse(readFileSync(join(import.meta.dirname, '..', 'recipes', 'text.json'), 'utf8')));
  assert.deepEqual(file, parseRecipe(DEFAULT_TEXT_RECIPE_JSON));
  assert.deepEqual(textRecipe(), file);
  assert.deepEqual(textRecipe({ hardNegatives: 0 }).sources.map((s) => s.type), ['in-batch']);
  assert.deepEqual(textRecipe({ hardNegatives: 3, hardPool: 7 }).sources[1], { ...file.sources[1], n: 3, rankRange: [0, 7] });
});

test('text training resumes from a checkpoint to the same weights (queue + momentum + streaming logQ state)', async () => {
  const b = await createJsBackend({ wasm: false });
  const json = { sources: [{ type: 'in-batch' }, { type: 'queue', size: 8, momentum: 0.5 }, { type: 'mined', from: 'bm25', n: 1, rankRange: [0, 4] }], corrections: { logQ: { estimator: 'streaming', alpha: 0.2 } } };
  const dir = mkdtempSync(join(tmpdir(), 'text-ckpt-'));
  try {
    const opts = { ...defaultTextTrain, batchSize: 4, pretrain: 'title' as const, pretrainEpochs: 1, seed: 3 };
    const full = setup(b, 'boe', json);
    trainText(b, full.pair, full.set, full.recipe, { ...opts, epochs: 3 });
    const first = setup(b, 'boe', json);
    trainText(b, first.pair, first.set, first.recipe, { ...opts, epochs: 1, checkpointDir: join(dir, 'ck') });
    const resumed = setup(b, 'boe', json);
    const r = trainText(b, resumed.pair, resumed.set, resumed.recipe, { ...opts, epochs: 3, checkpointDir: join(dir, 'ck'), resume: true });
    assert.deepEqual(r.history.map((h) => `${h.phase}${h.epoch}`), ['pretrain1', 'train1', 'train2', 'train3']);
    const w = (p: TextEncoderPair) => Array.from(p.stateArrays(false)[0][1] as Float32Array);
    assert.deepEqual(w(resumed.pair), w(full.pair));
    // A different recipe refuses the checkpoint, naming why.
    const other = setup(b, 'boe', {});
    assert.throws(() => trainText(b, other.pair, other.set, other.recipe, { ...opts, epochs: 3, checkpointDir: join(dir, 'ck'), resume: true }), /another recipe/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('batch samplers run on text (no-duplicates, rwr over query/document embeddings); validation with early stopping', async () => {
  const b = await createJsBackend({ wasm: false });
  for (const sampler of [{ type: 'no-duplicates' }, { type: 'rwr', refreshEvery: 1 }]) {
    const s = setup(b, 'boe', { batchSampler: sampler });
    const r = trainText(b, s.pair, s.set, s.recipe, { ...defaultTextTrain, batchSize: 4, epochs: 2 });
    assert.equal(r.history.length, 2);
    assert.ok(r.history.every((h) => Number.isFinite(h.loss)), JSON.stringify(r.history));
  }
  const s = setup(b, 'boe', {});
  const val = { queries: Int32Array.of(1, 3, 5), relevant: new Map([[1, new Map([[0, 1]])], [3, new Map([[1, 1]])], [5, new Map([[2, 1]])]]) };
  const r = trainText(b, s.pair, s.set, s.recipe, { ...defaultTextTrain, batchSize: 4, epochs: 6, evalEvery: 1, patience: 1 }, val);
  assert.ok(r.validation.length >= 1 && r.validation.length <= 6);
  assert.ok(r.bestEpoch >= 1);
  if (r.stoppedEarly) assert.ok(r.validation.length < 6);
});

test('towerlab text --recipe: any recipe trains through the one step; conflicting flags and bad recipes are one line', async () => {
  const { spawnSync } = await import('node:child_process');
  const { writeFileSync } = await import('node:fs');
  const dir = synonymSet(16, 6);
  const bin = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
  const recipes = join(import.meta.dirname, '..', 'recipes');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'text', '--beir', dir, '--epochs', '2', '--dim', '16', '--batch-size', '8', '--no-progress', ...args], { encoding: 'utf8' });
  const ok = run('--recipe', join(recipes, 'text-same-tower-symmetric.json'), '--json');
  assert.equal(ok.status, 0, ok.stderr);
  const j = JSON.parse(ok.stdout.trim().split('\n').at(-1)!);
  assert.match(j.train.recipe, /same-tower/);
  assert.match(ok.stdout, /recipe 'text: in-batch \+ BM25 hard negatives \+ same-tower/);
  // The exact full-catalogue softmax is cheap with BoE (the corpus encoded once per step) and refused for the transformer.
  const tmp = mkdtempSync(join(tmpdir(), 'text-recipe-'));
  try {
    const full = join(tmp, 'full.json');
    writeFileSync(full, JSON.stringify({ sources: [{ type: 'full-catalogue' }] }));
    const f = run('--recipe', full, '--json');
    assert.equal(f.status, 0, f.stderr);
    const t = run('--recipe', full, '--tower', 'transformer');
    assert.equal(t.status, 2);
    assert.match(t.stderr.trim(), /^towerlab: error: recipe: field 'sources': a 'full-catalogue' source would run the transformer tower over all 16 documents/);
    const both = run('--recipe', join(recipes, 'text.json'), '--hard-negatives', '2');
    assert.equal(both.status, 2);
    assert.equal(both.stderr.trim().split('\n').length, 1, both.stderr);
    assert.match(both.stderr, /--hard-negatives: shapes the default text recipe/);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify({ sources: [{ type: 'mined', from: 'online' }] }));
    const b2 = run('--recipe', bad);
    assert.equal(b2.status, 2);
    assert.match(b2.stderr.trim(), /field 'sources\.0\.from': online mining is not available for text models/);
    const noCk = run('--resume');
    assert.equal(noCk.status, 2);
    assert.match(noCk.stderr, /--resume: needs --checkpoint/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
