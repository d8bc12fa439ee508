/**
 * Native kernel micro-benchmark: GEMM GFLOPS for the two-tower step's shapes (every transpose combination)
 * and the fused contrastive loss at B = N = 256 / 1024 / 4096, d = 64, on 1 thread and on all threads.
 * Prints a table and writes bench/results/kernels.json.
 *
 *   npx tsx bench/kernels.ts [--quick]
 *
 * Each figure is the median (and best) of several samples, a sample being enough repetitions to take
 * ~40 ms. On a shared machine the medians move by tens of percent between runs; compare best-of figures
 * for the kernels themselves and medians for what a training run will see.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Backend, ContrastiveArgs } from '../src/compute/backend.ts';
import { loadNativeBackend, nativeInfo, nativeLoadError, setNativeThreads } from '../src/compute/native.ts';
import { Rng } from '../src/util/rng.ts';

const quick = process.argv.includes('--quick');
const SAMPLES = quick ? 3 : 9;
const SAMPLE_MS = quick ? 15 : 40;

const be = loadNativeBackend();
if (!be) {
  console.error(`bench/kernels: ${nativeLoadError()}`);
  process.exit(1);
}
const backend: Backend = be;
const info = nativeInfo()!;
const rng = new Rng(42);

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

/** Median and best milliseconds per call of fn. */
function time(fn: () => void): { median: number; best: number } {
  for (let i = 0; i < 3; i++) fn();
  const t0 = performance.now();
  fn();
  const once = Math.max(performance.now() - t0, 1e-3);
  const reps = Math.max(1, Math.round(SAMPLE_MS / once));
  const ms: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t = performance.now();
    for (let r = 0; r < reps; r++) fn();
    ms.push((performance.now() - t) / reps);
  }
  ms.sort((a, b) => a - b);
  return { median: ms[ms.length >> 1], best: ms[0] };
}

// M, N, K and where the shape comes from in a B = 1024 step of the 64 -> 128 -> 64 towers.
const GEMM_SHAPES: Array<{ M: number; N: number; K: number; use: string }> = [
  { M: 1024, N: 1024, K: 64, use: 'logits U V^T' },
  { M: 1024, N: 64, K: 1024, use: 'dU = G V, dV = G^T U' },
  { M: 1024, N: 128, K: 64, use: 'layer 1 forward' },
  { M: 1024, N: 64, K: 128, use: 'layer 2 forward, layer 1 dx' },
  { M: 64, N: 128, K: 1024, use: 'layer 1 dW' },
  { M: 128, N: 64, K: 1024, use: 'layer 2 dW' },
];
const TRANS: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

interface GemmRow {
  threads: number;
  M: number;
  N: number;
  K: number;
  transA: boolean;
  transB: boolean;
  use: string;
  gflopsMedian: number;
  gflopsBest: number;
}
interface ContrastiveRow {
  threads: number;
  B: number;
  N: number;
  d: number;
  variant: string;
  msMedian: number;
  msBest: number;
  gflopsBest: number;
}

const threadCounts = [...new Set([1, info.maxThreads])];
const gemmRows: GemmRow[] = [];
const contrastiveRows: ContrastiveRow[] = [];
const loadBefore = loadavg()[0];

