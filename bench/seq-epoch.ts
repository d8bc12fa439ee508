/**
 * Training time per epoch on Amazon Beauty (SASRec dim 64, 2 blocks, max length 50, batch 128): the exact
 * full-catalogue softmax (recipes/seq-full-softmax.json, and its bf16-products variant recipes/seq-full-softmax-bf16.json)
 * against the in-batch softmax (recipes/in-batch.json),
 * one epoch each, alternated for --rounds rounds in this one process so both see the same machine load; each
 * side's median epoch is reported with the ratio, and each round's ratio (no validation, no evaluation inside the timed
 * span); the load average before and after is recorded (the machine is shared). Beside the wall-clock figures, the
 * process's CPU time (all threads) of each training call: on a machine loaded past its cores the wall clock mostly
 * measures the scheduler, the CPU time what the code costs.
 *
 * Then the lower bound on the ratio from the products' flops at this machine's measured peak (see the `bound`
 * comment below; needs g++) and the kernel's own CPU time per step at Beauty's mean rows per step, both precisions.
 *
 *   npx tsx bench/seq-epoch.ts [--rounds 2] [--data ../shared/data/amazon-beauty/Beauty.txt] [--out file.json]
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';

import { getBackend } from '../src/compute/index.ts';
import { nativeInfo } from '../src/compute/native.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { buildTower, defaultSeqModel, loadSeqData } from '../src/seq/experiment.ts';
import { buildObjective } from '../src/seq/objectives.ts';
import { trainSequential, type SeqTrainSummary } from '../src/seq/trainer.ts';
import { Rng } from '../src/util/rng.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const backend = await getBackend();
const { data } = await loadSeqData({ path: arg('data', '../shared/data/amazon-beauty/Beauty.txt') });
const rounds = Number(arg('rounds', '2'));
const loadBefore = loadavg();
const sides = {
  inbatch: loadRecipe('recipes/in-batch.json'),
  full: loadRecipe('recipes/seq-full-softmax.json'),
  fullBf16: loadRecipe('recipes/seq-full-softmax-bf16.json'),
};
const times: Record<string, number[]> = { inbatch: [], full: [], fullBf16: [] };
let stats0!: SeqTrainSummary; // an in-batch run: positions and steps per epoch
const cpu: Record<string, number[]> = { inbatch: [], full: [], fullBf16: [] };
for (let r = 0; r < rounds; r++) {
  for (const [name, recipe] of Object.entries(sides)) {
    const model = { ...defaultSeqModel, seed: 1 + r };
    const tower = buildTower(model, data.numItems);
    const objective = buildObjective({ kind: 'softmax', score: 'dot', recipe: { ...recipe, temperature: 1 } }, data, model.dim);
    const c0 = process.cpuUsage();
    const s = trainSequential(
      { backend, tower, objective, data, score: 'dot', excludeHistory: true },
      { epochs: 1, batchSize: 128, seed: 1 + r, evalEvery: 0, patience: 0, valMetric: 'ndcg@10', valUsers: 1, progress: 'none' },
    );
    const c = process.cpuUsage(c0);
    times[name].push(s.trainSeconds);
    if (name === 'inbatch') stats0 = s;
    cpu[name].push((c.user + c.system) / 1e6);
    process.stderr.write(`round ${r + 1} ${name}: ${s.trainSeconds.toFixed(1)} s/epoch (${Math.round(s.positionsPerSecond)} positions/s), CPU ${cpu[name][r].toFixed(1)} s\n`);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

// ---- The bound. The full-catalogue step's three products cost 6·R·N·d flops (R positions of the batch, N items,
// d dims), the in-batch step's next to nothing, so the full-catalogue epoch is at least the in-batch epoch plus
// 6·P·N·d flops (P positions per epoch) spread over both cores at the core's peak multiply-add rate (measured
// register-only by bench/native/peak-flops.cc): ratio ≥ 1 + 6·P·N·d / (cores · peak · in-batch epoch).
const positions = Math.round(stats0.positionsPerSecond * stats0.trainSeconds);
const steps = stats0.steps;
const flopsPerEpoch = 6 * positions * data.numItems * defaultSeqModel.dim;
const peak = measurePeak();
const cores = Math.min(availableParallelism(), Number(process.env.TOWERLAB_THREADS ?? availableParallelism()));
const boundRatio = (gflops: number | null) => (gflops ? 1 + flopsPerEpoch / (cores * gflops * 1e9 * med(times.inbatch)) : null);
// The kernel alone at the mean rows per step, CPU time of all threads per call (median of 15 after 2 warm-ups).
const R = Math.round(positions / steps);
const kernelMs: Record<string, number> = {};
{
  const rng = new Rng(7);
  const d = defaultSeqModel.dim;
  const q = Float32Array.from({ length: R * d }, () => rng.normal());
  const e = Float32Array.from({ length: data.numItems * d }, () => rng.normal() * 0.3);
  const target = Int32Array.from({ length: R }, () => rng.int(data.numItems));
  const dq = new Float32Array(R * d);
  const de = new Float32Array(data.numItems * d);
  for (const precision of ['fp32', 'bf16'] as const) {
    const ms: number[] = [];
    for (let k = 0; k < 17; k++) {
      const c0 = process.cpuUsage();
      backend.fullSoftmax({ q, e, R, N: data.numItems, d, target, scale: 1, rowWeight: null, dq, de, precision });
      const c = process.cpuUsage(c0);
      if (k >= 2) ms.push((c.user + c.system) / 1e3);
    }
    kernelMs[precision] = med(ms);
  }
}
process.stderr.write(
  `bound: ${positions} positions/epoch, ${steps} steps (R ≈ ${R}), ${(flopsPerEpoch / 1e12).toFixed(3)} TFLOP/epoch; peak ${peak.fp32GflopsPerCore ?? '?'} (fp32) / ${peak.bf16GflopsPerCore ?? '?'} (bf16) GFLOPS per core × ${cores} → ratio ≥ ${boundRatio(peak.fp32GflopsPerCore)?.toFixed(2)} (fp32) / ${boundRatio(peak.bf16GflopsPerCore)?.toFixed(2)} (bf16); kernel CPU ${kernelMs.fp32.toFixed(1)} / ${kernelMs.bf16.toFixed(1)} ms per step\n`,
);

function measurePeak(): { fp32GflopsPerCore: number | null; bf16GflopsPerCore: number | null; note?: string } {
  const exe = join('build', 'peak-flops');
  const cc = spawnSync('g++', ['-O2', '-march=native', 'bench/native/peak-flops.cc', '-o', exe], { encoding: 'utf8' });
  if (cc.status !== 0) return { fp32GflopsPerCore: null, bf16GflopsPerCore: null, note: `g++ failed: ${(cc.stderr || cc.error?.message || '').split('\n')[0]}` };
  const r = spawnSync(exe, [], { encoding: 'utf8' });
  return JSON.parse(r.stdout);
}
const out = {
  data: arg('data', 'Beauty'),
  rounds,
  bf16Kernel: nativeInfo()?.bf16Kernel ?? 'portable backend',
  secondsPerEpoch: times,
  medianInbatch: med(times.inbatch),
  medianFull: med(times.full),
  medianFullBf16: med(times.fullBf16),
  ratio: med(times.full) / med(times.inbatch),
  ratioBf16: med(times.fullBf16) / med(times.inbatch),
  ratioPerRound: times.full.map((f, i) => f / times.inbatch[i]),
  ratioBf16PerRound: times.fullBf16.map((f, i) => f / times.inbatch[i]),
  cpuSecondsPerEpoch: cpu,
  cpuRatio: med(cpu.full) / med(cpu.inbatch),
  cpuRatioBf16: med(cpu.fullBf16) / med(cpu.inbatch),
  loadAverage: { before: loadBefore, after: loadavg() },
  bound: {
    positionsPerEpoch: positions,
    stepsPerEpoch: steps,
    rowsPerStep: R,
    items: data.numItems,
    dim: defaultSeqModel.dim,
    tflopPerEpoch: flopsPerEpoch / 1e12,
    cores,
    peak,
    minRatioFp32: boundRatio(peak.fp32GflopsPerCore),
    minRatioBf16: boundRatio(peak.bf16GflopsPerCore),
    kernelCpuMsPerStep: kernelMs,
    kernelGflopsPerCore: Object.fromEntries(Object.entries(kernelMs).map(([k, v]) => [k, (6 * R * data.numItems * defaultSeqModel.dim) / (v * 1e6)])),
  },
};
console.log(JSON.stringify(out));
if (process.argv.includes('--out')) writeFileSync(arg('out', 'bench/results/seq-epoch.json'), JSON.stringify(out, null, 2) + '\n');
