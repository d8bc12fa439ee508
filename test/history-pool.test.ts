/**
 * User-history pooling kernels (Backend.historyPoolForward / historyPoolBackward; native/history_pool.cc and
 * src/compute/js-history.ts):
 *   x_r = g·x_r + (1 − g)/c · Σ_k E[cols[s + ⌊k·len/L⌋]]   (all len items when L = 0 or len ≤ L),
 * checked against a float64 reference written here from that definition (never from the kernels' arrays), the
 * backward by central finite differences of the scalar loss Σ W ⊙ forward(x, E), native against portable bit for
 * bit, 1 against 2 threads bit for bit, a no-op and a flipped gate caught, and bad input rejected by the addon.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Backend, HistoryPoolArgs } from '../src/compute/backend.ts';
import { createJsBackend } from '../src/compute/js.ts';
import { loadNativeBackend, nativeInfo, setNativeThreads } from '../src/compute/native.ts';
import type { Csr } from '../src/data/csr.ts';
import { EmbeddingTable } from '../src/model/embedding-table.ts';
import { HistoryPooling } from '../src/model/user-history.ts';
import { Rng } from '../src/util/rng.ts';
import { nativeSuiteSkip } from './helpers/native-required.ts';

// As test/compute-native.test.ts: the pool's oversubscription guard would keep 2-thread runs on one thread.
process.env.TOWERLAB_PARALLEL_GUARD ??= '0';
// The pool's oversubscription guard would run jobs on the caller alone on a busy machine, keeping the 2-thread
// comparison below from using a second thread; off for this file, as in compute-native.test.ts (speed only).
process.env.TOWERLAB_PARALLEL_GUARD ??= '0';
const native = loadNativeBackend();
const js = await createJsBackend();
const skip = nativeSuiteSkip(native !== null, 'the native history pooling tests');

interface Case {
  users: number;
  items: number;
  dim: number;
  hist: number[][];
  csr: Csr;
  ids: Int32Array;
  E: Float32Array;
  x0: Float32Array;
  W: Float32Array; // upstream gradient dX (and the loss weights of the finite differences)
}

function randn(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal());
}

/** Random histories: empty users, short ones, ones far longer than maxLen, repeated items; ids with −1 and out-of-vocabulary ids. */
function makeCase(seed: number, users: number, items: number, dim: number, n: number, maxHist: number): Case {
  const rng = new Rng(seed);
  const hist: number[][] = [];
  for (let u = 0; u < users; u++) {
    const kind = rng.int(4);
    const len = kind === 0 ? 0 : kind === 1 ? 1 + rng.int(3) : rng.int(maxHist + 1);
    hist.push(Array.from({ length: len }, () => rng.int(items)));
  }
  const offsets = new Int32Array(users + 1);
  hist.forEach((h, u) => (offsets[u + 1] = offsets[u] + h.length));
  const csr: Csr = { rows: users, offsets, cols: Int32Array.from(hist.flat()) };
  const ids = Int32Array.from({ length: n }, (_, r) => (r % 17 === 5 ? -1 : r % 23 === 7 ? users + rng.int(3) : rng.int(users)));
  return { users, items, dim, hist, csr, ids, E: randn(rng, items * dim), x0: randn(rng, n * dim), W: randn(rng, n * dim) };
}

function args(c: Case, gate: number, maxLen: number): HistoryPoolArgs {
  return { ids: c.ids, n: c.ids.length, dim: c.dim, offsets: c.csr.offsets, cols: c.csr.cols, gate, maxLen };
}

/** The items user u uses, from the definition. */
function used(c: Case, u: number, maxLen: number): number[] {
  if (u < 0 || u >= c.users) return [];
  const h = c.hist[u];
  if (maxLen <= 0 || h.length <= maxLen) return h;
  return Array.from({ length: maxLen }, (_, k) => h[Math.floor((k * h.length) / maxLen)]);
}

