/**
 * Per-phase profile of one training step of the bench:throughput model (6040 × 3706, dim 64, MLP 64→128→64,
 * τ 0.05, in-batch softmax + accidental-hit masking, lazy Adam + Adam): wraps every backend call with a timer
 * and attributes the rest of the step to JS (assembler, duplicate summing, copies, allocations).
 * Times are this process's CPU time (process.cpuUsage, all threads), not wall time, so a machine shared with
 * other jobs inflates them much less; run with --threads 1 so CPU time is the step's own time.
 *
 *   npx tsx bench/profile-step.ts [--batch 256,1024,4096] [--threads 1]
 */
import { getBackend } from '../src/compute/index.ts';
import type { Backend } from '../src/compute/backend.ts';
import { buildModel } from '../src/model/build.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
process.env.TOWERLAB_THREADS ??= arg('threads', '1');
const batches = arg('batch', '256,1024,4096').split(',').map(Number);
const USERS = 6040;
const ITEMS = 3706;

const base = await getBackend('native');
const times = new Map<string, number>();
let calls = 0;
// CPU milliseconds of this process (user + system, microsecond resolution).
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
// Phase names: linear layers split by direction, sparse vs dense optimiser.
const phase = (k: string, args: unknown[]): string => {
  if (k === 'linearForward') return 'mlp fwd';
  if (k === 'linearBackward') return 'mlp bwd';
  if (k === 'l2normForward' || k === 'l2normBackward') return 'l2norm fwd+bwd';
  if (k === 'gatherRows') return 'gather';
  if (k === 'sparseUpdate') return 'lazy adam (tables)';
  if (k === 'adam') return 'adam (mlp)';
  if (k === 'contrastive') return 'logits+softmax+grads';
  return k;
};
const wrapped = { ...base } as Record<string, unknown>;
for (const [k, f] of Object.entries(base)) {
  if (typeof f !== 'function') continue;
  wrapped[k] = (...args: unknown[]) => {
    calls++;
    const t = cpuMs();
    const r = (f as (...a: unknown[]) => unknown)(...args);
    const p = phase(k, args);
    times.set(p, (times.get(p) ?? 0) + cpuMs() - t);
    return r;
  };
}
const backend = wrapped as unknown as Backend;
// What one timed call adds (two cpuUsage reads + the bookkeeping), subtracted from the JS share below.
const timerMs = (() => {
  const n = 20000;
  const t = cpuMs();
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const a = cpuMs();
    m.set('x', (m.get('x') ?? 0) + cpuMs() - a);
  }
  return (cpuMs() - t) / n;
})();

for (const B of batches) {
  const model = buildModel(
    { dim: 64, mlp: [128, 64], featureDim: 16, useFeatures: false, sparseOptimizer: 'lazyadam', sparseLr: 1e-3, denseLr: 1e-3, seed: 1 },
    USERS,
    ITEMS,
    [],
    [],
  );
  const recipe = parseRecipe({ temperature: 0.05, corrections: { maskSameItem: true, maskSameUser: true, logQ: false } });
  const step = new TrainStep(backend, model, recipe, buildSources(recipe, { numItems: ITEMS, trainItems: new Int32Array(0), dim: 64 }));
  const rng = new Rng(5);
  const pool = Array.from({ length: 16 }, () => ({
    u: Int32Array.from({ length: B }, () => rng.int(USERS)),
    i: Int32Array.from({ length: B }, () => rng.int(ITEMS)),
  }));
  for (let s = 0; s < 10; s++) step.run(pool[s % 16].u, pool[s % 16].i, rng);
  times.clear();
  calls = 0;
  const steps = Number(arg('steps', '0')) || Math.max(20, Math.round((400 * 256) / B));
  const w0 = performance.now();
  const t0 = cpuMs();
  for (let s = 0; s < steps; s++) step.run(pool[s % 16].u, pool[s % 16].i, rng);
  const total = (cpuMs() - t0) / steps;
  const wall = (performance.now() - w0) / steps;
  let native = 0;
  const rows: [string, number][] = [];
  for (const [k, v] of times) {
    rows.push([k, v / steps]);
    native += v / steps;
  }
  const timers = (calls / steps) * timerMs;
  rows.push(['JS (assembler, dup-sum, copies, N-API calls)', total - native - timers]);
  rows.push([`profiler's own timers (${(calls / steps).toFixed(0)} calls/step)`, timers]);
  console.log(`\nB=${B}: ${total.toFixed(3)} CPU ms/step (${Math.round((B * 1000) / total).toLocaleString('en-US')} ex/CPU-s; wall ${wall.toFixed(3)} ms), ${steps} steps`);
  for (const [k, v] of rows.sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(42)} ${v.toFixed(3).padStart(8)} ms  ${((100 * v) / total).toFixed(1).padStart(5)}%`);
}