for (const threads of threadCounts) {
  setNativeThreads(threads);
  for (const { M, N, K, use } of GEMM_SHAPES) {
    const a = randn(M * K);
    const b = randn(K * N);
    const c = new Float32Array(M * N);
    for (const [tA, tB] of TRANS) {
      const t = time(() => backend.gemm(tA, tB, M, N, K, 1, a, b, 0, c));
      const flop = 2 * M * N * K;
      gemmRows.push({ threads, M, N, K, transA: tA, transB: tB, use, gflopsMedian: flop / t.median / 1e6, gflopsBest: flop / t.best / 1e6 });
    }
  }
  for (const B of [256, 1024, 4096]) {
    const N = B;
    const d = 64;
    const unit = (x: Float32Array, rows: number) => {
      for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += x[i * d + k] ** 2;
        for (let k = 0; k < d; k++) x[i * d + k] /= Math.sqrt(s);
      }
      return x;
    };
    const q = unit(randn(B * d), B);
    const cand = unit(randn(N * d), N);
    const pos = Int32Array.from({ length: B }, (_, i) => i);
    const itemOf = Int32Array.from({ length: N }, () => rng.int(3706));
    const userOf = Int32Array.from({ length: N }, () => rng.int(6040));
    const base: ContrastiveArgs = {
      q,
      c: cand,
      B,
      N,
      d,
      pos,
      scale: 20,
      colBias: null,
      masks: [],
      dq: new Float32Array(B * d),
      dc: new Float32Array(N * d),
    };
    const variants: Array<[string, ContrastiveArgs]> = [
      ['plain', base],
      [
        'logQ + 2 masks',
        {
          ...base,
          colBias: randn(N, 0.5),
          masks: [
            { rowKey: Int32Array.from(pos, (p) => itemOf[p]), colKey: itemOf },
            { rowKey: Int32Array.from(pos, (p) => userOf[p]), colKey: userOf },
          ],
          maskedCount: new Int32Array(B),
        },
      ],
    ];
    for (const [variant, args] of variants) {
      const t = time(() => backend.contrastive(args));
      contrastiveRows.push({ threads, B, N, d, variant, msMedian: t.median, msBest: t.best, gflopsBest: (6 * B * N * d) / t.best / 1e6 });
    }
  }
}
setNativeThreads(info.threads);
const loadAfter = loadavg()[0];

const f1 = (x: number) => x.toFixed(1);
const backoffs = nativeInfo()!.parallelBackoffs - info.parallelBackoffs;
console.log(
  `native addon: simd=${info.simd}, threads 1 and ${info.maxThreads}; CPU ${cpus()[0]?.model ?? '?'}; load average ${f1(loadBefore)} -> ${f1(loadAfter)}` +
    (backoffs > 0 ? `; the pool fell back to one thread ${backoffs} time(s) (busy machine): multi-thread figures are pessimistic` : ''),
);
console.log('\nGEMM GFLOPS (median / best), C = op(A) op(B), M x N x K');
const head = ['shape', 'use', ...threadCounts.flatMap((t) => TRANS.map(([a, b]) => `${t}t ${a ? 'T' : 'N'}${b ? 'T' : 'N'}`))];
const table: string[][] = [head];
for (const { M, N, K, use } of GEMM_SHAPES) {
  const row = [`${M}x${N}x${K}`, use];
  for (const t of threadCounts)
    for (const [a, b] of TRANS) {
      const r = gemmRows.find((x) => x.threads === t && x.M === M && x.N === N && x.K === K && x.transA === a && x.transB === b)!;
      row.push(`${f1(r.gflopsMedian)}/${f1(r.gflopsBest)}`);
    }
  table.push(row);
}
printTable(table);

console.log('\ncontrastive (fused loss + dq + dc), d = 64: ms per call, median / best (GFLOPS at best, 6·B·N·d flop)');
const ctable: string[][] = [['B=N', 'variant', ...threadCounts.map((t) => `${t} thread${t > 1 ? 's' : ''}`)]];
for (const B of [256, 1024, 4096])
  for (const variant of ['plain', 'logQ + 2 masks']) {
    const row = [String(B), variant];
    for (const t of threadCounts) {
      const r = contrastiveRows.find((x) => x.threads === t && x.B === B && x.variant === variant)!;
      row.push(`${r.msMedian.toFixed(3)} / ${r.msBest.toFixed(3)} (${f1(r.gflopsBest)})`);
    }
    ctable.push(row);
  }
printTable(ctable);

const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'kernels.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify(
    {
      meta: {
        date: new Date().toISOString(),
        node: process.version,
        cpu: cpus()[0]?.model ?? null,
        cores: cpus().length,
        simd: info.simd,
        threads: threadCounts,
        samples: SAMPLES,
        sampleMs: SAMPLE_MS,
        loadAverage: [loadBefore, loadAfter],
        parallelBackoffs: backoffs,
      },
      gemm: gemmRows,
      contrastive: contrastiveRows,
    },
    null,
    1,
  )}\n`,
);
console.log(`\nwrote ${out}`);

function printTable(rows: string[][]): void {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((s, i) => (i < 2 ? s.padEnd(w[i]) : s.padStart(w[i]))).join('  '));
}
