/**
 * The full-catalogue softmax kernel (native and portable) against a float64 reference written here from the
 * definition (materialised logits, log-sum-exp, softmax − onehot), whose gradient is itself checked by
 * finite differences; plus tiling edge cases, padding rows, accumulation into de and thread-count determinism.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Backend, FullSoftmaxArgs } from '../src/compute/backend.ts';
import { createJsBackend } from '../src/compute/js.ts';
import { loadNativeBackend, setNativeThreads } from '../src/compute/native.ts';
import { skipWithoutNative } from './helpers/native-required.ts';
import { problem, softmaxReference, type Problem } from './helpers/softmax-problem.ts';

/** Float64 loss of the definition, from materialised logits (test/helpers/softmax-problem.ts). */
function loss64(p: Problem, q: Float64Array, e: Float64Array): number {
  return softmaxReference(p, undefined, q, e).loss;
}

/** Float64 gradients of the definition: G = scale·w/Σw·(softmax − onehot), dq = G e, de = Gᵀ q. */
function grads64(p: Problem): { loss: number; dq: Float64Array; de: Float64Array } {
  return softmaxReference(p);
}

function run(b: Backend, p: Problem, deInit = 0): { loss: number; dq: Float32Array; de: Float32Array; rowLoss: Float32Array } {
  const dq = new Float32Array(p.R * p.d).fill(Number.NaN); // overwritten: NaN must not survive
  const de = new Float32Array(p.N * p.d).fill(deInit);
  const rowLoss = new Float32Array(p.R);
  const args: FullSoftmaxArgs = { q: p.q, e: p.e, R: p.R, N: p.N, d: p.d, target: p.target, scale: p.scale, rowWeight: p.w, dq, de, rowLoss };
  const loss = b.fullSoftmax(args);
  return { loss, dq, de, rowLoss };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string, offset = 0): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) maxAbs = Math.max(maxAbs, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const diff = Math.abs(got[i] - offset - want[i]);
    assert.ok(diff <= tol * (maxAbs + 1e-12), `${what}[${i}]: got ${got[i] - offset}, want ${want[i]} (max |want| ${maxAbs})`);
  }
}

test('the float64 reference gradient agrees with finite differences of the float64 loss', () => {
  const p = problem(11, 7, 23, 5, 2.5, true);
  const ref = grads64(p);
  const q = Float64Array.from(p.q);
  const e = Float64Array.from(p.e);
  const h = 1e-6;
  for (const [arr, g, name] of [
    [q, ref.dq, 'dq'],
    [e, ref.de, 'de'],
  ] as const) {
    for (let x = 0; x < arr.length; x += 3) {
      const keep = arr[x];
      arr[x] = keep + h;
      const up = loss64(p, q, e);
      arr[x] = keep - h;
      const down = loss64(p, q, e);
      arr[x] = keep;
      const fd = (up - down) / (2 * h);
      assert.ok(Math.abs(fd - g[x]) < 1e-6, `${name}[${x}]: finite difference ${fd}, analytic ${g[x]}`);
    }
  }
});

// Shapes chosen to cross every tile boundary of both implementations: several pass-1 row tiles and item
// tiles (256), pass-2 item tiles (192) and row tiles (256), partial tiles and SIMD tails.
const shapes: Array<[number, number, number, number, boolean]> = [
  // R, N, d, scale, weights
  [1, 1, 1, 1, false],
  [5, 3, 7, 1, true],
  [300, 1000, 20, 3, true],
  [61, 577, 33, 1, false],
  [257, 130, 16, 8, true], // large logits: the online max must rescale correctly
  // Awkward sizes: R not a multiple of the 12-row pieces / 6-row panels, N not a multiple of the 256-item chunks
  // or 16-column panels, d not a multiple of 16 (partial zmm / ymm panels) and above one 64-wide block.
  [203, 1037, 67, 2, true],
  [13, 257, 17, 1, false],
];

