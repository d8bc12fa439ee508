/**
 * The native addon's two register tiles — the AVX-512 12×32 tile (with 16-lane softmax and Adam passes) and the
 * AVX2/FMA 6×16 tile kept as the fallback — give bit-identical results: per output element both run the same FMA
 * sequence and the same epilogue, and the 16-lane passes do the 8-lane ones' operations (sums in the same order).
 * Each case runs on the AVX2 tile with 1 thread, then on the AVX-512 tile with 1 and with 2 threads, so the AVX2
 * path stays tested (its numerics against float64 are the same bits as the default path's, checked in
 * compute-native.test.ts). Skipped, saying why, where the CPU / build has no AVX-512; a missing addon fails.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import type { Backend, ContrastiveArgs } from '../src/compute/backend.ts';
import { loadNativeBackend, nativeInfo, setNativeSimd, setNativeThreads } from '../src/compute/native.ts';
import { nativeSuiteSkip } from './helpers/native-required.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';

process.env.TOWERLAB_PARALLEL_GUARD ??= '0';
const backend = loadNativeBackend();
const initialTile = nativeInfo()?.gemmTile ?? '';
const wideTile = backend ? setNativeSimd(true) : '';
// No addon fails (helpers/native-required.ts); a CPU or build without AVX-512 has only one tile to compare.
const noTile = backend && wideTile !== 'avx512-12x32' ? `no AVX-512 tile here (${wideTile}): only the AVX2 tile runs` : false;
if (noTile) console.log(`# skipping the AVX-512 vs AVX2 comparison: ${noTile}`);
const skip = nativeSuiteSkip(backend !== null, 'the AVX-512 vs AVX2 comparison') || noTile;
if (backend) setNativeSimd(initialTile === 'avx512-12x32');

type Out = Float32Array | Int32Array | number;

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

function randInt(rng: Rng, n: number, lo: number, hi: number): Int32Array {
  return Int32Array.from({ length: n }, () => lo + rng.int(hi - lo));
}

function unitRows(x: Float32Array, rows: number, dim: number): Float32Array {
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < dim; j++) s += x[i * dim + j] ** 2;
    const n = Math.sqrt(s) || 1;
    for (let j = 0; j < dim; j++) x[i * dim + j] /= n;
  }
  return x;
}

function assertSameBits(got: Out, want: Out, what: string): void {
  if (typeof want === 'number') {
    assert.ok(Object.is(got, want), `${what}: ${String(got)} !== ${want}`);
    return;
  }
  const g = got as Float32Array | Int32Array;
  assert.equal(g.length, want.length, `${what}: length`);
  const gi = new Int32Array(g.buffer, g.byteOffset, g.length);
  const wi = new Int32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < wi.length; i++) if (gi[i] !== wi[i]) assert.fail(`${what}[${i}]: ${g[i]} !== ${want[i]}`);
}

function run<T>(wide: boolean, threads: number, fn: () => T): T {
  const before = nativeInfo()?.threads ?? 1;
  setNativeSimd(wide);
  setNativeThreads(threads);
  try {
    return fn();
  } finally {
    setNativeThreads(before);
  }
}

/** AVX2 on 1 thread is the reference; AVX-512 on 1 and 2 threads must reproduce it bit for bit. */
function same(fn: () => Record<string, Out>): void {
  const want = run(false, 1, fn);
  for (const threads of [1, 2]) {
    const got = run(true, threads, fn);
    for (const k of Object.keys(want)) assertSameBits(got[k], want[k], `${k} (AVX-512, ${threads} thread(s))`);
  }
}

