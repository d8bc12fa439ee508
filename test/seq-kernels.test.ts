/**
 * The transformer-block kernels of the Backend (layer norm, dropout, attention over packed sequences) on every
 * backend: forward against float64 references written here from the definitions, backward against central
 * finite differences of those references, dropout masks against the documented xorshift32 stream; the row kernels
 * of the step (duplicate-row merging, BCE/BPR pairwise losses) likewise; and on the native addon, bit-identical
 * results on 1 and 2 threads.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { AttentionArgs, Backend } from '../src/compute/backend.ts';
import { Rng } from '../src/util/rng.ts';
import { testBackends } from './helpers/backends.ts';
import { nativeSuiteSkip, skipWithoutNative } from './helpers/native-required.ts';

// The pool's oversubscription guard would keep the 2-thread comparisons from using a second thread on a busy
// machine (it trades speed only); off for this file. Read once, when the addon's pool starts.
process.env.TOWERLAB_PARALLEL_GUARD ??= '0';
const { loadNativeBackend, nativeInfo, setNativeThreads } = await import('../src/compute/native.ts');

const randn = (rng: Rng, n: number, scale = 1, shift = 0) => Float32Array.from({ length: n }, () => shift + scale * rng.normal());

// ---- float64 references (from the definitions in src/compute/backend.ts) --------------------------------

function layerNorm64(x: ArrayLike<number>, g: ArrayLike<number>, b: ArrayLike<number>, rows: number, d: number, eps: number): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let k = 0; k < d; k++) mu += x[r * d + k];
    mu /= d;
    let v = 0;
    for (let k = 0; k < d; k++) v += (x[r * d + k] - mu) ** 2;
    v /= d;
    const sd = Math.sqrt(v + eps);
    for (let k = 0; k < d; k++) y[r * d + k] = (g[k] * (x[r * d + k] - mu)) / sd + b[k];
  }
  return y;
}

/** Keep mask of the xorshift32 stream (x ^= x<<13, x ^= x>>>17, x ^= x<<5 on uint32; low half, then high half). */
function mask64(n: number, p: number, seed: number): Uint8Array {
  const thr = Math.round(p * 65536);
  const m = new Uint8Array(n);
  let z = seed >>> 0;
  for (let i = 0; i < n; i += 2) {
    z = (z ^ (z << 13)) >>> 0;
    z = (z ^ (z >>> 17)) >>> 0;
    z = (z ^ (z << 5)) >>> 0;
    m[i] = z % 65536 >= thr ? 1 : 0;
    if (i + 1 < n) m[i + 1] = Math.floor(z / 65536) >= thr ? 1 : 0;
  }
  return m;
}

interface Geometry {
  offsets: Int32Array;
  pOff: Int32Array;
  H: number;
  dh: number;
  causal: boolean;
}

function geometry(lengths: number[], H: number, dh: number, causal: boolean): Geometry {
  const offsets = new Int32Array(lengths.length + 1);
  const pOff = new Int32Array(lengths.length + 1);
  lengths.forEach((T, s) => {
    offsets[s + 1] = offsets[s] + T;
    pOff[s + 1] = pOff[s] + H * T * T;
  });
  return { offsets, pOff, H, dh, causal };
}

/** O = dropout(softmax(Q Kᵀ/√dh, masked)) V per sequence and head, in float64; mask over the P layout or null. */
function attention64(g: Geometry, Q: ArrayLike<number>, K: ArrayLike<number>, V: ArrayLike<number>, mask: Uint8Array | null, p: number): { O: Float64Array; P: Float64Array } {
  const { offsets, pOff, H, dh, causal } = g;
  const n = offsets.length - 1;
  const D = H * dh;
  const O = new Float64Array(offsets[n] * D);
  const P = new Float64Array(pOff[n]);
  for (let s = 0; s < n; s++) {
    const t0 = offsets[s];
    const T = offsets[s + 1] - t0;
    for (let h = 0; h < H; h++) {
      const blk = pOff[s] + h * T * T;
      for (let i = 0; i < T; i++) {
        const last = causal ? i : T - 1;
        const sc: number[] = [];
        for (let j = 0; j <= last; j++) {
          let dot = 0;
          for (let k = 0; k < dh; k++) dot += Q[(t0 + i) * D + h * dh + k] * K[(t0 + j) * D + h * dh + k];
          sc.push(dot / Math.sqrt(dh));
        }
        const m = Math.max(...sc);
        const z = sc.reduce((a, v) => a + Math.exp(v - m), 0);
        for (let j = 0; j <= last; j++) {
          const pij = Math.exp(sc[j] - m) / z;
          P[blk + i * T + j] = pij;
          const kept = mask ? (mask[blk + i * T + j] ? pij / (1 - p) : 0) : pij;
          for (let k = 0; k < dh; k++) O[(t0 + i) * D + h * dh + k] += kept * V[(t0 + j) * D + h * dh + k];
        }
      }
    }
  }
  return { O, P };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])))) assert.fail(`${what}[${i}]: ${got[i]} vs reference ${want[i]}`);
  }
}

