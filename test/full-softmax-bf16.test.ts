/**
 * The full-catalogue softmax with `precision: 'bf16'` (native AVX512-BF16 kernel, its portable emulation, the
 * recomputing path for large catalogues, and the portable backend) against float64 references written here:
 * bfloat16 rounding from its definition (8 significant bits, ties to even), the softmax cross-entropy of the
 * rounded q and e, and its gradient G = scale·w/Σw·(softmax − onehot) rounded to bf16 before the two products.
 * Also: the results really are the rounded ones (not the fp32 kernel's), stay close to the exact gradient, lower
 * the loss when followed, and do not depend on the thread count.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Backend, FullSoftmaxArgs } from '../src/compute/backend.ts';
import { roundBf16 } from '../src/compute/bf16.ts';
import { createJsBackend } from '../src/compute/js.ts';
import { loadNativeBackend, nativeInfo, setNativeBf16, setNativeThreads } from '../src/compute/native.ts';
import { Rng } from '../src/util/rng.ts';
import { skipWithoutNative } from './helpers/native-required.ts';
import { problem, softmaxReference, type Problem } from './helpers/softmax-problem.ts';

/** bfloat16 rounding from the definition: the nearest value with 8 significant bits, ties to the even one. */
function bf16Ref(x: number): number {
  const f = Math.fround(x);
  if (f === 0 || !Number.isFinite(f)) return f;
  if (Math.abs(f) < 2 ** -126) return f < 0 ? -0 : 0; // subnormal inputs flush to zero, as vcvtneps2bf16
  const ex = Math.floor(Math.log2(Math.abs(f)));
  const ulp = 2 ** (ex - 7);
  const m = f / ulp; // exact: |m| in [128, 256)
  let r = Math.round(m);
  if (Math.abs(m - Math.trunc(m)) === 0.5) r = Math.trunc(m) % 2 === 0 ? Math.trunc(m) : Math.trunc(m) + Math.sign(m);
  return r * ulp;
}

/** Float64 loss and gradients of the definition; `round` rounds q, e and G (bf16) or leaves them (exact). */
function reference(p: Problem, round: boolean): { loss: number; dq: Float64Array; de: Float64Array } {
  return softmaxReference(p, round ? bf16Ref : undefined);
}

function run(b: Backend, p: Problem, precision: 'fp32' | 'bf16'): { loss: number; dq: Float32Array; de: Float32Array } {
  const dq = new Float32Array(p.R * p.d).fill(Number.NaN);
  const de = new Float32Array(p.N * p.d);
  const args: FullSoftmaxArgs = { q: p.q, e: p.e, R: p.R, N: p.N, d: p.d, target: p.target, scale: p.scale, rowWeight: p.w, dq, de, precision };
  return { loss: b.fullSoftmax(args), dq, de };
}

/** Largest |got − want| relative to max |want|. */
function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let maxAbs = 0;
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(want[i]));
    maxDiff = Math.max(maxDiff, Math.abs(got[i] - want[i]));
  }
  return maxDiff / (maxAbs + 1e-30);
}

test('bf16 rounding (src/compute/bf16.ts) matches the definition, ties to even and edge values included', () => {
  const rng = new Rng(5);
  const xs = [1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, -2.71828, 3.14159, 65504, 1e-40, -1e-40, 0, 2 ** -126, 3e38];
  for (let i = 0; i < 2000; i++) xs.push(rng.normal() * 10 ** (rng.int(20) - 10));
  for (const x of xs) {
    const want = bf16Ref(x);
    const got = roundBf16(x);
    assert.ok(Object.is(got, want) || got === want, `roundBf16(${x}) = ${got}, want ${want}`);
  }
  assert.equal(roundBf16(1 + 2 ** -8), 1, 'a tie rounds to the even neighbour');
  assert.equal(roundBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6, 'a tie rounds to the even neighbour (up)');
  assert.ok(Number.isNaN(roundBf16(Number.NaN)));
});

// R, N, d, scale, weights: odd depths (pairs padded), partial panels and chunks, large logits.
const shapes: Array<[number, number, number, number, boolean]> = [
  [1, 1, 1, 1, false],
  [5, 3, 7, 1, true],
  [61, 577, 33, 1, false],
  [203, 1037, 67, 2, true],
  [257, 130, 16, 8, true],
  [40, 300, 64, 1, false],
];

