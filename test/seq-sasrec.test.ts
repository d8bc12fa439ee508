/**
 * SASRec and mean-pool towers: gradients of every parameter kind against finite differences (with dropout on,
 * masks replayed from the same seed), causality of the attention, and packing = padding equivalence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/compute/backend.ts';
import { MeanPoolTower } from '../src/seq/mean-pool.ts';
import { PackedBuilder, packLists } from '../src/seq/packed.ts';
import { SasRecTower } from '../src/seq/sasrec.ts';
import type { SeqTower } from '../src/seq/tower.ts';
import { Rng } from '../src/util/rng.ts';
import { testBackends } from './helpers/backends.ts';

const backends = () => testBackends();

const sparse = { kind: 'lazyadam' as const, lr: 0.01, beta1: 0.9, beta2: 0.98, eps: 1e-8 };
const optim = { lr: 0.01, beta1: 0.9, beta2: 0.98 };

function sasrec(dropout: number, heads = 2, blocks = 2): SasRecTower {
  const t = new SasRecTower({ numItems: 9, dim: 8, maxLen: 6, blocks, heads, dropout, seed: 3 }, sparse, optim);
  // Non-trivial layer-norm and bias parameters, so their gradients are exercised.
  const rng = new Rng(11);
  for (const p of t.denseParams()) for (let i = 0; i < p.size; i++) p.p[i] += 0.2 * rng.normal();
  for (const blk of t.blocks) for (const [, l] of blk.layers()) for (let i = 0; i < l.b.length; i++) l.b[i] = 0.1 * rng.normal();
  for (let i = 0; i < t.items.data.length; i++) t.items.data[i] = 0.5 * rng.normal();
  return t;
}

/** L = Σ H ⊙ W for a fixed W, with dropout masks replayed from the same seed every time. */
function lossOf(b: Backend, t: SeqTower, lists: number[][], W: Float64Array): number {
  const h = t.forward(b, packLists(lists, t.maxLen), true, new Rng(99));
  let s = 0;
  for (let i = 0; i < h.length; i++) s += h[i] * W[i];
  return s;
}

function checkGradients(b: Backend, t: SeqTower, lists: number[][], extra: Array<[string, Float32Array, Float32Array]>): void {
  const batch = packLists(lists, t.maxLen);
  const rng = new Rng(7);
  const W = Float64Array.from({ length: batch.tokens * t.dim }, () => rng.normal());
  t.forward(b, batch, true, new Rng(99));
  t.backward(b, Float32Array.from(W));
  // Table gradient: sum of the per-token input gradients of each row.
  const dE = new Float64Array(t.items.data.length);
  const ig = t.inputGrads();
  for (let k = 0; k < batch.tokens; k++) for (let j = 0; j < t.dim; j++) dE[batch.items[k] * t.dim + j] += ig[k * t.dim + j];
  const h = 2e-3;
  let nonzero = 0;
  const check = (arr: Float32Array, idx: number, analytic: number, what: string) => {
    const keep = arr[idx];
    arr[idx] = keep + h;
    const lp = lossOf(b, t, lists, W);
    arr[idx] = keep - h;
    const lm = lossOf(b, t, lists, W);
    arr[idx] = keep;
    const fd = (lp - lm) / (2 * h);
    if (Math.abs(analytic) > 1e-4) nonzero++;
    assert.ok(Math.abs(fd - analytic) < 2e-2 * (1 + Math.abs(fd)), `${b.name} ${what}: analytic ${analytic} vs fd ${fd}`);
  };
  for (const idx of [1 * t.dim + 0, 2 * t.dim + 3, 4 * t.dim + 7]) check(t.items.data, idx, dE[idx], `item.emb[${idx}]`);
  for (const [name, p, g] of extra) for (const idx of [0, Math.floor(p.length / 2), p.length - 1]) check(p, idx, g[idx], `${name}[${idx}]`);
  assert.ok(nonzero >= 3, 'gradients are not all zero');
}

for (const [dropout, heads] of [[0, 1], [0.3, 2]] as const) {
  test(`SASRec gradients match finite differences (dropout ${dropout}, ${heads} head(s), 2 blocks)`, async () => {
    for (const b of await backends()) {
      const t = sasrec(dropout, heads);
      const extra: Array<[string, Float32Array, Float32Array]> = [];
      for (const p of t.denseParams()) extra.push([p.name, p.p, p.g]);
      for (const blk of t.blocks) for (const [n, l] of blk.layers()) extra.push([`${blk.name}.${n}.w`, l.w, l.dw], [`${blk.name}.${n}.b`, l.b, l.db]);
      // Lengths 1, 3 and 7 (> maxLen 6: truncated to the last 6); item 1 repeats (its gradient is a sum).
      checkGradients(b, t, [[1], [2, 1, 4], [5, 1, 2, 4, 3, 6, 8]], extra);
    }
  });
}