/** float64 forward from the definition (E given as float64 so finite differences can perturb it). */
function forward64(c: Case, E: Float64Array, gate: number, maxLen: number): Float64Array {
  const { dim } = c;
  const out = new Float64Array(c.ids.length * dim);
  c.ids.forEach((u, r) => {
    const items = used(c, u, maxLen);
    for (let j = 0; j < dim; j++) {
      let s = 0;
      for (const i of items) s += E[i * dim + j];
      out[r * dim + j] = gate * c.x0[r * dim + j] + (items.length ? ((1 - gate) / items.length) * s : 0);
    }
  });
  return out;
}

/** Rounding bound of the float32 forward: a few ulps of the magnitudes summed. */
function forwardBound(c: Case, gate: number, maxLen: number): Float64Array {
  const { dim } = c;
  const out = new Float64Array(c.ids.length * dim);
  c.ids.forEach((u, r) => {
    const items = used(c, u, maxLen);
    for (let j = 0; j < dim; j++) {
      let s = 0;
      for (const i of items) s += Math.abs(c.E[i * dim + j]);
      out[r * dim + j] = (items.length + 2) * 1.2e-7 * (gate * Math.abs(c.x0[r * dim + j]) + (items.length ? ((1 - gate) / items.length) * s : 0)) + 1e-30;
    }
  });
  return out;
}

function runForward(b: Backend, c: Case, gate: number, maxLen: number): Float32Array {
  const x = c.x0.slice();
  b.historyPoolForward(args(c, gate, maxLen), c.E, x);
  return x;
}

function runBackward(b: Backend, c: Case, gate: number, maxLen: number): { uniq: Int32Array; grads: Float32Array; dX: Float32Array } {
  const cap = Math.min(c.items, c.csr.cols.length + 1);
  const uniq = new Int32Array(cap);
  const grads = new Float32Array(cap * c.dim);
  const dX = c.W.slice();
  const u = b.historyPoolBackward(args(c, gate, maxLen), c.items, dX, uniq, grads);
  return { uniq: uniq.slice(0, u), grads: grads.slice(0, u * c.dim), dX };
}