/** Central differences of the float64 loss f at every entry of x (a float64 copy is perturbed). */
function fdGrad(x: Float32Array, f: (x64: Float64Array) => number, h = 1e-5): Float64Array {
  const x64 = Float64Array.from(x);
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const keep = x64[i];
    x64[i] = keep + h;
    const lp = f(x64);
    x64[i] = keep - h;
    const lm = f(x64);
    x64[i] = keep;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

const dotW = (y: ArrayLike<number>, W: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < W.length; i++) s += y[i] * W[i];
  return s;
};

function assertNonzero(g: ArrayLike<number>, what: string): void {
  let m = 0;
  for (let i = 0; i < g.length; i++) m = Math.max(m, Math.abs(g[i]));
  assert.ok(m > 1e-3, `${what}: the reference gradient is all zero (the check would pass for a no-op)`);
}

// ---- every backend ------------------------------------------------------------------------------------

const backends = await testBackends();

for (const b of backends) {
  describe(`transformer-block kernels on ${b.name}`, () => {
    for (const [rows, d, eps] of [
      [5, 8, 1e-8],
      [7, 13, 1e-6],
      [33, 64, 1e-8],
    ] as const) {
      test(`layer norm ${rows}x${d}: forward vs float64, backward vs finite differences`, () => {
        const rng = new Rng(rows * 31 + d);
        const x = randn(rng, rows * d, 2, 3); // mean far from 0: a one-pass variance would cancel
        const g = randn(rng, d, 0.3, 1);
        const beta = randn(rng, d, 0.2);
        const y = new Float32Array(rows * d);
        const xhat = new Float32Array(rows * d);
        const rstd = new Float32Array(rows);
        b.layerNormForward(x, g, beta, y, xhat, rstd, rows, d, eps);
        assertClose(y, layerNorm64(x, g, beta, rows, d, eps), 2e-5, 'y');
        const W = randn(rng, rows * d);
        const dx = new Float32Array(rows * d);
        const dg = new Float32Array(d).fill(0.5); // accumulated into
        const db = new Float32Array(d).fill(-0.25);
        b.layerNormBackward(W, g, xhat, rstd, dx, dg, db, rows, d, false);
        const fdx = fdGrad(x, (x64) => dotW(layerNorm64(x64, g, beta, rows, d, eps), W));
        const fdg = fdGrad(g, (g64) => dotW(layerNorm64(x, g64, beta, rows, d, eps), W));
        const fdb = fdGrad(beta, (b64) => dotW(layerNorm64(x, g, b64, rows, d, eps), W));
        assertNonzero(fdx, 'dx');
        assertClose(dx, fdx, 1e-3, 'dx');
        assertClose(dg, Float64Array.from(fdg, (v) => v + 0.5), 1e-3, 'dgamma');
        assertClose(db, Float64Array.from(fdb, (v) => v - 0.25), 1e-3, 'dbeta');
        // accumulate: dx += the same gradient; and dx may be dy itself.
        const acc = Float32Array.from(dx);
        b.layerNormBackward(W, g, xhat, rstd, acc, new Float32Array(d), new Float32Array(d), rows, d, true);
        assertClose(acc, Float64Array.from(fdx, (v) => 2 * v), 1e-3, 'dx accumulated');
        const inPlace = Float32Array.from(W);
        b.layerNormBackward(inPlace, g, xhat, rstd, inPlace, new Float32Array(d), new Float32Array(d), rows, d, false);
        assertClose(inPlace, fdx, 1e-3, 'dx in place');
      });
    }

    test('dropout: the documented xorshift32 mask, exact scaling, backward', () => {
      for (const [n, p, seed] of [
        [1001, 0.3, 12345],
        [64, 0.2, 0xdeadbeef | 1],
        [7, 0.5, 1],
      ] as const) {
        const rng = new Rng(n);
        const x = randn(rng, n);
        const y = Float32Array.from(x);
        const mask = new Uint8Array(n + 3).fill(7);
        b.dropoutForward(y, mask, n, p, seed >>> 0);
        const want = mask64(n, p, seed);
        assert.deepEqual(Array.from(mask.subarray(0, n)), Array.from(want), `mask n=${n}`);
        for (let i = 0; i < n; i++) assert.equal(y[i], want[i] ? Math.fround(x[i] * (1 / (1 - p))) : 0, `y[${i}]`);
        const dy = randn(rng, n);
        const dx = new Float32Array(n);
        b.dropoutBackward(dy, mask, dx, n, p);
        for (let i = 0; i < n; i++) assert.equal(dx[i], want[i] ? Math.fround(dy[i] * (1 / (1 - p))) : 0, `dx[${i}]`);
        if (n > 500) {
          const kept = want.reduce((a, v) => a + v, 0) / n;
          assert.ok(Math.abs(kept - (1 - p)) < 0.05, `kept fraction ${kept} for p=${p}`);
        }
      }
    });

    test('mergeRows: first occurrences in order, repeats summed in row order, continuing across parts', () => {
      const dim = 9;
      const slot = new Int32Array(12).fill(-1);
      const parts = [Int32Array.from([3, 1, 3, 0, 2, 1, 4, 5, 3]), Int32Array.from([11, 3, 0, 11])];
      const rng = new Rng(4);
      const grads = parts.map((ids) => randn(rng, ids.length * dim));
      const uniq = new Int32Array(13);
      const summed = new Float32Array(13 * dim);
      let u = 0;
      for (let k = 0; k < 2; k++) u = b.mergeRows(parts[k], grads[k], parts[k].length, dim, slot, uniq, summed, u);
      assert.deepEqual(Array.from(uniq.subarray(0, u)), [3, 1, 0, 2, 4, 5, 11]);
      for (let s = 0; s < u; s++) {
        assert.equal(slot[uniq[s]], s);
        // float32 sums in row order (what the kernel promises), from the inputs
        const acc = new Float32Array(dim);
        parts.forEach((ids, k) => ids.forEach((id, r) => {
          if (id === uniq[s]) for (let j = 0; j < dim; j++) acc[j] += grads[k][r * dim + j];
        }));
        assert.deepEqual(summed.subarray(s * dim, (s + 1) * dim), acc, `row of id ${uniq[s]}`);
      }
    });

    for (const [kind, K] of [
      ['bce', 1],
      ['bpr', 3],
    ] as const) {
      test(`pairwiseLoss ${kind}: loss vs float64, gradients vs finite differences`, () => {
        const rng = new Rng(K);
        const R = 37;
        const d = 11;
        const q = randn(rng, R * d, 0.5);
        const c = randn(rng, R * (1 + K) * d, 0.5);
        const sp = (x: number) => Math.log(1 + Math.exp(x));
        const loss64 = (q64: ArrayLike<number>, c64: ArrayLike<number>) => {
          let L = 0;
          for (let t = 0; t < R; t++) {
            const s = (row: number) => {
              let v = 0;
              for (let k = 0; k < d; k++) v += q64[t * d + k] * c64[row * d + k];
              return v;
            };
            if (kind === 'bce') L += sp(-s(t)) + sp(s(R + t));
            else for (let k = 0; k < K; k++) L += sp(s(R + t * K + k) - s(t));
          }
          return kind === 'bce' ? L / R : L / (R * K);
        };
        const dq = new Float32Array(R * d).fill(NaN);
        const dc = new Float32Array(R * (1 + K) * d).fill(NaN);
        const L = b.pairwiseLoss(kind, q, c, R, K, d, dq, dc);
        assert.ok(Math.abs(L - loss64(q, c)) < 1e-5, `loss ${L} vs ${loss64(q, c)}`);
        const fq = fdGrad(q, (q64) => loss64(q64, c));
        const fc = fdGrad(c, (c64) => loss64(q, c64));
        assertNonzero(fq, 'dq');
        assertClose(dq, fq, 1e-4, 'dq');
        assertClose(dc, fc, 1e-4, 'dc');
      });
    }

    for (const [lengths, H, dh, causal, p] of [
      [[1, 4, 3], 1, 5, true, 0],
      [[3, 6, 2], 2, 4, true, 0.3],
      [[5, 1, 4], 2, 3, false, 0.25],
      [[9, 17], 1, 8, true, 0.2],
    ] as Array<[number[], number, number, boolean, number]>) {
      test(`attention lengths ${lengths.join(',')} heads ${H} dh ${dh} ${causal ? 'causal' : 'full'} dropout ${p}`, () => {
        const rng = new Rng(lengths.length * 100 + H * 10 + dh);
        const geo = geometry(lengths, H, dh, causal);
        const n = lengths.length;
        const R = geo.offsets[n];
        const D = H * dh;
        const tot = geo.pOff[n];
        const Q = randn(rng, R * D);
        const K = randn(rng, R * D);
        const V = randn(rng, R * D);
        const seed = 987654321;
        const args: AttentionArgs = {
          Q,
          K,
          V,
          offsets: geo.offsets,
          pOff: geo.pOff,
          nseq: n,
          heads: H,
          dh,
          causal,
          P: new Float32Array(tot),
          dropout: p > 0 ? { p, seed, mask: new Uint8Array(tot), Pd: new Float32Array(tot) } : null,
        };
        const O = new Float32Array(R * D);
        b.attentionForward(args, O);
        const mask = p > 0 ? mask64(tot, p, seed) : null;
        if (mask) assert.deepEqual(Array.from(args.dropout!.mask), Array.from(mask), 'dropout mask');
        const ref = attention64(geo, Q, K, V, mask, p);
        assertClose(args.P, ref.P, 1e-5, 'P');
        assertClose(O, ref.O, 1e-5, 'O');
        const W = randn(rng, R * D);
        const dQ = new Float32Array(R * D);
        const dK = new Float32Array(R * D);
        const dV = new Float32Array(R * D);
        const dO = Float32Array.from(W);
        b.attentionBackward(args, dO, dQ, dK, dV);
        assert.deepEqual(dO, W, 'dO is not modified');
        const fq = fdGrad(Q, (q64) => dotW(attention64(geo, q64, K, V, mask, p).O, W));
        const fk = fdGrad(K, (k64) => dotW(attention64(geo, Q, k64, V, mask, p).O, W));
        const fv = fdGrad(V, (v64) => dotW(attention64(geo, Q, K, v64, mask, p).O, W));
        for (const [g, f, what] of [
          [dQ, fq, 'dQ'],
          [dK, fk, 'dK'],
          [dV, fv, 'dV'],
        ] as const) {
          assertNonzero(f, what);
          assertClose(g, f, 1e-3, what);
        }
      });
    }
  });
}

