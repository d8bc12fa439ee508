/**
 * Training time per epoch on Amazon Beauty (SASRec dim 64, 2 blocks, max length 50, batch 128): the exact
 * full-catalogue softmax (recipes/seq-full-softmax.json) against the in-batch softmax (recipes/in-batch.json),
 * one epoch each, alternated for --rounds rounds in this one process so both see the same machine load; each
 * side's median epoch is reported with the ratio, and each round's ratio (no validation, no evaluation inside the timed
 * span); the load average before and after is recorded (the machine is shared). Beside the wall-clock figures, the
 * process's CPU time (all threads) of each training call: on a machine loaded past its cores the wall clock mostly
 * measures the scheduler, the CPU time what the code costs.
 *
 *   npx tsx bench/seq-epoch.ts [--rounds 2] [--data ../shared/data/amazon-beauty/Beauty.txt]
 */
import { loadavg } from 'node:os';

import { getBackend } from '../src/compute/index.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { buildTower, defaultSeqModel, loadSeqData } from '../src/seq/experiment.ts';
import { buildObjective } from '../src/seq/objectives.ts';
import { trainSequential } from '../src/seq/trainer.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const backend = await getBackend();
const { data } = await loadSeqData({ path: arg('data', '../shared/data/amazon-beauty/Beauty.txt') });
const rounds = Number(arg('rounds', '2'));
const loadBefore = loadavg();
const sides = { inbatch: loadRecipe('recipes/in-batch.json'), full: loadRecipe('recipes/seq-full-softmax.json') };
const times: Record<string, number[]> = { inbatch: [], full: [] };
const cpu: Record<string, number[]> = { inbatch: [], full: [] };
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
    cpu[name].push((c.user + c.system) / 1e6);
    process.stderr.write(`round ${r + 1} ${name}: ${s.trainSeconds.toFixed(1)} s/epoch (${Math.round(s.positionsPerSecond)} positions/s), CPU ${cpu[name][r].toFixed(1)} s\n`);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const out = { data: arg('data', 'Beauty'), rounds, secondsPerEpoch: { inbatch: times.inbatch, full: times.full }, medianInbatch: med(times.inbatch), medianFull: med(times.full), ratio: med(times.full) / med(times.inbatch), ratioPerRound: times.full.map((f, i) => f / times.inbatch[i]), cpuSecondsPerEpoch: cpu, cpuRatio: med(cpu.full) / med(cpu.inbatch), loadAverage: { before: loadBefore, after: loadavg() } };
console.log(JSON.stringify(out));
