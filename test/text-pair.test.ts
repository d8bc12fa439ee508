/**
 * The text dual encoder as an EncoderPair (src/text/text-pair.ts): forward/backward of the packed shared tower
 * and of two towers against finite differences (BoE with a dense layer, and the transformer), inference
 * embeddings equal the train-mode forward of the same chunk, batch-supplied positives replace the chunk,
 * the momentum copy (m = 1 keeps the old weights, m = 0 follows the online ones), learning-rate scale, and
 * stateArrays/restoreState with optimiser state (a restored pair steps exactly like the original).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/compute/backend.ts';
import type { EncoderBatch } from '../src/model/encoder.ts';
import { loadBeir } from '../src/text/beir.ts';
import { TextCorpus } from '../src/text/corpus.ts';
import { DualEncoder, type DualEncoderConfig } from '../src/text/dual-encoder.ts';
import { defaultDualEncoder } from '../src/text/experiment.ts';
import { TextEncoderPair, type TextBatchInput } from '../src/text/text-pair.ts';
import type { TextTower } from '../src/text/tower.ts';
import { BoeTower } from '../src/text/boe-tower.ts';
import { TransformerTower } from '../src/text/transformer-tower.ts';
import { Rng } from '../src/util/rng.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';
import { testBackends } from './helpers/backends.ts';

const tok = { buckets: 64, bigrams: false, charNgrams: [], stopwords: true, stem: true };
const corpus = new TextCorpus(loadBeir(synonymSet(6, 3)), tok);

const backends = () => testBackends();

function makePair(tower: 'boe' | 'transformer', shared: boolean, seed = 1): TextEncoderPair {
  // Window 8 / stride 6 splits each synthetic document into several chunks.
  const cfg: DualEncoderConfig = { ...defaultDualEncoder, tower, shared, dim: 6, proj: tower === 'boe' ? 6 : 0, heads: 2, blocks: 1, window: 8, stride: 6, queryMaxLen: 8, tokenizer: tok, seed };
  const pair = new TextEncoderPair(new DualEncoder(cfg, { lrSparse: 0.05, lrDense: 0.05 }), corpus);
  // Move dense weights off their (near-identity / unit layer-norm) start so every parameter kind matters.
  const rng = new Rng(seed + 11);
  for (const t of new Set([pair.enc.qTower, pair.enc.dTower])) for (const [n, a] of t.tensors()) if (n !== 'emb') for (let i = 0; i < a.length; i++) a[i] += 0.2 * rng.normal();
  return pair;
}

function batchOf(pair: TextEncoderPair, queries: number[], docs: number[], positives: Int32Array[] | null = null): EncoderBatch<TextBatchInput> {
  return { input: { queries: queries.map((q) => pair.docs.queryInput(q)), positives }, rows: queries.length, users: Int32Array.from(queries), items: Int32Array.from(docs) };
}

/** Dense parameters with their gradient buffers (the hashed table's gradients come per token). */
function denseGrads(t: TextTower): Array<[string, Float32Array, Float32Array]> {
  if (t instanceof BoeTower) return t.dense ? [['dense.w', t.dense.w, t.dense.dw], ['dense.b', t.dense.b, t.dense.db]] : [];
  const tt = t as TransformerTower;
  const out: Array<[string, Float32Array, Float32Array]> = tt.denseParams().map((p) => [p.name, p.p, p.g]);
  for (const blk of tt.blocks) for (const [n, l] of blk.layers()) out.push([`${blk.name}.${n}.w`, l.w, l.dw]);
  return out;
}

function tableGrad(t: TextTower, inputs: Int32Array[], dim: number): Float64Array {
  const tt = t as BoeTower | TransformerTower;
  const g = new Float64Array(tt.table.data.length);
  const ig = tt.inputGrads();
  let k = 0;
  for (const x of inputs) for (const id of x) {
    for (let j = 0; j < dim; j++) g[id * dim + j] += ig[k * dim + j];
    k++;
  }
  return g;
}

