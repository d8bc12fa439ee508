/**
 * The full-catalogue softmax's item-table update (EmbeddingTable.applyEveryRow: the whole table's gradient in id
 * order plus the input side's rows) against the general sparse path it replaces (applyGradients over
 * [input ids ; every row]): bit-identical tables and Adam moments on both backends, for any thread count
 * (the native backend updates the rows of such a step in parallel), with duplicates among the input ids, and
 * with the configurations that fall back to the general path (L2, Adagrad).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Backend } from '../src/compute/backend.ts';
import { createJsBackend } from '../src/compute/js.ts';
import { loadNativeBackend, setNativeThreads } from '../src/compute/native.ts';
import { EmbeddingTable, type SparseOptimizerConfig } from '../src/model/embedding-table.ts';
import { Rng } from '../src/util/rng.ts';
import { skipWithoutNative } from './helpers/native-required.ts';

process.env.TOWERLAB_PARALLEL_GUARD ??= '0';

function table(rows: number, dim: number, opt: SparseOptimizerConfig): EmbeddingTable {
  const t = new EmbeddingTable('items', rows, dim, opt);
  t.initNormal(new Rng(5), 0.1);
  return t;
}

/** Three steps through both paths; returns the two tables' arrays. */
function run(b: Backend, rows: number, dim: number, opt: SparseOptimizerConfig): Array<[EmbeddingTable, EmbeddingTable]> {
  const a = table(rows, dim, opt);
  const e = table(rows, dim, opt);
  const rng = new Rng(9);
  for (let s = 0; s < 3; s++) {
    const R = 300;
    const ids = Int32Array.from({ length: R }, () => rng.int(Math.min(rows, 150))); // many duplicates
    const grads = Float32Array.from({ length: R * dim }, () => rng.normal());
    const rowGrads = Float32Array.from({ length: rows * dim }, () => rng.normal() * 0.01);
    const all = new Int32Array(R + rows);
    all.set(ids);
    for (let j = 0; j < rows; j++) all[R + j] = j;
    const g = new Float32Array((R + rows) * dim);
    g.set(grads);
    g.set(rowGrads, R * dim);
    a.applyGradients(b, all, g);
    e.applyEveryRow(b, ids, grads, rowGrads.slice());
  }
  return [[a, e]];
}

function assertSame(a: EmbeddingTable, e: EmbeddingTable, what: string): void {
  assert.deepEqual(new Uint32Array(e.data.buffer), new Uint32Array(a.data.buffer), `${what}: table`);
  assert.deepEqual(new Uint32Array(e.state1.buffer), new Uint32Array(a.state1.buffer), `${what}: state1`);
  if (a.state2) assert.deepEqual(new Uint32Array(e.state2!.buffer), new Uint32Array(a.state2.buffer), `${what}: state2`);
  assert.equal(e.step, a.step);
}

const lazy: SparseOptimizerConfig = { kind: 'lazyadam', lr: 0.01, beta1: 0.9, beta2: 0.98, eps: 1e-8 };

test('applyEveryRow: bit-identical to applyGradients over [ids ; every row] (portable backend)', async () => {
  const b = await createJsBackend();
  for (const [rows, dim] of [[2000, 64], [37, 12]]) {
    for (const [a, e] of run(b, rows, dim, lazy)) assertSame(a, e, `js ${rows}x${dim}`);
  }
  // The configurations applyEveryRow hands to the general path.
  for (const opt of [{ ...lazy, l2: 1e-3 }, { ...lazy, kind: 'adagrad' as const }]) {
    for (const [a, e] of run(b, 200, 8, opt)) assertSame(a, e, `js ${opt.kind} l2=${opt.l2 ?? 0}`);
  }
});

test('applyEveryRow: bit-identical to applyGradients on the native backend, with 1 and 2 threads', async (t) => {
  const b = loadNativeBackend();
  if (skipWithoutNative(t, b !== null)) return;
  const js = await createJsBackend();
  try {
    let first: EmbeddingTable | null = null;
    for (const threads of [1, 2]) {
      setNativeThreads(threads);
      // 2000 × 64: large enough for the native parallel every-row update; 37 × 12: the serial one.
      for (const [rows, dim] of [[2000, 64], [37, 12]]) {
        for (const [a, e] of run(b!, rows, dim, lazy)) {
          assertSame(a, e, `native ${threads} threads ${rows}x${dim}`);
          if (rows === 2000) {
            if (first) assertSame(first, e, `native: 1 vs ${threads} threads`);
            first = e;
          }
        }
      }
    }
    // And the same numbers as the portable backend's update (same float32 arithmetic per element).
    const [[jsA]] = run(js, 2000, 64, lazy);
    for (let i = 0; i < jsA.data.length; i++) assert.ok(Math.abs(jsA.data[i] - first!.data[i]) <= 1e-6, `element ${i}`);
  } finally {
    setNativeThreads(2);
  }
});
