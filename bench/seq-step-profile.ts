/**
 * Where one training step's time goes, by phase, for the full-catalogue softmax and the in-batch softmax on
 * Amazon Beauty (SASRec dim 64, 2 blocks, max length 50, batch 128, as bench/seq-epoch.ts): every backend call
 * and the step's phases are wrapped with timers; the two sides alternate in blocks of --steps steps, --rounds
 * times, in this one process. Prints milliseconds per step by phase, wall and CPU time of all threads (medians over
 * rounds; CPU time is the steadier figure on a shared machine), and the load average.
 *
 *   npx tsx bench/seq-step-profile.ts [--steps 20] [--rounds 2] [--data ../shared/data/amazon-beauty/Beauty.txt]
 */
import { loadavg } from 'node:os';

import { getBackend } from '../src/compute/index.ts';
import { nativeInfo } from '../src/compute/native.ts';
import type { Backend } from '../src/compute/backend.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { buildTower, defaultSeqModel, loadSeqData } from '../src/seq/experiment.ts';
import { buildObjective } from '../src/seq/objectives.ts';
import { PackedBuilder } from '../src/seq/packed.ts';
import { SeqPair, seqBatch } from '../src/seq/pair.ts';
import { Rng } from '../src/util/rng.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const steps = Number(arg('steps', '20'));
const rounds = Number(arg('rounds', '2'));
const raw = await getBackend();
const acc = new Map<string, number>();
let depth = 0;
const cpuAcc = new Map<string, number>();
const add = (k: string, ms: number, cpuMs: number) => {
  acc.set(k, (acc.get(k) ?? 0) + ms);
  cpuAcc.set(k, (cpuAcc.get(k) ?? 0) + cpuMs);
};
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
function timed<T extends object>(obj: T, prefix: string, names?: string[]): T {
  for (const k of names ?? Object.keys(obj)) {
    const f = (obj as Record<string, unknown>)[k];
    if (typeof f !== 'function') continue;
    (obj as Record<string, unknown>)[k] = function (this: unknown, ...a: unknown[]) {
      const outer = depth === 0;
      depth++;
      const t = performance.now();
      const c = outer ? cpuNow() : 0;
      try {
        return (f as (...x: unknown[]) => unknown).apply(this, a);
      } finally {
        depth--;
        if (outer) add(`${prefix}${k}`, performance.now() - t, cpuNow() - c);
      }
    };
  }
  return obj;
}
const backend: Backend = timed({ ...raw } as Backend, 'backend.');
const { data } = await loadSeqData({ path: arg('data', '../shared/data/amazon-beauty/Beauty.txt') });
const users: number[] = [];
for (let u = 0; u < data.numUsers; u++) if (data.train.offsets[u + 1] - data.train.offsets[u] >= 2) users.push(u);
const order = Int32Array.from(users);
new Rng(7).shuffle(order);
const sides = { inbatch: loadRecipe('recipes/in-batch.json'), full: loadRecipe('recipes/seq-full-softmax.json') };
const results: Record<string, Array<Record<string, number>>> = { inbatch: [], full: [] };
const loadBefore = loadavg();
for (let r = 0; r < rounds; r++) {
  for (const [name, recipe] of Object.entries(sides)) {
    const model = { ...defaultSeqModel, seed: 1 + r };
    const tower = buildTower(model, data.numItems);
    const objective = buildObjective({ kind: 'softmax', score: 'dot', recipe: { ...recipe, temperature: 1 } }, data, model.dim);
    const pair = new SeqPair(tower, 'dot');
    // Phases of the pair (tower forward/backward, item update, dense Adam) measured outside the backend calls.
    timed(tower, 'tower.', ['forward', 'backward', 'stepDense']);
    timed(tower.items, 'items.', ['applyGradients']);
    const step = objective.stepFor(backend, pair);
    const builder = new PackedBuilder(tower.maxLen);
    const rng = new Rng(11 + r);
    // Warm-up step (buffers, tiles) outside the timed span.
    const warm = builder.training(data.train, order.subarray(0, 128));
    step.run(seqBatch(warm), rng);
    acc.clear();
    cpuAcc.clear();
    let tokens = 0;
    const c0 = cpuNow();
    const info0 = nativeInfo();
    const t0 = performance.now();
    for (let s = 1; s <= steps; s++) {
      const batch = builder.training(data.train, order.subarray(s * 128, (s + 1) * 128));
      tokens += batch.tokens;
      step.run(seqBatch(batch), rng);
    }
    const total = performance.now() - t0;
    const row: Record<string, number> = { total: total / steps, 'total (cpu)': (cpuNow() - c0) / steps, tokensPerStep: tokens / steps };
    for (const [k, v] of acc) row[k] = v / steps;
    for (const [k, v] of cpuAcc) row[`${k} (cpu)`] = v / steps;
    const info1 = nativeInfo();
    if (info0 && info1) {
      // Whether the pool really shared the work: the oversubscription guard's single-threaded seconds, and the
      // share of pieces the second thread computed.
      row['pool backoffs (s)'] = info1.parallelBackoffs - info0.parallelBackoffs;
      const t0n = info1.threadTasks[0] - info0.threadTasks[0];
      const t1n = (info1.threadTasks[1] ?? 0) - (info0.threadTasks[1] ?? 0);
      row['pool pieces on thread 2 (%)'] = (100 * t1n) / Math.max(1, t0n + t1n);
    }
    results[name].push(row);
    process.stderr.write(`round ${r + 1} ${name}: ${(total / steps).toFixed(1)} ms/step\n`);
  }
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
for (const [name, rows] of Object.entries(results)) {
  const keys = [...new Set(rows.flatMap((x) => Object.keys(x)))].sort();
  console.log(`${name} (ms per step, median of ${rows.length}):`);
  for (const k of keys) console.log(`  ${k.padEnd(28)} ${med(rows.map((x) => x[k] ?? 0)).toFixed(2)}`);
}
console.log(`load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