for (const tower of ['boe', 'transformer'] as const) {
  for (const shared of [true, false]) {
    test(`text pair (${tower}, ${shared ? 'shared tower' : 'two towers'}): forward/backward match finite differences`, async () => {
      for (const b of await backends()) {
        const pair = makePair(tower, shared);
        const D = pair.dim;
        const batch = batchOf(pair, [0, 2, 4], [0, 1, 2]);
        const ids = Int32Array.of(0, 1, 2, 4, 5);
        const rng = new Rng(3);
        const Wq = Float64Array.from({ length: batch.rows * D }, () => rng.normal());
        const Wc = Float64Array.from({ length: ids.length * D }, () => rng.normal());
        // L = Σ Wq·q + Σ Wc·c, with the same chunk draws every forward (same seed).
        const loss = (): number => {
          const { q, c } = pair.forward(b, batch, ids, new Rng(5));
          let s = 0;
          for (let i = 0; i < q.length; i++) s += q[i] * Wq[i];
          for (let i = 0; i < c.length; i++) s += c[i] * Wc[i];
          pair.backward(b, new Float32Array(q.length), new Float32Array(c.length)); // keep forward/backward paired
          return s;
        };
        pair.forward(b, batch, ids, new Rng(5));
        const qIn = batch.input.queries;
        const cIn = pair.itemInputs(ids);
        pair.backward(b, Float32Array.from(Wq), Float32Array.from(Wc));
        const emb: Array<[TextTower, Float64Array]> = shared
          ? [[pair.enc.qTower, tableGrad(pair.enc.qTower, [...qIn, ...cIn], D)]]
          : [[pair.enc.qTower, tableGrad(pair.enc.qTower, qIn, D)], [pair.enc.dTower, tableGrad(pair.enc.dTower, cIn, D)]];
        const checks: Array<[string, Float32Array, number, number]> = [];
        for (const [t, g] of emb) {
          const data = (t as BoeTower).table.data;
          let picked = 0;
          for (let i = 0; i < g.length && picked < 6; i += 7) if (Math.abs(g[i]) > 1e-3) { checks.push([`${t.kind}.emb[${i}]`, data, i, g[i]]); picked++; }
          assert.ok(picked >= 3, 'the table has gradient');
        }
        for (const t of new Set([pair.enc.qTower, pair.enc.dTower])) for (const [n, p, g] of denseGrads(t)) for (const i of [0, p.length >> 1, p.length - 1]) checks.push([n, p, i, g[i]]);
        const grads = checks.map(([, , , g]) => g);
        const h = 2e-3;
        let nonzero = 0;
        checks.forEach(([what, arr, i], k) => {
          const keep = arr[i];
          arr[i] = keep + h;
          const lp = loss();
          arr[i] = keep - h;
          const lm = loss();
          arr[i] = keep;
          const fd = (lp - lm) / (2 * h);
          if (Math.abs(grads[k]) > 1e-4) nonzero++;
          assert.ok(Math.abs(fd - grads[k]) < 2e-2 * (1 + Math.abs(fd)), `${b.name} ${what}: analytic ${grads[k]} vs fd ${fd}`);
        });
        assert.ok(nonzero >= 6, `${nonzero} non-zero gradients checked`);
      }
    });
  }
}

test('text pair: embedItems equals the train-mode forward of the same chunk; batch positives replace the chunk', async () => {
  const [b] = await backends();
  for (const tower of ['boe', 'transformer'] as const) for (const shared of [true, false]) {
    const pair = makePair(tower, shared);
    const D = pair.dim;
    const ids = Int32Array.of(3, 1, 5, 0);
    const batch = batchOf(pair, [0, 2], [3, 1]);
    const { c } = pair.forward(b, batch, ids, new Rng(8));
    const cTrain = c.slice();
    assert.throws(() => pair.embedItems(b, ids, new Float32Array(ids.length * D)), /between forward and backward/);
    pair.backward(b, new Float32Array(2 * D), new Float32Array(ids.length * D));
    const out = new Float32Array(ids.length * D);
    pair.embedItems(b, ids, out);
    for (let i = 0; i < out.length; i++) assert.ok(Math.abs(out[i] - cTrain[i]) < 1e-5, `${tower} ${shared}: entry ${i} ${out[i]} vs ${cTrain[i]}`);
    // Rows' positive inputs given by the batch (pre-training pairs): columns 0, 1 encode them, column 2 a chunk.
    const own = [pair.docs.queryInput(5), pair.docs.queryInput(7)];
    const batch2 = batchOf(pair, [0, 2], [3, 1], own);
    const r2 = pair.forward(b, batch2, Int32Array.of(3, 1, 4), new Rng(8));
    const got = r2.c.slice();
    pair.backward(b, new Float32Array(2 * D), new Float32Array(3 * D));
    const viaTower = pair.enc.encode(b, pair.enc.dTower, own);
    for (let i = 0; i < 2 * D; i++) assert.ok(Math.abs(got[i] - viaTower[i]) < 1e-5, 'columns 0 and 1 are the batch-given positives');
    const col2 = new Float32Array(D);
    pair.embedItems(b, Int32Array.of(4), col2);
    for (let i = 0; i < D; i++) assert.ok(Math.abs(got[2 * D + i] - col2[i]) < 1e-5, 'column 2 is a chunk of document 4');
  }
});