async function checkBackend(b: Backend): Promise<void> {
  for (const [R, N, d, scale, wt] of shapes) {
    const p = problem(R * 7 + N, R, N, d, scale, wt);
    const ref = grads64(p);
    const got = run(b, p, 0.25);
    const what = `${b.name} R=${R} N=${N} d=${d}`;
    assert.ok(Math.abs(got.loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)), `${what}: loss ${got.loss} vs ${ref.loss}`);
    assertClose(got.dq, ref.dq, 2e-4, `${what} dq`);
    assertClose(got.de, ref.de, 2e-4, `${what} de (accumulated onto 0.25)`, 0.25);
    // Per-row losses: weighted mean equals the loss; padding rows do not change it.
    let num = 0;
    let den = 0;
    for (let i = 0; i < R; i++) {
      const wi = p.w ? p.w[i] : 1;
      num += wi * got.rowLoss[i];
      den += wi;
    }
    assert.ok(Math.abs(num / den - got.loss) <= 1e-4 * Math.max(1, got.loss), `${what}: rowLoss`);
    if (p.w) {
      for (let i = 0; i < R; i++) {
        if (p.w[i] !== 0) continue;
        for (let k = 0; k < d; k++) assert.ok(got.dq[i * d + k] === 0, `${what}: padding row ${i} has a gradient`);
      }
    }
  }
  // All padding: zero loss, zero dq, de untouched.
  const p = problem(3, 4, 9, 3, 1, true);
  p.w!.fill(0);
  const got = run(b, p, 0.5);
  assert.equal(got.loss, 0);
  assert.ok(got.dq.every((x) => x === 0));
  assert.ok(got.de.every((x) => x === 0.5));
  // A flipped sign would show as a gradient that raises the loss: one small step along −grad lowers it.
  const s = problem(5, 40, 300, 8, 1, false);
  const g = run(b, s);
  const before = g.loss;
  const stepped = { ...s, q: s.q.map((x, i) => x - 0.5 * g.dq[i]), e: s.e.map((x, i) => x - 0.5 * g.de[i]) };
  assert.ok(run(b, stepped).loss < before, `${b.name}: a gradient step must lower the loss`);
}

test('portable fullSoftmax matches the float64 reference', async () => {
  await checkBackend(await createJsBackend({ wasm: false }));
  await checkBackend(await createJsBackend());
});

test('portable fullSoftmax rejects a target outside the catalogue', async () => {
  const b = await createJsBackend({ wasm: false });
  const p = problem(1, 3, 4, 2, 1, false);
  p.target[1] = 4;
  assert.throws(() => run(b, p), /target\[1\] = 4 is outside \[0, N=4\)/);
});

// The native kernel has two paths: catalogues whose row-tile × items logits fit a budget keep them (three products),
// larger ones recompute them (four products, any size). TOWERLAB_FULL_SOFTMAX_STORE_MIB sets the budget per call:
// 0 forces the recompute path, a small budget forces several stored row tiles.
const storeBudgets = ['0', '0.5', ''];

test('native fullSoftmax matches the float64 reference, the portable backend, and any thread count', async (t) => {
  const b = loadNativeBackend();
  if (skipWithoutNative(t, b !== null)) return;
  const saved = process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB;
  try {
    for (const budget of storeBudgets) {
      process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB = budget;
      await checkNative(b!, budget);
    }
  } finally {
    if (saved === undefined) delete process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB;
    else process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB = saved;
  }
});

async function checkNative(b: Backend, budget: string): Promise<void> {
  await checkBackend(b);
  const js = await createJsBackend({ wasm: false });
  const p = problem(99, 700, 2100, 24, 2, true);
  const a = run(js, p);
  setNativeThreads(1);
  const one = run(b, p);
  setNativeThreads(64);
  const many = run(b, p);
  const what = `budget '${budget}' MiB`;
  assert.ok(Math.abs(one.loss - a.loss) < 1e-5 * a.loss, what);
  assertClose(one.dq, a.dq, 1e-4, `${what}: native vs js dq`);
  assertClose(one.de, a.de, 1e-4, `${what}: native vs js de`);
  assert.equal(one.loss, many.loss, `${what}: loss differs between 1 and many threads`);
  assert.deepEqual(one.dq, many.dq, `${what}: dq differs between 1 and many threads`);
  assert.deepEqual(one.de, many.de, `${what}: de differs between 1 and many threads`);
  // Loss only (no gradients) gives the same loss.
  const lossOnly = b.fullSoftmax({ q: p.q, e: p.e, R: p.R, N: p.N, d: p.d, target: p.target, scale: p.scale, rowWeight: p.w, dq: null, de: null });
  assert.ok(Math.abs(lossOnly - one.loss) <= 1e-6 * one.loss, `${what}: loss without gradients ${lossOnly} vs ${one.loss}`);
  const bad = problem(1, 3, 4, 2, 1, false);
  bad.target[2] = -1;
  assert.throws(() => run(b, bad), /target\[2\] = -1 is outside/);
}