function sameBits(a: Float32Array | Int32Array, b: Float32Array | Int32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}: element ${i} differs (${a[i]} vs ${b[i]})`);
}

const backends: Array<[string, () => Backend | null]> = [
  ['portable', () => js],
  ['native', () => native],
];

const CASES: Array<[string, Case, number, number]> = [
  ['capped at 7', makeCase(1, 40, 30, 13, 64, 25), 0.3, 7],
  ['maxLen 0 = all', makeCase(2, 40, 30, 16, 64, 25), 0.6, 0],
  ['gate 0 (history only)', makeCase(3, 20, 11, 8, 33, 12), 0, 5],
  ['gate 1 (id row only)', makeCase(4, 20, 11, 8, 33, 12), 1, 5],
];

for (const [name, get] of backends) {
  describe(`history pooling, ${name} backend`, { skip: name === 'native' ? skip : false }, () => {
    for (const [label, c, gate, maxLen] of CASES) {
      test(`forward = float64 reference (${label})`, () => {
        const got = runForward(get()!, c, gate, maxLen);
        const want = forward64(c, Float64Array.from(c.E), gate, maxLen);
        const bound = forwardBound(c, gate, maxLen);
        for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= bound[i], `x[${i}] = ${got[i]}, want ${want[i]} ± ${bound[i]}`);
      });

      test(`backward = finite differences of Σ W ⊙ forward, first-use order (${label})`, () => {
        const b = get()!;
        const { uniq, grads, dX } = runBackward(b, c, gate, maxLen);
        // Unique items in order of first use (rows, then k), from the definition.
        const order: number[] = [];
        for (const u of c.ids) for (const i of used(c, u, maxLen)) if (!order.includes(i)) order.push(i);
        assert.deepEqual(Array.from(uniq), order);
        // dX ← g·dX (the id rows' gradient): the derivative of the loss w.r.t. x0.
        for (let i = 0; i < dX.length; i++) assert.ok(Math.abs(dX[i] - gate * c.W[i]) <= 1e-7 * Math.abs(c.W[i]), `dX[${i}]`);
        // The item gradients by central differences of the loss through the kernel's own float32 forward.
        const loss = (E: Float32Array) => {
          const x = c.x0.slice();
          b.historyPoolForward(args(c, gate, maxLen), E, x);
          let s = 0;
          for (let i = 0; i < x.length; i++) s += c.W[i] * x[i];
          return s;
        };
        const rng = new Rng(7);
        const h = 0.25; // the loss is linear in E: a large step costs no truncation error and keeps rounding small
        for (let t = 0; t < 24; t++) {
          const item = rng.int(c.items);
          const j = rng.int(c.dim);
          const E = c.E.slice();
          E[item * c.dim + j] += h;
          const up = loss(E);
          E[item * c.dim + j] = c.E[item * c.dim + j] - h;
          const fd = (up - loss(E)) / (2 * h);
          const s = order.indexOf(item);
          const g = s < 0 ? 0 : grads[s * c.dim + j];
          assert.ok(Math.abs(fd - g) <= 2e-3 * (1 + Math.abs(g)), `dL/dE[${item}][${j}]: backward ${g}, finite differences ${fd}`);
        }
        // And every item's gradient against the float64 definition Σ_r w_r W_r.
        const ref = new Float64Array(order.length * c.dim);
        c.ids.forEach((u, r) => {
          const items = used(c, u, maxLen);
          for (const i of items) for (let j = 0; j < c.dim; j++) ref[order.indexOf(i) * c.dim + j] += ((1 - gate) / items.length) * c.W[r * c.dim + j];
        });
        for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(grads[i] - ref[i]) <= 1e-5 * (1 + Math.abs(ref[i])), `grads[${i}] = ${grads[i]}, want ${ref[i]}`);
      });
    }

    test('a no-op or a flipped gate is caught', () => {
      const [, c] = CASES[0];
      const got = runForward(get()!, c, 0.2, 7);
      const want = forward64(c, Float64Array.from(c.E), 0.2, 7);
      const flipped = forward64(c, Float64Array.from(c.E), 0.8, 7);
      const dist = (a: ArrayLike<number>) => Math.sqrt(Array.from(got, (v, i) => (v - a[i]) ** 2).reduce((s, v) => s + v, 0));
      assert.ok(dist(want) < 1e-4, `distance to the reference ${dist(want)}`);
      assert.ok(dist(c.x0) > 1, 'the forward changed nothing');
      assert.ok(dist(flipped) > 1, 'the forward used 1 − g for the id row');
      const { dX, grads } = runBackward(get()!, c, 0.2, 7);
      assert.ok(Math.abs(dX[0] - 0.2 * c.W[0]) < 1e-6 && Math.abs(dX[0] - 0.8 * c.W[0]) > 1e-3, 'dX scaled by g');
      assert.ok(grads.some((v) => v !== 0), 'history items got gradients');
    });
  });
}

describe('history pooling: native = portable, bit for bit', { skip }, () => {
  for (const [label, c, gate, maxLen] of CASES) {
    test(label, () => {
      sameBits(runForward(native!, c, gate, maxLen), runForward(js, c, gate, maxLen), 'forward');
      const a = runBackward(native!, c, gate, maxLen);
      const b = runBackward(js, c, gate, maxLen);
      sameBits(a.uniq, b.uniq, 'uniq');
      sameBits(a.grads, b.grads, 'grads');
      sameBits(a.dX, b.dX, 'dX');
    });
  }

  test('a batch repeating the users of a short history over a large table (more uses than history entries)', () => {
    const c = makeCase(13, 3, 400, 8, 1, 4);
    c.ids = Int32Array.from({ length: 200 }, (_, r) => r % 3);
    c.x0 = Float32Array.from({ length: 200 * c.dim }, (_, i) => Math.cos(i));
    c.W = Float32Array.from({ length: 200 * c.dim }, (_, i) => Math.sin(i));
    const a = runBackward(native!, c, 0.5, 3);
    const b = runBackward(js, c, 0.5, 3);
    sameBits(a.uniq, b.uniq, 'uniq');
    sameBits(a.grads, b.grads, 'grads');
    sameBits(a.dX, b.dX, 'dX');
  });

  test('HistoryPooling.bake with the native backend = without a backend (portable)', () => {
    const c = makeCase(9, 50, 40, 12, 1, 30);
    const table = new EmbeddingTable('item', c.items, c.dim, { kind: 'lazyadam', lr: 0.01 } as never);
    table.data.set(c.E);
    const h = new HistoryPooling({ pooling: 'mean', gate: 0.4, maxLen: 6, table: 'item' }, table, c.users);
    h.setHistory(c.csr);
    const idTable = Float32Array.from({ length: c.users * c.dim }, (_, i) => Math.sin(i));
    sameBits(h.bake(idTable, c.dim, native!), h.bake(idTable, c.dim), 'baked table');
  });
});

describe('history pooling: 1 and 2 native threads give the same bits', { skip }, () => {
  test('ML-1M-like step shape (512 rows, dim 64, up to 100 items)', () => {
    assert.ok((nativeInfo()?.maxThreads ?? 1) >= 2, 'the pool has a second thread (set TOWERLAB_THREADS=2 or more)');
    const c = makeCase(11, 300, 500, 64, 512, 300);
    const before = nativeInfo()!.threads;
    const second = () => nativeInfo()!.threadTasks[1] ?? 0;
    try {
      setNativeThreads(1);
      const fw = runForward(native!, c, 0.5, 100);
      const bw = runBackward(native!, c, 0.5, 100);
      setNativeThreads(2);
      const t0 = second();
      // A busy machine may leave a job to the caller alone (a worker woken onto the caller's core steps aside):
      // repeat, up to 3000 times, until the second thread computed a piece.
      for (let r = 0; r < 3000 && (r < 3 || second() === t0); r++) {
        sameBits(runForward(native!, c, 0.5, 100), fw, `forward (2-thread run ${r + 1})`);
        const got = runBackward(native!, c, 0.5, 100);
        sameBits(got.uniq, bw.uniq, 'uniq');
        sameBits(got.grads, bw.grads, `grads (2-thread run ${r + 1})`);
        sameBits(got.dX, bw.dX, 'dX');
      }
      assert.ok(second() > t0, 'the second thread never computed a piece: only 1-thread runs were compared');
    } finally {
      setNativeThreads(before);
    }
  });
});

describe('history pooling: the addon rejects bad input', { skip }, () => {
  const c = makeCase(5, 10, 8, 4, 12, 6);
  const base = args(c, 0.5, 3);
  const x = () => c.x0.slice();
  test('history items outside the table, offsets outside cols, short outputs', () => {
    const cols = c.csr.cols.slice();
    const u = c.ids.find((v) => v >= 0 && v < c.users && c.hist[v].length > 0)!;
    cols[c.csr.offsets[u]] = c.items; // the first item is always used
    assert.throws(() => native!.historyPoolForward({ ...base, cols }, c.E, x()), /historyPoolForward: cols\[\d+\] = 8 is outside \[0, 8\)/);
    cols[c.csr.offsets[u]] = -3;
    assert.throws(() => native!.historyPoolBackward({ ...base, cols }, c.items, x(), new Int32Array(99), new Float32Array(999)), /cols\[\d+\] = -3 is outside/);
    const offsets = c.csr.offsets.slice();
    offsets[u + 1] = c.csr.cols.length + 5;
    assert.throws(() => native!.historyPoolForward({ ...base, offsets }, c.E, x()), /offsets\[.*is not a range inside cols/);
    offsets[u + 1] = offsets[u] - 1;
    assert.throws(() => native!.historyPoolForward({ ...base, offsets }, c.E, x()), /is not a range inside cols/);
    assert.throws(() => native!.historyPoolForward({ ...base, n: c.ids.length + 1 }, c.E, new Float32Array((c.ids.length + 1) * c.dim)), /ids has \d+ elements/);
    assert.throws(() => native!.historyPoolBackward(base, c.items, x(), new Int32Array(0), new Float32Array(999)), /uniq has 0 elements/);
    assert.throws(() => native!.historyPoolForward({ ...base, gate: NaN }, c.E, x()), /gate must be a finite number/);
    const shared = new Float32Array(c.items * c.dim + c.ids.length * c.dim);
    assert.throws(() => native!.historyPoolForward(base, shared.subarray(0, c.items * c.dim), shared), /x must not overlap table/);
  });
});