describe('AVX-512 and AVX2 register tiles give bit-identical results', { skip }, () => {
  const be = backend as Backend;
  after(() => setNativeSimd(initialTile === 'avx512-12x32'));

  test('gemm: edge tiles, K blocks, M/N/K splits, all transposes, alpha/beta', () => {
    for (const [M, N, K] of [
      [1, 1, 1],
      [7, 9, 5],
      [13, 33, 70],
      [12, 32, 3],
      [256, 128, 64],
      [300, 64, 128],
      [64, 128, 1024],
      [145, 4100, 260],
    ] as Array<[number, number, number]>) {
      const rng = new Rng(M * 31 + N * 7 + K);
      const a = randn(rng, M * K);
      const b = randn(rng, K * N);
      const c0 = randn(rng, M * N);
      for (const tA of [false, true])
        for (const tB of [false, true])
          for (const [alpha, beta] of [
            [1, 0],
            [1, 1],
            [0.7, -1.3],
          ])
            same(() => {
              const c = Float32Array.from(c0);
              be.gemm(tA, tB, M, N, K, alpha, a, b, beta, c);
              return { [`gemm ${M}x${N}x${K} tA=${tA} tB=${tB} alpha=${alpha} beta=${beta}`]: c };
            });
    }
  });

  test('linearForward (bias + ReLU epilogue) and linearBackward', () => {
    for (const [rows, inDim, outDim, relu] of [
      [256, 64, 128, true],
      [1000, 128, 64, false],
      [37, 20, 50, true],
    ] as Array<[number, number, number, boolean]>) {
      const rng = new Rng(rows + inDim * 3 + outDim);
      const x = randn(rng, rows * inDim);
      const w = randn(rng, inDim * outDim, 1 / Math.sqrt(inDim));
      const bias = randn(rng, outDim, 0.3);
      const dy0 = randn(rng, rows * outDim);
      same(() => {
        const y = new Float32Array(rows * outDim);
        be.linearForward(x, w, bias, y, rows, inDim, outDim, relu);
        const dy = Float32Array.from(dy0);
        const dx = new Float32Array(rows * inDim);
        const dw = new Float32Array(inDim * outDim);
        const dbias = new Float32Array(outDim);
        be.linearBackward(x, w, y, dy, dx, dw, dbias, rows, inDim, outDim, relu);
        return { y, dy, dx, dw, dbias };
      });
    }
  });

  test('adam and lazy Adam (16-lane pass, scalar tail)', () => {
    const rng = new Rng(4);
    const n = 100003;
    const p0 = randn(rng, n);
    const g = randn(rng, n);
    const m0 = randn(rng, n, 0.1);
    const v0 = Float32Array.from(randn(rng, n, 0.1), (t) => t * t);
    same(() => {
      const p = Float32Array.from(p0);
      const m = Float32Array.from(m0);
      const v = Float32Array.from(v0);
      be.adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 7);
      return { p, m, v };
    });
    const [rows, dim] = [500, 72];
    const table0 = randn(rng, rows * dim);
    const ids = Int32Array.from({ length: 200 }, (_, i) => (i * 7) % rows);
    const grads = randn(rng, ids.length * dim);
    same(() => {
      const table = Float32Array.from(table0);
      const m = new Float32Array(rows * dim);
      const v = new Float32Array(rows * dim);
      be.sparseUpdate('lazyadam', table, m, v, ids, grads, ids.length, dim, 1e-3, 0.9, 0.999, 1e-8, 3);
      return { table, m, v };
    });
  });

  test('contrastive kernel: logits, masked softmax, dq and dc', () => {
    for (const { B, N, d, full } of [
      { B: 256, N: 256, d: 64, full: false },
      { B: 1024, N: 1024, d: 64, full: true },
      { B: 700, N: 1100, d: 17, full: true },
      { B: 37, N: 53, d: 13, full: false },
    ]) {
      const rng = new Rng(B + N + d);
      const q = unitRows(randn(rng, B * d), B, d);
      const c = unitRows(randn(rng, N * d), N, d);
      const pos = Int32Array.from({ length: B }, (_, i) => i % N);
      const colKey = randInt(rng, N, 0, 50);
      const args: ContrastiveArgs = {
        q,
        c,
        B,
        N,
        d,
        pos,
        scale: 20,
        colBias: full ? randn(rng, N, 0.5) : null,
        masks: [
          { rowKey: Int32Array.from(pos, (p) => colKey[p]), colKey },
          { rowKey: randInt(rng, B, -1, 30), colKey: randInt(rng, N, 0, 30) },
        ],
        fnMask: full ? { margin: 0.05 } : null,
        rowWeight: full ? Float32Array.from({ length: B }, () => rng.int(4) * 0.5 + 0.5) : null,
        dq: null,
        dc: null,
      };
      same(() => {
        const dq = new Float32Array(B * d);
        const dc = new Float32Array(N * d);
        const maskedCount = new Int32Array(B);
        const loss = be.contrastive({ ...args, dq, dc, maskedCount });
        return { [`loss B=${B} N=${N}`]: loss, dq, dc, maskedCount };
      });
    }
  });

  test('full-catalogue softmax', () => {
    const [R, N, d] = [300, 3706, 64];
    const rng = new Rng(8);
    const q = unitRows(randn(rng, R * d), R, d);
    const e = unitRows(randn(rng, N * d), N, d);
    const target = randInt(rng, R, 0, N);
    same(() => {
      const dq = new Float32Array(R * d);
      const de = new Float32Array(N * d);
      const loss = be.fullSoftmax({ q, e, R, N, d, target, scale: 20, rowWeight: null, dq, de });
      return { loss, dq, de };
    });
  });

  test('training steps of the bench:throughput model (MLP towers, masked in-batch softmax, lazy Adam)', () => {
    const recipe = parseRecipe({ temperature: 0.05, corrections: { maskSameItem: true, maskSameUser: true, logQ: false } });
    const [numUsers, numItems, B, steps] = [600, 370, 256, 3];
    const data = new Rng(6);
    const batches = Array.from({ length: steps }, () => ({ users: randInt(data, B, 0, numUsers), items: randInt(data, B, 0, numItems) }));
    same(() => {
      const model = new TwoTowerModel({
        user: { vocabSize: numUsers, idDim: 64, features: [], mlp: [128, 64] },
        item: { vocabSize: numItems, idDim: 64, features: [], mlp: [128, 64] },
        sparseOptimizer: 'lazyadam',
        sparseLr: 1e-3,
        denseLr: 1e-3,
        seed: 1,
      });
      model.init();
      const step = new TrainStep(be, model, recipe, buildSources(recipe, { numItems, trainItems: new Int32Array(0), dim: model.dim }));
      const out: Record<string, Out> = {};
      batches.forEach((b, k) => {
        out[`loss step ${k + 1}`] = step.run(b.users, b.items, new Rng(100 + k)).loss;
      });
      for (const [name, t] of model.tensors(true)) out[name] = Float32Array.from(t);
      return out;
    });
  });
});