test('mean-pool tower gradients match finite differences', async () => {
  for (const b of await backends()) {
    const t = new MeanPoolTower({ numItems: 9, dim: 8, maxLen: 6, seed: 2 }, sparse, optim);
    checkGradients(b, t, [[1], [2, 1, 4], [5, 1, 2, 4, 3, 6, 8]], [
      ['proj.w', t.proj.w, t.proj.dw],
      ['proj.b', t.proj.b, t.proj.db],
    ]);
  }
});

test('attention is causal: a later item cannot change an earlier position, but does change its own', async () => {
  for (const b of await backends()) {
    for (const t of [sasrec(0, 2), new MeanPoolTower({ numItems: 9, dim: 8, maxLen: 6, seed: 2 }, sparse, optim)] as SeqTower[]) {
      const rng = new Rng(1);
      const h1 = t.forward(b, packLists([[3, 1, 4, 1, 5]], 6), false, rng).slice();
      const h2 = t.forward(b, packLists([[3, 1, 4, 1, 8]], 6), false, rng).slice();
      const d = t.dim;
      for (let i = 0; i < 4 * d; i++) assert.equal(h1[i], h2[i], `${t.kind}: position ${Math.floor(i / d)} changed`);
      let diff = 0;
      for (let i = 4 * d; i < 5 * d; i++) diff += Math.abs(h1[i] - h2[i]);
      assert.ok(diff > 1e-3, `${t.kind}: the last position must depend on the last item`);
    }
  }
});

test('packed sequences: each sequence is computed independently of the others in the batch', async () => {
  const b = (await backends()).at(-1)!;
  const t = sasrec(0, 2);
  const alone = t.forward(b, packLists([[2, 7, 1]], 6), false, new Rng(1)).slice();
  const together = t.forward(b, packLists([[5, 5, 5, 5], [2, 7, 1], [8]], 6), false, new Rng(1)).slice(4 * 8, 7 * 8);
  for (let i = 0; i < alone.length; i++) assert.ok(Math.abs(alone[i] - together[i]) < 1e-5, `entry ${i}: ${alone[i]} vs ${together[i]}`);
});

test('attention probabilities are causal and rows sum to one', async () => {
  const b = (await backends())[0];
  const t = sasrec(0, 2);
  t.forward(b, packLists([[1, 2, 3, 4]], 6), false, new Rng(1));
  const P = t.blocks[0].attn.probabilities(0, 1);
  for (let i = 0; i < 4; i++) {
    let s = 0;
    for (let j = 0; j < 4; j++) {
      if (j > i) assert.equal(P[i * 4 + j], 0);
      s += P[i * 4 + j];
    }
    assert.ok(Math.abs(s - 1) < 1e-6);
  }
});

test('packed batches: last maxLen inputs, next-item targets, positions aligned as with left padding', () => {
  const seqs = { rows: 3, offsets: Int32Array.from([0, 7, 9, 10]), cols: Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) };
  const b = new PackedBuilder(4).training(seqs, Int32Array.from([0, 2, 1]));
  // User 0: inputs 1..6 truncated to the last 4 (3 4 5 6) → targets 4 5 6 7; user 2 (one item) adds nothing;
  // user 1: input 8 → target 9, at the last position.
  assert.equal(b.n, 2);
  assert.deepEqual(Array.from(b.items), [3, 4, 5, 6, 8]);
  assert.deepEqual(Array.from(b.targets), [4, 5, 6, 7, 9]);
  assert.deepEqual(Array.from(b.positions), [0, 1, 2, 3, 3]);
  assert.deepEqual(Array.from(b.offsets), [0, 4, 5]);
  assert.deepEqual(Array.from(b.users), [0, 1]);
  assert.deepEqual(Array.from(b.seqOf), [0, 0, 0, 0, 1]);
  const inf = new PackedBuilder(4).inference(Int32Array.from([1, 0]), (u) => seqs.cols.subarray(seqs.offsets[u], seqs.offsets[u + 1]));
  assert.deepEqual(Array.from(inf.items), [8, 9, 4, 5, 6, 7]);
  assert.deepEqual(Array.from(inf.positions), [2, 3, 0, 1, 2, 3]);
});
