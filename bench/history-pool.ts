/**
 * Cost of user-history pooling on ML-1M (../shared/data/ml-1m-random-split/train.txt, the whole file, no
 * validation, no test evaluation): one training epoch of search B's winner (recipes/ml1m/history-search: batch
 * 1024, MF dim 128, in-batch + 1,024 uniform negatives + logQ, `--user-history mean`, g 0.32, ≤ 100 items), timed
 * in one process on the native backend with the pooling run by
 *   - `native`:   the native kernel (native/history_pool.cc),
 *   - `portable`: the TypeScript loop (src/compute/js-history.ts, the code main ran before the kernel),
 *   - `off`:      no history (`--user-history none`), the rest of the step alone,
 * alternated in the order given. Same seed, so `native` and `portable` must end with the same loss, bit for bit.
 * Writes bench/results/history-pool.json (or --out) with the load average before and after each run.
 *
 *   npx tsx bench/history-pool.ts [--order off,native,portable,native,off] [--epochs 1] [--out history-pool.json]
 */
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { modelOptionsFrom, trainConfigFrom } from '../src/cli/options.ts';
import { asRunOptions, normalizeOptions, trainOptionDefaults } from '../src/cli/run-options.ts';
import { getBackend } from '../src/compute/index.ts';
import { historyPoolBackwardJs, historyPoolForwardJs } from '../src/compute/js-history.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const ML1M = resolve('..', 'shared', 'data', 'ml-1m-random-split');
if (!existsSync(join(ML1M, 'train.txt'))) {
  console.log(`bench:history-pool skipped: ${ML1M}/train.txt not found (the shared data folder is absent)`);
  process.exit(0);
}
const CONFIG = 'recipes/ml1m/history-search';
const order = arg('order', 'off,native,portable,native,off').split(',') as Array<'native' | 'portable' | 'off'>;
const epochs = Number(arg('epochs', '1'));
const OUT = arg('out', 'history-pool.json');

const recipe = loadRecipe(`${CONFIG}/recipe.json`);
const options = normalizeOptions(JSON.parse(readFileSync(`${CONFIG}/options.json`, 'utf8')), `${CONFIG}/options.json`);
const base = { ...trainOptionDefaults(), ...options, epochs, scheduleEpochs: epochs };

const backend = await getBackend('native');
const nativeKernels = { f: backend.historyPoolForward, b: backend.historyPoolBackward };

const runs: Array<Record<string, unknown>> = [];
for (const variant of order) {
  // The native backend object is the one runExperiment gets (getBackend caches it): swap its pooling kernels.
  backend.historyPoolForward = variant === 'portable' ? historyPoolForwardJs : nativeKernels.f;
  backend.historyPoolBackward = variant === 'portable' ? historyPoolBackwardJs : nativeKernels.b;
  const o = variant === 'off' ? { ...base, userHistory: 'none' } : base;
  const load0 = loadavg();
  const r = await runExperiment({
    data: { path: join(ML1M, 'train.txt') },
    split: { kind: 'files', train: join(ML1M, 'train.txt'), val: null, test: join(ML1M, 'test.txt'), valFraction: 0, seed: 42 },
    recipe,
    model: { ...modelOptionsFrom(asRunOptions(o)), seed: 1 },
    train: { ...trainConfigFrom(asRunOptions(o)), progress: 'none' },
    ks: [20],
    out: null,
    backend: 'native',
    skipTest: true,
  });
  const run = {
    variant,
    epochs: r.train.epochs,
    trainSeconds: r.train.trainSeconds,
    secondsPerEpoch: r.train.trainSeconds / r.train.epochs,
    examplesPerSecond: r.examples_per_s,
    finalLoss: r.train.finalLoss,
    loadBefore: load0.map((x) => +x.toFixed(2)),
    loadAfter: loadavg().map((x) => +x.toFixed(2)),
  };
  console.log(JSON.stringify(run));
  runs.push(run);
}
backend.historyPoolForward = nativeKernels.f;
backend.historyPoolBackward = nativeKernels.b;

// Mean over the runs of each variant (the order alternates them).
const mean = (v: string): { secondsPerEpoch: number; losses: number[] } | undefined => {
  const rs = runs.filter((r) => r.variant === v) as Array<{ secondsPerEpoch: number; finalLoss: number }>;
  return rs.length ? { secondsPerEpoch: rs.reduce((a, r) => a + r.secondsPerEpoch, 0) / rs.length, losses: rs.map((r) => r.finalLoss) } : undefined;
};
const nat = mean('native');
const por = mean('portable');
const off = mean('off');
const summary = {
  portableOverNative: nat && por ? por.secondsPerEpoch / nat.secondsPerEpoch : null,
  nativeOverOff: nat && off ? nat.secondsPerEpoch / off.secondsPerEpoch : null,
  portableOverOff: por && off ? por.secondsPerEpoch / off.secondsPerEpoch : null,
  secondsPerEpoch: { native: nat?.secondsPerEpoch ?? null, portable: por?.secondsPerEpoch ?? null, off: off?.secondsPerEpoch ?? null },
  // Every run of native and portable ends on the same loss, bit for bit (same seed, bit-identical kernels).
  sameLoss: nat && por ? [...nat.losses, ...por.losses].every((l) => l === nat.losses[0]) : null,
};
console.log(JSON.stringify(summary));
writeResultJson(join('bench', 'results', OUT), {
  command: `npx tsx bench/history-pool.ts --order ${order.join(',')} --epochs ${epochs}`,
  config: CONFIG,
  data: 'ml-1m-random-split/train.txt (whole file, no validation, no test evaluation)',
  threads: (await import('../src/compute/native.ts')).nativeInfo()?.threads ?? null,
  runs,
  summary,
});