test('native and portable backends draw the same dropout masks (attention and dropout)', (t) => {
  if (skipWithoutNative(t, backends.length >= 2)) return;
  const [js, nat] = [backends[0], backends.at(-1)!];
  const geo = geometry([7, 50, 3], 1, 8, true);
  const tot = geo.pOff[3];
  const rng = new Rng(5);
  const Q = randn(rng, 60 * 8);
  const masks = [js, nat].map((b) => {
    const a: AttentionArgs = { Q, K: Q, V: Q, offsets: geo.offsets, pOff: geo.pOff, nseq: 3, heads: 1, dh: 8, causal: true, P: new Float32Array(tot), dropout: { p: 0.2, seed: 4242, mask: new Uint8Array(tot), Pd: new Float32Array(tot) } };
    b.attentionForward(a, new Float32Array(60 * 8));
    return a.dropout!.mask;
  });
  assert.deepEqual(masks[0], masks[1]);
});

// ---- native: identical on 1 and 2 threads --------------------------------------------------------------

const native = loadNativeBackend();

function withThreads<T>(n: number, fn: () => T): T {
  const before = nativeInfo()?.threads ?? 1;
  setNativeThreads(n);
  try {
    return fn();
  } finally {
    setNativeThreads(before);
  }
}

function sameBits(got: Float32Array, want: Float32Array, what: string): void {
  const g = new Int32Array(got.buffer, got.byteOffset, got.length);
  const w = new Int32Array(want.buffer, want.byteOffset, want.length);
  assert.equal(g.length, w.length);
  for (let i = 0; i < w.length; i++) if (g[i] !== w[i]) assert.fail(`${what}[${i}]: ${got[i]} on 2 threads vs ${want[i]} on 1 thread`);
}