function checkBf16(b: Backend, what: string): void {
  for (const [R, N, d, scale, wt] of shapes) {
    const p = problem(R * 13 + N, R, N, d, scale, wt);
    const want = reference(p, true);
    const exact = reference(p, false);
    const got = run(b, p, 'bf16');
    const tag = `${what} R=${R} N=${N} d=${d}`;
    // The loss is that of the rounded logits (float32 sums of exact products).
    assert.ok(Math.abs(got.loss - want.loss) <= 2e-5 * Math.max(1, Math.abs(want.loss)), `${tag}: loss ${got.loss} vs rounded reference ${want.loss}`);
    // G is rounded from float32 values, the reference's from float64 ones: an element may land one bf16 step
    // apart, hence a tolerance of a few 2^-9.
    assert.ok(relErr(got.dq, want.dq) < 6e-3, `${tag}: dq vs rounded reference, rel ${relErr(got.dq, want.dq)}`);
    assert.ok(relErr(got.de, want.de) < 6e-3, `${tag}: de vs rounded reference, rel ${relErr(got.de, want.de)}`);
    // Close to the exact gradient as well (bf16 is an approximation of it, not something else).
    assert.ok(relErr(got.dq, exact.dq) < 4e-2, `${tag}: dq vs exact, rel ${relErr(got.dq, exact.dq)}`);
    assert.ok(relErr(got.de, exact.de) < 4e-2, `${tag}: de vs exact, rel ${relErr(got.de, exact.de)}`);
  }
  // The rounding really happens: on a problem where rounding moves the loss far more than float32 noise, the
  // result is the rounded one, not the exact one.
  const p = problem(77, 50, 400, 48, 4, false);
  const want = reference(p, true);
  const exact = reference(p, false);
  assert.ok(Math.abs(want.loss - exact.loss) > 2e-5 * exact.loss, 'test set-up: rounding must move the loss');
  const got = run(b, p, 'bf16');
  assert.ok(Math.abs(got.loss - want.loss) < Math.abs(got.loss - exact.loss) / 20, `${what}: bf16 loss ${got.loss} is not the rounded one ${want.loss} (exact ${exact.loss})`);
  // A gradient step along −grad lowers the (exact) loss: fails on a flipped sign or a zero gradient.
  const g = run(b, p, 'bf16');
  const stepped = { ...p, q: p.q.map((x, i) => x - 0.5 * g.dq[i]), e: p.e.map((x, i) => x - 0.5 * g.de[i]) };
  assert.ok(run(b, stepped, 'fp32').loss < run(b, p, 'fp32').loss - 1e-3, `${what}: a bf16 gradient step must lower the loss`);
}

test('portable fullSoftmax, bf16 precision, matches the float64 reference', async () => {
  checkBf16(await createJsBackend({ wasm: false }), 'js');
});

const storeBudgets = ['0', '0.5', ''];

test('native fullSoftmax, bf16 precision: both kernels, both paths, any thread count', async (t) => {
  const b = loadNativeBackend();
  if (skipWithoutNative(t, b !== null)) return;
  const saved = process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB;
  const kernel = nativeInfo()!.bf16Kernel;
  try {
    for (const native of kernel === 'avx512-bf16' ? [true, false] : [false]) {
      assert.equal(setNativeBf16(native), native ? 'avx512-bf16' : 'emulated');
      for (const budget of storeBudgets) {
        process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB = budget;
        const what = `native ${native ? 'avx512-bf16' : 'emulated'} budget '${budget}'`;
        checkBf16(b!, what);
        const p = problem(99, 700, 2100, 24, 2, true);
        setNativeThreads(1);
        const one = run(b!, p, 'bf16');
        setNativeThreads(64);
        const many = run(b!, p, 'bf16');
        assert.equal(one.loss, many.loss, `${what}: loss differs between 1 and many threads`);
        assert.deepEqual(one.dq, many.dq, `${what}: dq differs between 1 and many threads`);
        assert.deepEqual(one.de, many.de, `${what}: de differs between 1 and many threads`);
      }
    }
    if (kernel !== 'avx512-bf16') console.log(`# this CPU has no AVX512-BF16: only the emulated bf16 kernel was checked (${kernel})`);
    // The instruction and the emulation compute the same products from the same rounded values.
    if (kernel === 'avx512-bf16') {
      process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB = '';
      const p = problem(7, 300, 3000, 64, 1, true);
      setNativeBf16(true);
      const hw = run(b!, p, 'bf16');
      setNativeBf16(false);
      const em = run(b!, p, 'bf16');
      assert.ok(Math.abs(hw.loss - em.loss) <= 1e-6 * hw.loss, `vdpbf16ps vs emulated loss ${hw.loss} vs ${em.loss}`);
      assert.ok(relErr(hw.dq, em.dq) < 1e-5 && relErr(hw.de, em.de) < 1e-5, 'vdpbf16ps vs emulated gradients');
    }
  } finally {
    setNativeBf16(true);
    if (saved === undefined) delete process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB;
    else process.env.TOWERLAB_FULL_SOFTMAX_STORE_MIB = saved;
  }
});
