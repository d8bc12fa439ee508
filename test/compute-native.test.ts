/**
 * The native (C++) backend against the float64 reference in test/helpers/reference64.ts, on odd shapes,
 * every transpose combination, masks, weights and edge cases. Without the built addon this test FAILS,
 * unless TOWERLAB_NO_NATIVE=1 says the portable backend is intended, in which case it is skipped.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Backend, ContrastiveArgs } from '../src/compute/backend.ts';
import { loadNativeBackend, nativeInfo, setNativeThreads } from '../src/compute/native.ts';
import { nativeSuiteSkip } from './helpers/native-required.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';
import {
  adam64,
  contrastive64,
  contrastiveLoss64,
  gemm64,
  l2normBackward64,
  l2normForward64,
  linearBackward64,
  linearForward64,
  sparseUpdate64,
  topkRows64,
} from './helpers/reference64.ts';

// The pool's oversubscription guard runs jobs on the calling thread alone for a second at a time on a busy machine,
// which would keep the 2-thread comparisons below from ever using a second thread; off for this file (it only
// trades speed, not results), unless the environment says otherwise. Read once, when the addon's pool starts.
process.env.TOWERLAB_PARALLEL_GUARD ??= '0';
const backend = loadNativeBackend();
const skip = nativeSuiteSkip(backend !== null, 'the native backend tests');

// ---- helpers -------------------------------------------------------------------------------------------

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

function randInt(rng: Rng, n: number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + rng.int(hi - lo);
  return a;
}

function normalizeRows(x: Float32Array, rows: number, dim: number): Float32Array {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[i * dim + j] ** 2;
    const n = Math.sqrt(s) || 1;
    for (let j = 0; j < dim; j++) x[i * dim + j] /= n;
  }
  return x;
}

/** Elementwise |got − want| ≤ atol_i + rtol·|want_i|, reporting the worst offender. */
function assertClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  what: string,
  opts: { rtol?: number; atol?: number; bound?: ArrayLike<number>; boundTol?: number } = {},
): void {
  assert.equal(got.length >= want.length, true, `${what}: length ${got.length} < ${want.length}`);
  const rtol = opts.rtol ?? 1e-5;
  const atol = opts.atol ?? 0;
  let worst = -1;
  let worstRatio = 1;
  for (let i = 0; i < want.length; i++) {
    const g = got[i];
    const w = want[i];
    if (Number.isNaN(g) || Number.isNaN(w)) {
      assert.fail(`${what}[${i}]: got ${g}, want ${w}`);
    }
    if (g === w) continue;
    const tol = atol + rtol * Math.abs(w) + (opts.bound ? (opts.boundTol ?? 1e-5) * opts.bound[i] : 0);
    const ratio = Math.abs(g - w) / tol;
    if (!(ratio <= worstRatio)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  if (worst >= 0) assert.fail(`${what}[${worst}]: got ${got[worst]}, want ${want[worst]} (${worstRatio.toFixed(1)}x the tolerance)`);
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/**
 * Rounding scale of an Adam moment update m' = b·m + (1−b)·g (or g² for the second moment): the sum of the
 * terms' magnitudes, since the result itself can cancel to near zero.
 */
function momentBound(m: Float32Array, g: Float32Array, b: number, square: boolean): Float64Array {
  return Float64Array.from(m, (x, i) => b * Math.abs(x) + (1 - b) * (square ? g[i] * g[i] : Math.abs(g[i])) + 1e-30);
}

/** Runs fn with the addon limited to `n` threads, restoring the previous count. */
function withThreads<T>(n: number, fn: () => T): T {
  const before = nativeInfo()?.threads ?? 1;
  setNativeThreads(n);
  try {
    return fn();
  } finally {
    setNativeThreads(before);
  }
}

// ---- tests ---------------------------------------------------------------------------------------------

describe('native backend', { skip }, () => {
  const be = backend as Backend;

  test('reports itself', () => {
    assert.equal(be.name, 'native');
    const info = nativeInfo()!;
    assert.ok(info.threads >= 1 && info.threads <= info.maxThreads);
    console.log(`# native addon: simd=${info.simd} threads=${info.threads}/${info.maxThreads}`);
  });

  describe('gemm', () => {
    // Shapes chosen to hit every code path: edge tiles (sizes not multiples of 6 / 16), several K blocks
    // (K > 256), M blocks (M > 144), N blocks (N > 4096), and the split-M / split-N / split-K threading.
    const shapes: Array<[number, number, number]> = [
      [1, 1, 1],
      [3, 17, 1],
      [1, 1000, 65],
      [17, 3, 1000],
      [65, 1000, 17],
      [1000, 65, 17],
      [1000, 1, 3],
      [17, 65, 1000], // split K
      [8, 1000, 200], // split N
      [200, 129, 300], // split M, 2 K blocks
      [3, 4100, 5], // two N blocks
      [7, 9, 0], // K = 0: C = beta·C
    ];
    const rng = new Rng(1);
    for (const [M, N, K] of shapes) {
      for (const tA of [false, true]) {
        for (const tB of [false, true]) {
          test(`${M}x${N}x${K} transA=${tA} transB=${tB}`, () => {
            const a = randn(rng, M * K);
            const b = randn(rng, K * N);
            const c0 = randn(rng, M * N);
            for (const [alpha, beta] of [
              [1, 0],
              [0.7, -1.3],
              [-2, 1],
            ]) {
              const c = Float32Array.from(c0);
              if (beta === 0) c.fill(NaN); // beta = 0 must not read C
              be.gemm(tA, tB, M, N, K, alpha, a, b, beta, c);
              const ref = gemm64(tA, tB, M, N, K, alpha, a, b, beta, c0);
              assertClose(c, ref.out, `C (alpha=${alpha}, beta=${beta})`, { rtol: 0, atol: 1e-30, bound: ref.bound, boundTol: 2e-6 * Math.sqrt(K + 4) });
            }
          });
        }
      }
    }

    test('single-threaded path gives the same results', () => {
      const [M, N, K] = [150, 70, 600];
      const a = randn(rng, M * K);
      const b = randn(rng, K * N);
      const c1 = new Float32Array(M * N);
      const c2 = new Float32Array(M * N);
      be.gemm(true, true, M, N, K, 1, a, b, 0, c1);
      withThreads(1, () => be.gemm(true, true, M, N, K, 1, a, b, 0, c2));
      const ref = gemm64(true, true, M, N, K, 1, a, b, 0, c1);
      assertClose(c2, ref.out, 'C (1 thread)', { rtol: 0, atol: 1e-30, bound: ref.bound, boundTol: 1e-4 });
      assertClose(c1, ref.out, 'C (all threads)', { rtol: 0, atol: 1e-30, bound: ref.bound, boundTol: 1e-4 });
    });

    test('rejects short arrays and wrong types with a clear Error', () => {
      const a = new Float32Array(6);
      assert.throws(() => be.gemm(false, false, 2, 3, 4, 1, a, new Float32Array(12), 0, new Float32Array(6)), /gemm: a has 6 elements, needs at least 8/);
      assert.throws(() => be.gemm(false, false, 2, 3, 3, 1, a, new Float32Array(9), 0, new Float32Array(5)), /gemm: c has 5 elements/);
      assert.throws(
        () => be.gemm(false, false, 2, 3, 3, 1, a, new Float64Array(9) as unknown as Float32Array, 0, new Float32Array(6)),
        /gemm: b must be a Float32Array/,
      );
      assert.throws(() => be.gemm(false, false, -1, 3, 3, 1, a, a, 0, a), /gemm: M must be an integer/);
      assert.throws(() => be.gemm(false, false, 2, 3, 3, 1, a, new Float32Array(9), 0, a), /must not overlap/);
    });
  });

  describe('dense layer', () => {
    const rng = new Rng(2);
    for (const [rows, inDim, outDim] of [
      [1, 1, 1],
      [3, 17, 65],
      [1000, 64, 128],
      [1024, 128, 64],
      [65, 3, 17],
    ]) {
      for (const relu of [false, true]) {
        test(`linearForward/Backward ${rows}x${inDim}->${outDim} relu=${relu}`, () => {
          const x = randn(rng, rows * inDim);
          const w = randn(rng, inDim * outDim, 1 / Math.sqrt(inDim));
          const bias = randn(rng, outDim, 0.3);
          const y = new Float32Array(rows * outDim).fill(NaN);
          be.linearForward(x, w, bias, y, rows, inDim, outDim, relu);
          const f = linearForward64(x, w, bias, rows, inDim, outDim, relu);
          assertClose(y, f.y, 'y', { rtol: 0, atol: 1e-30, bound: f.bound, boundTol: 1e-5 });

          const dy0 = randn(rng, rows * outDim);
          const dw0 = randn(rng, inDim * outDim);
          const dbias0 = randn(rng, outDim);
          const dy = Float32Array.from(dy0);
          const dw = Float32Array.from(dw0);
          const dbias = Float32Array.from(dbias0);
          const dx = new Float32Array(rows * inDim).fill(NaN);
          be.linearBackward(x, w, y, dy, dx, dw, dbias, rows, inDim, outDim, relu);
          const r = linearBackward64(x, w, y, dy0, dw0, dbias0, rows, inDim, outDim, relu);
          assertClose(dy, r.dy, 'dy (ReLU-masked in place)', { rtol: 0 });
          assertClose(dw, r.dw, 'dw', { rtol: 0, atol: 1e-30, bound: r.dwBound, boundTol: 1e-5 * Math.sqrt(rows) });
          assertClose(dbias, r.dbias, 'dbias', { rtol: 0, atol: 1e-30, bound: r.dbiasBound, boundTol: 1e-5 * Math.sqrt(rows) });
          assertClose(dx, r.dx, 'dx', { rtol: 0, atol: 1e-30, bound: r.dxBound, boundTol: 1e-5 });

          // dx = null skips the input gradient and still accumulates dw, dbias.
          const dw2 = Float32Array.from(dw0);
          const dbias2 = Float32Array.from(dbias0);
          be.linearBackward(x, w, y, Float32Array.from(dy0), null, dw2, dbias2, rows, inDim, outDim, relu);
          assertClose(dw2, r.dw, 'dw (dx = null)', { rtol: 0, atol: 1e-30, bound: r.dwBound, boundTol: 1e-5 * Math.sqrt(rows) });
        });
      }
    }
  });

  describe('l2norm', () => {
    const rng = new Rng(3);
    for (const [rows, dim] of [
      [1, 1],
      [3, 17],
      [1000, 64],
      [17, 65],
    ]) {
      test(`forward/backward ${rows}x${dim}`, () => {
        const x = randn(rng, rows * dim);
        x.fill(0, 0, dim); // a zero row: norm clamps to 1e-12
        const y = new Float32Array(rows * dim);
        const norms = new Float32Array(rows);
        be.l2normForward(x, y, norms, rows, dim);
        const f = l2normForward64(x, rows, dim);
        assertClose(y, f.y, 'y', { rtol: 1e-5, atol: 1e-7 });
        assertClose(norms, f.norms, 'norms', { rtol: 1e-5 });

        const dy = randn(rng, rows * dim);
        const dx = new Float32Array(rows * dim);
        be.l2normBackward(y, norms, dy, dx, rows, dim);
        const want = l2normBackward64(y, norms, dy, rows, dim);
        const scale = maxAbs(want.subarray(dim)) || 1;
        // Row 0 divides by 1e-12: compare it relatively; the rest against the typical magnitude.
        assertClose(dx.subarray(0, dim), want.subarray(0, dim), 'dx (zero row)', { rtol: 1e-5 });
        assertClose(dx.subarray(dim), want.subarray(dim), 'dx', { rtol: 1e-5, atol: 1e-6 * scale });
        // dx may alias dy.
        be.l2normBackward(y, norms, dy, dy, rows, dim);
        assertClose(dy, dx, 'dx (aliased with dy)', { rtol: 0 });
      });
    }
  });

  test('gatherRows copies rows exactly and rejects bad ids', () => {
    const rng = new Rng(4);
    for (const [rows, dim, n] of [
      [1, 1, 1],
      [6040, 64, 1024],
      [17, 65, 3],
      [5, 3, 0],
    ]) {
      const table = randn(rng, rows * dim);
      const ids = randInt(rng, n, 0, rows);
      const out = new Float32Array(n * dim);
      be.gatherRows(table, ids, out, dim);
      for (let r = 0; r < n; r++) assert.deepEqual(out.subarray(r * dim, (r + 1) * dim), table.subarray(ids[r] * dim, (ids[r] + 1) * dim));
    }
    const table = new Float32Array(10 * 4);
    assert.throws(() => be.gatherRows(table, Int32Array.of(0, 10), new Float32Array(8), 4), /ids\[1\] = 10 is outside \[0, 10\)/);
    assert.throws(() => be.gatherRows(table, Int32Array.of(-1), new Float32Array(4), 4), /ids\[0\] = -1/);
    assert.throws(() => be.gatherRows(table, Int32Array.of(1, 2), new Float32Array(7), 4), /out has 7 elements/);
  });

  test('adam', () => {
    const rng = new Rng(5);
    for (const n of [1, 3, 17, 65, 1000, 100003]) {
      for (const step of [1, 2, 1000]) {
        const p = randn(rng, n);
        const g = randn(rng, n, 0.1);
        const m = randn(rng, n, 0.01);
        const v = Float32Array.from(randn(rng, n, 0.01), (x) => x * x);
        const want = adam64(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, step);
        const mBound = momentBound(m, g, 0.9, false);
        const vBound = momentBound(v, g, 0.999, true);
        const gBefore = Float32Array.from(g);
        be.adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, step);
        assertClose(m, want.m, `m (n=${n}, step=${step})`, { rtol: 0, atol: 1e-30, bound: mBound, boundTol: 1e-6 });
        assertClose(v, want.v, `v (n=${n}, step=${step})`, { rtol: 0, atol: 1e-30, bound: vBound, boundTol: 1e-6 });
        assertClose(p, want.p, `p (n=${n}, step=${step})`, { rtol: 1e-6, atol: 1e-7 });
        assert.deepEqual(g, gBefore, 'g untouched');
      }
    }
  });

  describe('sparseUpdate', () => {
    const rng = new Rng(6);
    for (const kind of ['adagrad', 'lazyadam'] as const) {
      for (const [rows, dim, n] of [
        [1, 1, 1],
        [6040, 64, 1000],
        [17, 65, 3],
        [10, 3, 0],
      ]) {
        test(`${kind} ${rows}x${dim}, ${n} rows`, () => {
          const table = randn(rng, rows * dim);
          // Unique ids: a random permutation prefix.
          const perm = Array.from({ length: rows }, (_, i) => i);
          for (let i = rows - 1; i > 0; i--) {
            const j = rng.int(i + 1);
            [perm[i], perm[j]] = [perm[j], perm[i]];
          }
          const ids = Int32Array.from(perm.slice(0, n));
          const grads = randn(rng, n * dim, 0.1);
          const s1 = kind === 'adagrad' ? Float32Array.from(randn(rng, rows), Math.abs) : randn(rng, rows * dim, 0.01);
          const s2 = kind === 'adagrad' ? null : Float32Array.from(randn(rng, rows * dim, 0.01), (x) => x * x);
          const step = 7;
          const want = sparseUpdate64(kind, table, s1, s2, ids, grads, n, dim, 0.05, 0.9, 0.999, 1e-8, step);
          // Moment bounds per element (rows not touched keep their values exactly).
          const g0 = new Float32Array(rows * dim);
          for (let r = 0; r < n; r++) g0.set(grads.subarray(r * dim, (r + 1) * dim), ids[r] * dim);
          const s1Bound = kind === 'adagrad' ? null : momentBound(s1, g0, 0.9, false);
          const s2Bound = s2 ? momentBound(s2, g0, 0.999, true) : null;
          be.sparseUpdate(kind, table, s1, s2, ids, grads, n, dim, 0.05, 0.9, 0.999, 1e-8, step);
          assertClose(table, want.table, 'table', { rtol: 1e-6, atol: 1e-7 });
          if (s1Bound) assertClose(s1, want.state1, 'state1', { rtol: 0, atol: 1e-30, bound: s1Bound, boundTol: 1e-6 });
          else assertClose(s1, want.state1, 'state1', { rtol: 1e-6 });
          if (s2) assertClose(s2, want.state2!, 'state2', { rtol: 0, atol: 1e-30, bound: s2Bound!, boundTol: 1e-6 });
        });
      }
    }
    test('rejects out-of-range ids and short state', () => {
      const table = new Float32Array(8 * 4);
      const grads = new Float32Array(4);
      assert.throws(
        () => be.sparseUpdate('adagrad', table, new Float32Array(8), null, Int32Array.of(8), grads, 1, 4, 0.1, 0.9, 0.999, 1e-8, 1),
        /ids\[0\] = 8 is outside \[0, 8\)/,
      );
      assert.throws(
        () => be.sparseUpdate('lazyadam', table, new Float32Array(32), new Float32Array(31), Int32Array.of(1), grads, 1, 4, 0.1, 0.9, 0.999, 1e-8, 1),
        /state2 has 31 elements, needs at least 32/,
      );
      assert.throws(
        () => be.sparseUpdate('lazyadam', table, new Float32Array(32), null, Int32Array.of(1), grads, 1, 4, 0.1, 0.9, 0.999, 1e-8, 1),
        /state2 must be a Float32Array/,
      );
    });
  });

  describe('contrastive', () => {
    interface Case {
      name: string;
      B: number;
      N: number;
      d: number;
      scale?: number;
      bias?: boolean;
      masks?: number;
      fn?: { absThreshold?: number; margin?: number };
      weights?: boolean;
      grads?: 'both' | 'dq' | 'dc' | 'none';
      /** Integer-valued q, c (exact float32 similarities) so false-negative thresholds never tie. */
      exact?: boolean;
      unnormalized?: boolean;
    }
    const cases: Case[] = [
      { name: 'B=N=1', B: 1, N: 1, d: 1 },
      { name: 'tiny', B: 3, N: 17, d: 5, bias: true, masks: 2, weights: true },
      { name: 'N != B, odd d', B: 17, N: 65, d: 3, bias: true, masks: 1 },
      { name: 'N > B, several tiles and threads', B: 65, N: 1000, d: 17, bias: true, masks: 2, weights: true },
      { name: 'N < B', B: 100, N: 37, d: 64, masks: 2 },
      { name: 'in-batch 1000', B: 1000, N: 1000, d: 64, scale: 20, bias: true, masks: 2, weights: true },
      { name: 'fnMask absThreshold', B: 65, N: 300, d: 16, fn: { absThreshold: 2.5 }, masks: 1, exact: true, scale: 0.25 },
      { name: 'fnMask margin', B: 65, N: 300, d: 16, fn: { margin: 1.5 }, exact: true, scale: 0.25, bias: true },
      { name: 'fnMask both + masks + weights', B: 130, N: 1000, d: 16, fn: { absThreshold: 3.5, margin: -0.5 }, masks: 2, weights: true, exact: true, scale: 0.25 },
      { name: 'fnMask disabled by +Infinity', B: 17, N: 65, d: 8, fn: { absThreshold: Infinity, margin: Infinity }, masks: 1 },
      { name: 'large logits (stability)', B: 40, N: 200, d: 8, scale: 50, unnormalized: true, masks: 1 },
      { name: 'dq only', B: 65, N: 1000, d: 17, masks: 1, grads: 'dq' },
      { name: 'dc only', B: 65, N: 1000, d: 17, masks: 1, grads: 'dc', weights: true },
      { name: 'loss only', B: 65, N: 1000, d: 17, masks: 2, grads: 'none', fn: { absThreshold: 0.5 } },
    ];
    let seed = 100;
    for (const cs of cases) {
      test(cs.name, () => {
        const rng = new Rng(seed++);
        const { B, N, d } = cs;
        let q: Float32Array;
        let c: Float32Array;
        if (cs.exact) {
          q = Float32Array.from({ length: B * d }, () => rng.int(5) - 2);
          c = Float32Array.from({ length: N * d }, () => rng.int(5) - 2);
        } else if (cs.unnormalized) {
          q = randn(rng, B * d);
          c = randn(rng, N * d);
        } else {
          q = normalizeRows(randn(rng, B * d), B, d);
          c = normalizeRows(randn(rng, N * d), N, d);
        }
        const pos = Int32Array.from({ length: B }, (_, i) => (N >= B ? i : rng.int(N)));
        const masks: ContrastiveArgs['masks'] = [];
        for (let m = 0; m < (cs.masks ?? 0); m++) {
          // Few distinct keys so collisions are common; some rows opt out with −1.
          const colKey = randInt(rng, N, 0, 8);
          const rowKey = Int32Array.from({ length: B }, (_, i) => (rng.next() < 0.15 ? -1 : m === 0 ? colKey[pos[i]] : rng.int(8)));
          masks.push({ rowKey, colKey });
        }
        const grads = cs.grads ?? 'both';
        const args: ContrastiveArgs = {
          q,
          c,
          B,
          N,
          d,
          pos,
          scale: cs.scale ?? 10,
          colBias: cs.bias ? randn(rng, N, 0.5) : null,
          masks,
          fnMask: cs.fn ?? null,
          rowWeight: cs.weights ? Float32Array.from({ length: B }, () => rng.int(5) * 0.5 + 0.5) : null,
          dq: grads === 'both' || grads === 'dq' ? new Float32Array(B * d).fill(NaN) : null,
          dc: grads === 'both' || grads === 'dc' ? new Float32Array(N * d).fill(NaN) : null,
          maskedCount: new Int32Array(B).fill(-7),
        };
        const want = contrastive64(args);
        const loss = be.contrastive(args);
        assert.ok(Math.abs(loss - want.loss) <= 2e-5 * Math.abs(want.loss) + 1e-6, `loss ${loss} vs ${want.loss}`);
        assert.deepEqual(args.maskedCount, want.maskedCount, 'maskedCount');
        if (cs.masks || cs.fn?.absThreshold !== undefined) {
          // Guard against a vacuous test: the masks must actually remove something.
          const total = want.maskedCount.reduce((s, x) => s + x, 0);
          if (cs.fn?.absThreshold !== Infinity) assert.ok(total > 0, 'case masks nothing');
        }
        if (args.dq) assertClose(args.dq, want.dq, 'dq', { rtol: 1e-4, atol: 1e-5 * maxAbs(want.dq) });
        if (args.dc) assertClose(args.dc, want.dc, 'dc', { rtol: 1e-4, atol: 1e-5 * maxAbs(want.dc) });

        // Same answer on one thread.
        if (args.dq || args.dc) {
          const dq1 = args.dq ? new Float32Array(B * d) : null;
          const dc1 = args.dc ? new Float32Array(N * d) : null;
          const loss1 = withThreads(1, () => be.contrastive({ ...args, dq: dq1, dc: dc1 }));
          assert.ok(Math.abs(loss1 - want.loss) <= 2e-5 * Math.abs(want.loss) + 1e-6, `1-thread loss ${loss1} vs ${want.loss}`);
          if (dq1) assertClose(dq1, want.dq, 'dq (1 thread)', { rtol: 1e-4, atol: 1e-5 * maxAbs(want.dq) });
          if (dc1) assertClose(dc1, want.dc, 'dc (1 thread)', { rtol: 1e-4, atol: 1e-5 * maxAbs(want.dc) });
        }
      });
    }

    test('gradients match finite differences of the float64 loss', () => {
      const rng = new Rng(7);
      const B = 3;
      const N = 5;
      const d = 4;
      const q = randn(rng, B * d, 0.5);
      const c = randn(rng, N * d, 0.5);
      const args: ContrastiveArgs = {
        q,
        c,
        B,
        N,
        d,
        pos: Int32Array.of(0, 3, 1),
        scale: 3,
        colBias: Float32Array.of(0.1, -0.4, 0.3, 0, 0.2),
        // Row 0 masks column 2 (same key); row 1 opts out (−1); row 2 masks column 4 via the second pair.
        masks: [
          { rowKey: Int32Array.of(7, -1, 5), colKey: Int32Array.of(1, 2, 7, 3, 9) },
          { rowKey: Int32Array.of(0, 0, 4), colKey: Int32Array.of(1, 1, 1, 1, 4) },
        ],
        rowWeight: Float32Array.of(1, 2, 0.5),
        dq: new Float32Array(B * d),
        dc: new Float32Array(N * d),
        maskedCount: new Int32Array(B),
      };
      be.contrastive(args);
      assert.deepEqual(args.maskedCount, Int32Array.of(1, 0, 1));
      const ref = contrastive64(args);
      const h = 1e-6;
      for (const [name, x, analytic, native] of [
        ['dq', q, ref.dq, args.dq!],
        ['dc', c, ref.dc, args.dc!],
      ] as const) {
        const base = Float64Array.from(x);
        for (let k = 0; k < x.length; k++) {
          const plus = Float64Array.from(base);
          const minus = Float64Array.from(base);
          plus[k] += h;
          minus[k] -= h;
          const qq = name === 'dq' ? [plus, minus] : [q, q];
          const cc = name === 'dc' ? [plus, minus] : [c, c];
          const fd = (contrastiveLoss64(args, qq[0], cc[0]) - contrastiveLoss64(args, qq[1], cc[1])) / (2 * h);
          assert.ok(Math.abs(analytic[k] - fd) <= 1e-6 + 1e-5 * Math.abs(fd), `reference ${name}[${k}] ${analytic[k]} vs finite difference ${fd}`);
          assert.ok(Math.abs(native[k] - fd) <= 1e-5 + 1e-4 * Math.abs(fd), `native ${name}[${k}] ${native[k]} vs finite difference ${fd}`);
        }
      }
    });

    test('all-zero row weights give zero loss and gradients', () => {
      const rng = new Rng(8);
      const [B, N, d] = [5, 7, 3];
      const dq = new Float32Array(B * d).fill(NaN);
      const dc = new Float32Array(N * d).fill(NaN);
      const loss = be.contrastive({
        q: randn(rng, B * d),
        c: randn(rng, N * d),
        B,
        N,
        d,
        pos: Int32Array.of(0, 1, 2, 3, 4),
        scale: 1,
        colBias: null,
        masks: [],
        rowWeight: new Float32Array(B),
        dq,
        dc,
      });
      assert.equal(loss, 0);
      assert.ok(dq.every((x) => x === 0) && dc.every((x) => x === 0));
    });

    test('rejects bad positions, short arrays and too many masks', () => {
      const base: ContrastiveArgs = {
        q: new Float32Array(6),
        c: new Float32Array(9),
        B: 2,
        N: 3,
        d: 3,
        pos: Int32Array.of(0, 3),
        scale: 1,
        colBias: null,
        masks: [],
        dq: null,
        dc: null,
      };
      assert.throws(() => be.contrastive(base), /pos\[1\] = 3 is outside \[0, N=3\)/);
      assert.throws(() => be.contrastive({ ...base, pos: Int32Array.of(0, 1), colBias: new Float32Array(2) }), /colBias has 2 elements, needs at least 3/);
      assert.throws(() => be.contrastive({ ...base, pos: Int32Array.of(0, 1), dc: new Float32Array(8) }), /dc has 8 elements/);
      const m = { rowKey: new Int32Array(2), colKey: new Int32Array(3) };
      assert.throws(() => be.contrastive({ ...base, pos: Int32Array.of(0, 1), masks: [m, m, m] }), /at most 2 mask pairs/);
      assert.throws(
        () => be.contrastive({ ...base, pos: Int32Array.of(0, 1), masks: [{ rowKey: new Int32Array(2), colKey: new Int32Array(2) }] }),
        /masks\[0\]\.colKey has 2 elements/,
      );
    });
  });

  describe('topkRows', () => {
    const rng = new Rng(9);
    const cases: Array<[number, number, number]> = [
      [1, 1, 1],
      [3, 17, 5],
      [17, 1000, 10],
      [65, 65, 70], // k > cols
      [200, 3706, 100],
      [5, 3, 0],
    ];
    for (const [rows, cols, k] of cases) {
      test(`${rows}x${cols}, k=${k}, with ties and -Infinity`, () => {
        // Few distinct levels make ties common; about 20% −Infinity (as masked scores are), one row all −Infinity.
        const scores = Float32Array.from({ length: rows * cols }, () => (rng.next() < 0.2 ? -Infinity : rng.int(12) * 0.25 - 1));
        if (rows > 1) scores.fill(-Infinity, cols, 2 * cols);
        const idx = new Int32Array(rows * k).fill(123);
        const val = new Float32Array(rows * k).fill(123);
        be.topkRows(scores, rows, cols, k, idx, val);
        const want = topkRows64(scores, rows, cols, k);
        assert.deepEqual(idx, want.idx);
        assert.deepEqual(Float64Array.from(val), want.val);
      });
    }
    test('distinct random scores', () => {
      const [rows, cols, k] = [64, 5000, 20];
      const scores = randn(rng, rows * cols);
      const idx = new Int32Array(rows * k);
      const val = new Float32Array(rows * k);
      be.topkRows(scores, rows, cols, k, idx, val);
      const want = topkRows64(scores, rows, cols, k);
      assert.deepEqual(idx, want.idx);
    });
  });
});

// ---- determinism across thread counts ------------------------------------------------------------------

type Out = Float32Array | Int32Array | number;

/** Bit-for-bit equality (so −0 vs 0 and NaN payloads count), naming the first differing element. */
function assertSameBits(got: Out, want: Out, what: string): void {
  if (typeof want === 'number' || typeof got === 'number') {
    assert.ok(Object.is(got, want), `${what}: ${String(got)} !== ${String(want)}`);
    return;
  }
  assert.equal(got.length, want.length, `${what}: length`);
  const g = new Int32Array(got.buffer, got.byteOffset, got.length);
  const w = new Int32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < w.length; i++) {
    if (g[i] !== w[i]) assert.fail(`${what}[${i}]: ${got[i]} on 2 threads vs ${want[i]} on 1 thread (not bit-identical)`);
  }
}

/** Pieces of work (ranges, chunks) the pool's second thread (tid 1) has computed so far (native/pool.cc). */
function secondThreadTasks(): number {
  return nativeInfo()?.threadTasks?.[1] ?? 0;
}

describe('native kernels give bit-identical results on 1 and 2 threads', { skip }, () => {
  const be = backend as Backend;
  // 2-thread runs per case (the chunk-to-thread assignment varies from run to run). On a busy machine the pool
  // may leave a job to the caller (a worker wakes too late, or the oversubscription guard runs jobs alone for a
  // second), so a case goes on, up to MAX_RUNS, until the second thread has computed at least one piece of it;
  // a kernel shape where it never did, in any variant, fails: it would only have compared 1-thread runs.
  const REPEATS = 3;
  const MAX_RUNS = 2000;
  // Per kernel shape (a gemm shape's eight transpose/beta variants form one group): did the second thread compute
  // in at least one variant? On a 2-core machine shared with other jobs the worker sometimes never gets a core
  // for a tiny split (it then leaves the job to the caller), so single variants may go unshared; a whole shape may not.
  const shared = new Map<string, boolean>();
  const unshared: string[] = [];
  let casesRun = 0;
  test('setup: the pool has a second thread', () => {
    assert.ok((nativeInfo()?.maxThreads ?? 1) >= 2, `the pool has ${nativeInfo()?.maxThreads} thread(s); set TOWERLAB_THREADS=2 or more`);
    assert.ok(Array.isArray(nativeInfo()?.threadTasks), 'the addon reports per-thread task counts');
  });

  /** Runs `run` (fresh outputs from fixed inputs each call) on 1 thread, then several times on 2 threads. */
  function same(name: string, run: () => Record<string, Out>): void {
    casesRun++;
    const want = withThreads(1, run);
    const tasks0 = secondThreadTasks();
    for (let r = 0; r < MAX_RUNS && (r < REPEATS || secondThreadTasks() === tasks0); r++) {
      const got = withThreads(2, run);
      for (const k of Object.keys(want)) assertSameBits(got[k], want[k], `${k} (2-thread run ${r + 1})`);
    }
    const group = name.replace(/ tA=.*$/, '');
    const did = secondThreadTasks() !== tasks0;
    if (!did) unshared.push(name);
    shared.set(group, (shared.get(group) ?? false) || did);
  }

  // Shapes that take each GEMM split: split M, split N and split K (the fixed-chunk reduction), and the
  // two-tower step's shapes at B = 1024 (bench/kernels.ts).
  const gemmShapes: Array<[number, number, number]> = [
    [1024, 1024, 64],
    [1024, 64, 1024],
    [64, 128, 1024],
    [128, 64, 1024],
    [150, 70, 600],
    [17, 65, 1000],
    [8, 1000, 200],
    [1024, 64, 128],
  ];
  for (const [M, N, K] of gemmShapes) {
    test(`gemm ${M}x${N}x${K}, all transposes`, () => {
      const rng = new Rng(M * 7 + N * 3 + K);
      const a = randn(rng, M * K);
      const b = randn(rng, K * N);
      const c0 = randn(rng, M * N);
      for (const tA of [false, true])
        for (const tB of [false, true])
          for (const [alpha, beta] of [
            [1, 0],
            [0.7, -1.3],
          ])
            same(`gemm ${M}x${N}x${K} tA=${tA} tB=${tB} beta=${beta}`, () => {
              const c = Float32Array.from(c0);
              be.gemm(tA, tB, M, N, K, alpha, a, b, beta, c);
              return { [`C tA=${tA} tB=${tB} alpha=${alpha} beta=${beta}`]: c };
            });
    });
  }

  for (const [rows, inDim, outDim, relu] of [
    [1024, 128, 64, true],
    [1024, 64, 128, false],
    [1000, 64, 128, true],
    [4096, 64, 64, true],
  ] as Array<[number, number, number, boolean]>) {
    test(`linearForward/Backward ${rows}x${inDim}->${outDim} relu=${relu}`, () => {
      const rng = new Rng(rows + inDim + outDim);
      const x = randn(rng, rows * inDim);
      const w = randn(rng, inDim * outDim, 1 / Math.sqrt(inDim));
      const bias = randn(rng, outDim, 0.3);
      const dy0 = randn(rng, rows * outDim);
      const dw0 = randn(rng, inDim * outDim, 0.1);
      const dbias0 = randn(rng, outDim, 0.1);
      same(`linear ${rows}x${inDim}->${outDim}`, () => {
        const y = new Float32Array(rows * outDim);
        be.linearForward(x, w, bias, y, rows, inDim, outDim, relu);
        const dy = Float32Array.from(dy0);
        const dx = new Float32Array(rows * inDim);
        const dw = Float32Array.from(dw0);
        const dbias = Float32Array.from(dbias0);
        be.linearBackward(x, w, y, dy, dx, dw, dbias, rows, inDim, outDim, relu);
        return { y, dy, dx, dw, dbias };
      });
    });
  }

  test('l2normForward/Backward, gatherRows, adam, topkRows', () => {
    const rng = new Rng(77);
    for (const [rows, dim] of [
      [4000, 64],
      [3001, 37],
    ]) {
      const x = randn(rng, rows * dim);
      const dy0 = randn(rng, rows * dim);
      same(`l2norm ${rows}x${dim}`, () => {
        const y = new Float32Array(rows * dim);
        const norms = new Float32Array(rows);
        be.l2normForward(x, y, norms, rows, dim);
        const dx = new Float32Array(rows * dim);
        be.l2normBackward(y, norms, dy0, dx, rows, dim);
        return { y, norms, dx };
      });
    }
    const table = randn(rng, 3000 * 64);
    const ids = randInt(rng, 20000, 0, 3000);
    same('gatherRows', () => {
      const out = new Float32Array(ids.length * 64);
      be.gatherRows(table, ids, out, 64);
      return { out };
    });
    const n = 100003; // not a multiple of the SIMD width: a scalar tail
    const p0 = randn(rng, n);
    const g = randn(rng, n);
    const m0 = randn(rng, n, 0.1);
    const v0 = Float32Array.from(randn(rng, n, 0.1), (t) => t * t);
    same('adam', () => {
      const p = Float32Array.from(p0);
      const m = Float32Array.from(m0);
      const v = Float32Array.from(v0);
      be.adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 7);
      return { p, m, v };
    });
    const [rows, cols, k] = [300, 3706, 100];
    const scores = randn(rng, rows * cols);
    same('topkRows', () => {
      const idx = new Int32Array(rows * k);
      const val = new Float32Array(rows * k);
      be.topkRows(scores, rows, cols, k, idx, val);
      return { idx, val };
    });
  });

  const contrastiveCases: Array<{ name: string; B: number; N: number; d: number; grads: 'both' | 'dq' | 'dc'; full?: boolean }> = [
    { name: 'in-batch B=N=1024, d=64, logQ + 2 masks + weights + fnMask', B: 1024, N: 1024, d: 64, grads: 'both', full: true },
    { name: 'B=N=2048, d=64 (8 chunks of 4 tiles)', B: 2048, N: 2048, d: 64, grads: 'both' },
    { name: 'sampled B=1000, N=3000, d=32, dc only', B: 1000, N: 3000, d: 32, grads: 'dc', full: true },
    { name: 'B=700, N=1100, d=17 (odd sizes), dq only', B: 700, N: 1100, d: 17, grads: 'dq' },
    { name: 'small B=N=300, d=16 (2 chunks)', B: 300, N: 300, d: 16, grads: 'both', full: true },
  ];
  for (const cs of contrastiveCases) {
    test(`contrastive ${cs.name}`, () => {
      const { B, N, d } = cs;
      const rng = new Rng(B + N + d);
      const q = normalizeRows(randn(rng, B * d), B, d);
      const c = normalizeRows(randn(rng, N * d), N, d);
      const pos = Int32Array.from({ length: B }, (_, i) => (N >= B ? i : rng.int(N)));
      const colKey = randInt(rng, N, 0, 50);
      const args: ContrastiveArgs = {
        q,
        c,
        B,
        N,
        d,
        pos,
        scale: 20,
        colBias: cs.full ? randn(rng, N, 0.5) : null,
        masks: cs.full
          ? [
              { rowKey: Int32Array.from(pos, (p) => colKey[p]), colKey },
              { rowKey: randInt(rng, B, -1, 30), colKey: randInt(rng, N, 0, 30) },
            ]
          : [],
        fnMask: cs.full ? { margin: 0.05 } : null,
        rowWeight: cs.full ? Float32Array.from({ length: B }, () => rng.int(4) * 0.5 + 0.5) : null,
        dq: null,
        dc: null,
      };
      same(`contrastive ${cs.name}`, () => {
        const dq = cs.grads !== 'dc' ? new Float32Array(B * d).fill(NaN) : null;
        const dc = cs.grads !== 'dq' ? new Float32Array(N * d).fill(NaN) : null;
        const maskedCount = new Int32Array(B);
        const loss = be.contrastive({ ...args, dq, dc, maskedCount });
        const out: Record<string, Out> = { loss, maskedCount };
        if (dq) out.dq = dq;
        if (dc) out.dc = dc;
        return out;
      });
    });
  }

  test('training steps (towers with MLPs, symmetric in-batch loss with logQ and masks) are reproducible', () => {
    const recipe = parseRecipe({
      temperature: 0.05,
      sources: [{ type: 'in-batch' }],
      corrections: { maskSameItem: true, maskSameUser: true, logQ: { estimator: 'train-frequency' } },
      loss: { symmetric: true },
    });
    const [numUsers, numItems, B, steps] = [3000, 2000, 1024, 3];
    const data = new Rng(5);
    const batches = Array.from({ length: steps }, () => ({
      users: randInt(data, B, 0, numUsers),
      // Skewed item draws, so accidental hits (masked columns) and logQ both matter.
      items: Int32Array.from({ length: B }, () => Math.floor(numItems * data.next() ** 2)),
    }));
    const trainItems = Int32Array.from(batches.flatMap((b) => Array.from(b.items)));
    const train = (): Record<string, Out> => {
      const model = new TwoTowerModel({
        user: { vocabSize: numUsers, idDim: 64, features: [], mlp: [128, 64] },
        item: { vocabSize: numItems, idDim: 64, features: [], mlp: [128, 64] },
        sparseOptimizer: 'adagrad',
        sparseLr: 0.05,
        denseLr: 0.01,
        seed: 3,
      });
      model.init();
      const set = buildSources(recipe, { numItems, trainItems, dim: model.dim });
      const step = new TrainStep(be, model, recipe, set);
      const out: Record<string, Out> = {};
      batches.forEach((b, k) => {
        out[`loss step ${k + 1}`] = step.run(b.users, b.items, new Rng(100 + k)).loss;
      });
      for (const [name, t] of model.tensors(true)) out[name] = Float32Array.from(t);
      return out;
    };
    same('training steps', train);
  });

  test('every 2-thread comparison had the second thread compute part of the work', () => {
    assert.ok(casesRun > 0);
    if (unshared.length) console.log(`# no second-thread work in ${MAX_RUNS} runs of these variants (busy machine): ${unshared.join('; ')}`);
    const never = [...shared].filter(([, did]) => !did).map(([g]) => g);
    assert.deepEqual(never, [], `the second thread computed nothing in any variant of: ${never.join('; ')}`);
  });
});