describe('native transformer-block kernels are bit-identical on 1 and 2 threads', { skip: nativeSuiteSkip(native !== null, 'the 1-vs-2-thread checks of the transformer-block kernels') }, () => {
  const tasks = () => nativeInfo()?.threadTasks?.[1] ?? 0;
  /** 1-thread run, then 2-thread runs (at least 3, until the second thread computed a piece; at most 2000). */
  function same(name: string, run: (b: Backend) => Record<string, Float32Array>, requireShared = true): boolean {
    const b = native!;
    const want = withThreads(1, () => run(b));
    const t0 = tasks();
    for (let r = 0; r < 2000 && (r < 3 || tasks() === t0); r++) {
      const got = withThreads(2, () => run(b));
      for (const k of Object.keys(want)) sameBits(got[k], want[k], `${name} ${k}`);
    }
    const shared = tasks() !== t0;
    if (requireShared) assert.ok(shared, `${name}: the second thread never computed a piece (only 1-thread runs were compared)`);
    return shared;
  }

  test('setup: the pool has a second thread', () => {
    assert.ok((nativeInfo()?.maxThreads ?? 1) >= 2, 'set TOWERLAB_THREADS=2 or more');
  });

  test('layer norm forward/backward 6400x64', () => {
    const rng = new Rng(1);
    const rows = 6400;
    const d = 64;
    const x = randn(rng, rows * d, 1, 0.5);
    const g = randn(rng, d, 0.3, 1);
    const beta = randn(rng, d);
    const dy = randn(rng, rows * d);
    same('layer norm', (b) => {
      const y = new Float32Array(rows * d);
      const xhat = new Float32Array(rows * d);
      const rstd = new Float32Array(rows);
      b.layerNormForward(x, g, beta, y, xhat, rstd, rows, d, 1e-8);
      const dx = new Float32Array(rows * d);
      const dg = new Float32Array(d);
      const db = new Float32Array(d);
      b.layerNormBackward(dy, g, xhat, rstd, dx, dg, db, rows, d, false);
      return { y, xhat, rstd, dx, dg, db };
    });
  });

  test('dropout forward/backward 409600', () => {
    const rng = new Rng(2);
    const n = 409600;
    const x = randn(rng, n);
    same('dropout', (b) => {
      const y = Float32Array.from(x);
      const mask = new Uint8Array(n);
      b.dropoutForward(y, mask, n, 0.2, 777);
      const dx = new Float32Array(n);
      b.dropoutBackward(x, mask, dx, n, 0.2);
      return { y, dx, mask: new Float32Array(Float32Array.from(mask)) };
    });
  });

  test('pairwiseLoss bce 6400 rows and bpr 3000x8 rows, d 64', () => {
    // A short kernel: on a busy 2-core machine the worker may wake too late for every run of one of them, so (as
    // for a GEMM shape's variants in compute-native.test.ts) the second thread must have computed in at least one.
    const rng = new Rng(9);
    let shared = false;
    for (const [kind, R, K] of [
      ['bce', 6400, 1],
      ['bpr', 3000, 8],
    ] as const) {
      const q = randn(rng, R * 64, 0.3);
      const c = randn(rng, R * (1 + K) * 64, 0.3);
      const dq = new Float32Array(R * 64);
      const dc = new Float32Array(R * (1 + K) * 64);
      const did = same(
        `pairwiseLoss ${kind}`,
        (b) => {
          const L = b.pairwiseLoss(kind, q, c, R, K, 64, dq, dc);
          return { dq: dq.slice(), dc: dc.slice(), loss: Float32Array.of(L), lossLo: Float32Array.of(L - Math.fround(L)) };
        },
        false,
      );
      shared ||= did;
    }
    assert.ok(shared, 'pairwiseLoss: the second thread never computed a piece (only 1-thread runs were compared)');
  });

  for (const [H, causal] of [
    [1, true],
    [2, false],
  ] as const) {
    test(`attention forward/backward, 96 sequences up to 50, ${H} head(s), ${causal ? 'causal' : 'full'}, dropout`, () => {
      const rng = new Rng(3 + H);
      const lengths = Array.from({ length: 96 }, () => 1 + rng.int(50));
      const dh = 64 / H;
      const geo = geometry(lengths, H, dh, causal);
      const R = geo.offsets[96];
      const tot = geo.pOff[96];
      const [Q, K, V, dO] = [0, 1, 2, 3].map(() => randn(rng, R * 64));
      same(`attention H=${H}`, (b) => {
        const a: AttentionArgs = { Q, K, V, offsets: geo.offsets, pOff: geo.pOff, nseq: 96, heads: H, dh, causal, P: new Float32Array(tot), dropout: { p: 0.2, seed: 99, mask: new Uint8Array(tot), Pd: new Float32Array(tot) } };
        const O = new Float32Array(R * 64);
        b.attentionForward(a, O);
        const [dQ, dK, dV] = [0, 1, 2].map(() => new Float32Array(R * 64));
        b.attentionBackward(a, dO, dQ, dK, dV);
        return { O, P: a.P, dQ, dK, dV };
      });
    });
  }
});
