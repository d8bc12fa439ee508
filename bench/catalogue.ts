/**
 * The exact full-catalogue softmax step (loss + gradients to queries and items, R rows × N items × d) at 10k /
 * 100k / 1M items: Towerlab's tiled kernel (Backend.fullSoftmax: online log-sum-exp over item tiles, no R×N
 * logits) against PyTorch's cross_entropy over materialised logits (q Eᵀ, backward), measured in the same run.
 * Each measurement runs in its own process so its peak RSS is its own; PyTorch runs under a memory cap
 * (--mem-cap-gib, default 6: the machine is shared) and reports "out of memory" when it cannot allocate.
 * Examples = rows (positions) per second, median of --reps steps after one warm-up step. Each size's row records the
 * 1-minute load average after its two measurements (the machine is shared).
 * Writes bench/results/catalogue.json and prints a table.
 *
 * Towerlab runs once per --precision (fp32, and bf16: bf16 products, see recipes' `precision`).
 *
 *   npm run bench:catalogue [-- --items 10000,100000,1000000 --rows 1024 --dim 64 --threads 2 --reps 3 --mem-cap-gib 6 --precision fp32,bf16 --no-peer]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const rows = Number(arg('rows', '1024'));
const dim = Number(arg('dim', '64'));
const threads = arg('threads', '2');
const reps = Number(arg('reps', '3'));
const precisions = arg('precision', 'fp32,bf16').split(',') as Array<'fp32' | 'bf16'>;

if (process.argv.includes('--child')) {
  // One measurement of Towerlab's kernel in this process.
  process.env.TOWERLAB_THREADS = threads;
  const { getBackend } = await import('../src/compute/index.ts');
  const { Rng } = await import('../src/util/rng.ts');
  const b = await getBackend();
  const N = Number(arg('child', '0'));
  const rssBefore = process.memoryUsage().rss;
  const rng = new Rng(1);
  const q = Float32Array.from({ length: rows * dim }, () => 0.5 * rng.normal());
  const e = new Float32Array(N * dim);
  for (let i = 0; i < e.length; i++) e[i] = 0.1 * rng.normal();
  const target = Int32Array.from({ length: rows }, () => rng.int(N));
  const dq = new Float32Array(rows * dim);
  const de = new Float32Array(N * dim);
  const step = () => {
    de.fill(0);
    return b.fullSoftmax({ q, e, R: rows, N, d: dim, target, scale: 1, rowWeight: null, dq, de, precision: precisions[0] });
  };
  const loss = step();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    step();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  const ms = times[Math.floor(times.length / 2)];
  process.stdout.write(
    JSON.stringify({ impl: `towerlab-${b.name}`, precision: precisions[0], rows, items: N, dim, loss, ms_per_step: ms, step_ms: times, examples_per_s: rows / (ms / 1000), rss_start_mib: rssBefore / 2 ** 20, peak_rss_mib: process.resourceUsage().maxRSS / 1024 }) + '\n',
  );
  process.exit(0);
}

const items = arg('items', '10000,100000,1000000').split(',').map(Number);
const capGiB = Number(arg('mem-cap-gib', '6'));
const log = (s: string) => process.stderr.write(s + '\n');
const lastJson = (s: string) => {
  const line = s.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return line ? JSON.parse(line) : null;
};
const results: any[] = [];
for (const N of items) {
  const mine: Record<string, any> = {};
  for (const precision of precisions) {
    log(`towerlab (${precision}): ${rows} rows × ${N} items × ${dim}...`);
    const ours = spawnSync(process.execPath, ['--import', 'tsx', resolve('bench', 'catalogue.ts'), '--child', String(N), '--rows', String(rows), '--dim', String(dim), '--threads', threads, '--reps', String(reps), '--precision', precision], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    mine[precision] = lastJson(ours.stdout) ?? { impl: 'towerlab', precision, items: N, error: `exit ${ours.status}: ${ours.stderr.split('\n')[0]}` };
    log(`  ${JSON.stringify(mine[precision])}`);
  }
  const o = mine.fp32 ?? mine[precisions[0]];
  const o16 = mine.bf16 ?? null;
  let p: any = null;
  if (!process.argv.includes('--no-peer')) {
    log(`pytorch: ${rows} rows × ${N} items × ${dim} (memory cap ${capGiB} GiB)...`);
    const cmd = `ulimit -v ${Math.round(capGiB * 1024 * 1024)}; exec bash bench/peer/catalogue.sh --rows ${rows} --items ${N} --dim ${dim} --threads ${threads} --reps ${reps}`;
    const r = spawnSync('bash', ['-c', cmd], { encoding: 'utf8', maxBuffer: 1 << 20 });
    p = lastJson(r.stdout) ?? { impl: 'pytorch', items: N, error: `exit ${r.status}${r.signal ? ` (${r.signal})` : ''}: ${(r.stderr || '').trim().split('\n').pop()}` };
    log(`  ${JSON.stringify(p)}`);
  }
  results.push({
    items: N,
    loadAverage1m: loadavg()[0],
    towerlab: o,
    towerlabBf16: o16,
    pytorch: p,
    ratio: p?.examples_per_s && o.examples_per_s ? o.examples_per_s / p.examples_per_s : null,
    ratioBf16: p?.examples_per_s && o16?.examples_per_s ? o16.examples_per_s / p.examples_per_s : null,
    bf16SpeedUp: o16?.examples_per_s && o.examples_per_s ? o16.examples_per_s / o.examples_per_s : null,
  });
}
const out = {
  bench: 'catalogue',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, threads: Number(threads), loadAverage: loadavg() },
  setup: `one exact softmax step over the full catalogue: ${rows} rows, d = ${dim}, loss + dL/dq + dL/dE; Towerlab: Backend.fullSoftmax at precision ${precisions.join(' and ')} (tiled; row tiles of logits kept while they fit 8 MiB, else online log-sum-exp with recomputation); PyTorch: cross_entropy(q @ E.T, t).backward() on the CPU (Debian python3-torch, OpenBLAS-openmp, jemalloc) under ulimit -v ${capGiB} GiB; median of ${reps} steps after a warm-up step; each measurement in its own process (peak RSS = that process's)`,
  results,
};
mkdirSync('bench/results', { recursive: true });
writeResultJson('bench/results/catalogue.json', out);
const n0 = (x: number | undefined) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
console.log(`\n${'items'.padStart(9)} ${'towerlab ex/s'.padStart(14)} ${'peak MiB'.padStart(9)} ${'bf16 ex/s'.padStart(10)} ${'pytorch ex/s'.padStart(13)} ${'peak MiB'.padStart(9)} ${'ratio'.padStart(7)} ${'bf16'.padStart(7)}`);
for (const r of results) {
  const p = r.pytorch;
  console.log(
    `${n0(r.items).padStart(9)} ${n0(r.towerlab.examples_per_s).padStart(14)} ${n0(r.towerlab.peak_rss_mib).padStart(9)} ${n0(r.towerlabBf16?.examples_per_s).padStart(10)} ${(p ? (p.error ?? n0(p.examples_per_s)) : 'skipped').padStart(13)} ${n0(p?.peak_rss_mib).padStart(9)} ${(r.ratio ? r.ratio.toFixed(2) + '×' : '-').padStart(7)} ${(r.ratioBf16 ? r.ratioBf16.toFixed(2) + '×' : '-').padStart(7)}`,
  );
}
console.log('written bench/results/catalogue.json');