/** One optimiser step of a fixed pseudo-loss (gradient = a fixed direction). */
function trainStep(b: Backend, pair: TextEncoderPair, seed: number): void {
  const batch = batchOf(pair, [0, 2, 4], [0, 1, 2]);
  const ids = Int32Array.of(0, 1, 2, 5);
  const { q, c } = pair.forward(b, batch, ids, new Rng(seed));
  const rng = new Rng(seed + 1);
  pair.backward(b, Float32Array.from(q, () => rng.normal()), Float32Array.from(c, () => rng.normal()));
  pair.step(b);
  // Inference embeddings below compare fixed views: every document's first chunk.
  pair.lastChunk.fill(-1);
}

test('text pair: momentum copy (m = 1 keeps the start, m = 0 follows), lr scale 0 freezes, state restores exactly', async () => {
  const [b] = await backends();
  for (const tower of ['boe', 'transformer'] as const) for (const shared of [true, false]) {
    const pair = makePair(tower, shared);
    const D = pair.dim;
    const ids = Int32Array.of(0, 1, 2, 3, 4, 5);
    const before = new Float32Array(ids.length * D);
    pair.embedItems(b, ids, before);
    const frozen = pair.momentumItems(1);
    const follow = pair.momentumItems(0);
    const half = pair.momentumItems(0.5);
    const m0 = new Float32Array(ids.length * D);
    half.embed(b, ids, m0);
    assert.deepEqual(m0, before, 'a fresh momentum copy embeds like the online tower');
    pair.setLrScale(0);
    trainStep(b, pair, 1);
    const same = new Float32Array(ids.length * D);
    pair.embedItems(b, ids, same);
    for (let i = 0; i < same.length; i++) assert.ok(Math.abs(same[i] - before[i]) < 1e-6, 'lr scale 0: nothing moves');
    pair.setLrScale(1);
    for (let s = 2; s < 5; s++) {
      trainStep(b, pair, s);
      for (const m of [frozen, follow, half]) m.update();
    }
    const after = new Float32Array(ids.length * D);
    pair.embedItems(b, ids, after);
    const diff = (x: Float32Array, y: Float32Array) => x.reduce((s, v, i) => s + Math.abs(v - y[i]), 0);
    assert.ok(diff(after, before) > 1e-2, 'training moved the document embeddings');
    const out = new Float32Array(ids.length * D);
    frozen.embed(b, ids, out);
    assert.ok(diff(out, before) < 1e-4, `m = 1 keeps the start (${diff(out, before)})`);
    follow.embed(b, ids, out);
    assert.ok(diff(out, after) < 1e-4, `m = 0 follows the online tower (${diff(out, after)})`);
    half.embed(b, ids, out);
    assert.ok(diff(out, after) > 1e-3 && diff(out, before) > 1e-3, 'm = 0.5 lies in between');
    // The momentum state round-trips.
    const mState = new Map(half.stateArrays().map(([n, a]) => [n, a.slice()]));
    const half2 = pair.momentumItems(0.5);
    half2.restoreState((n) => mState.get(n));
    const out2 = new Float32Array(ids.length * D);
    half2.embed(b, ids, out2);
    half.embed(b, ids, out);
    assert.deepEqual(out2, out);

    // Checkpoint with optimiser state; a differently seeded pair restored from it steps identically.
    const saved = new Map(pair.stateArrays(true).map(([n, a]) => [n, a.slice()]));
    const other = makePair(tower, shared, 9);
    other.restoreState((n) => saved.get(n));
    trainStep(b, pair, 7);
    trainStep(b, other, 7);
    const e1 = new Float32Array(ids.length * D);
    const e2 = new Float32Array(ids.length * D);
    pair.embedItems(b, ids, e1);
    other.embedItems(b, ids, e2);
    assert.deepEqual(e2, e1, `${tower} ${shared}: restored pair steps like the original`);
    // Weights only (no optimiser state) restore too, and a wrong-shaped array is named.
    const weights = new Map(pair.stateArrays(false).map(([n, a]) => [n, a.slice()]));
    const third = makePair(tower, shared, 4);
    third.restoreState((n) => weights.get(n));
    third.embedItems(b, ids, e2);
    pair.embedItems(b, ids, e1);
    assert.deepEqual(e2, e1);
    assert.throws(() => third.restoreState((n) => (n === 'q.emb' ? new Float32Array(3) : weights.get(n))), /q\.emb|emb/);
  }
});
