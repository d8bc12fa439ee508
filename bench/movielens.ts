/**
 * MovieLens-100K: popularity vs in-batch softmax vs in-batch + logQ (train frequency and streaming estimator),
 * Recall@20 / NDCG@20 / tail recall, 3 seeds, mean ± std. Random 80/10/10 split of all interactions (implicit
 * feedback), full-corpus ranking with training items excluded, early stopping on validation Recall@20.
 * Reads ../shared/data/ml-100k (skips with a message when absent). Writes bench/results/movielens.json.
 *
 *   npm run bench:movielens [-- --seeds 3 --epochs 30]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadInteractions } from '../src/data/load.ts';
import { prepare } from '../src/data/prepare.ts';
import { splitInteractions, type SplitSpec } from '../src/data/split.ts';
import { popularityBaseline } from '../src/eval/baselines.ts';
import { getBackend } from '../src/compute/index.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const seeds = Number(arg('seeds', '3'));
const epochs = Number(arg('epochs', '30'));
const path = resolve('..', 'shared', 'data', 'ml-100k', 'ml-100k.inter');
if (!existsSync(path)) {
  console.log(`bench:movielens skipped: ${path} not found (the shared data folder is absent)`);
  process.exit(0);
}
const METRICS = ['recall@20', 'ndcg@20', 'recallTail@20', 'recallHead@20', 'coverage@20'];
const recipes = ['recipes/in-batch.json', 'recipes/in-batch-logq.json', 'recipes/in-batch-logq-streaming.json'];
const data = await loadInteractions({ path });
const rows: Array<{ name: string; runs: Array<Record<string, number>>; examplesPerSecond: number[] }> = [];

// Popularity does not depend on a training seed; the split seed is fixed so every recipe sees the same split.
const split: SplitSpec = { kind: 'random', val: 0.1, test: 0.1, seed: 42 };
const prep = prepare(data, splitInteractions(data, split));
const pop = popularityBaseline({ backend: await getBackend(), test: prep.test, exclude: prep.seenWithVal, ks: [20], itemPopularity: prep.itemCounts }).metrics;
rows.push({ name: 'popularity', runs: [pop], examplesPerSecond: [] });

for (const file of recipes) {
  const recipe = loadRecipe(file);
  const row = { name: recipe.name ?? file, runs: [] as Array<Record<string, number>>, examplesPerSecond: [] as number[] };
  for (let seed = 1; seed <= seeds; seed++) {
    process.stderr.write(`${row.name} seed ${seed}...\n`);
    const r = await runExperiment({
      data: { path },
      loaded: data,
      split,
      recipe,
      model: { ...defaultModelOptions, seed },
      train: { epochs, batchSize: 512, seed, evalEvery: 1, patience: 4, valMetric: 'recall@20', valMaxUsers: 5000, resume: false, progress: 'none', logEvery: 0 },
      ks: [20],
      out: null,
    });
    row.runs.push(r.metrics);
    row.examplesPerSecond.push(r.examples_per_s);
  }
  rows.push(row);
}

const stats = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};
const summary = rows.map((r) => ({
  name: r.name,
  seeds: r.runs.length,
  metrics: Object.fromEntries(METRICS.map((k) => [k, stats(r.runs.map((m) => m[k]))])),
  examples_per_s: r.examplesPerSecond.length ? stats(r.examplesPerSecond).mean : null,
}));
const backend = (await getBackend()).name;
const out = {
  bench: 'movielens',
  date: new Date().toISOString(),
  data: `${path}: ${data.userVocab.size} users, ${data.itemVocab.size} items, ${data.users.length} interactions`,
  protocol: 'random 80/10/10 split (seed 42) of all interactions; full-corpus ranking over all items, training+validation items excluded; early stopping on validation recall@20 (patience 4)',
  model: `id towers dim ${defaultModelOptions.dim}, MLP ${defaultModelOptions.mlp.join('→')}, batch 512, lazy Adam ${defaultModelOptions.sparseLr} / Adam ${defaultModelOptions.denseLr}`,
  backend,
  rows: summary,
};
mkdirSync('bench/results', { recursive: true });
writeResultJson('bench/results/movielens.json', out);
const fmt = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}`;
console.log(`\n${'recipe'.padEnd(28)}${METRICS.map((m) => m.padStart(20)).join('')}`);
for (const r of summary) console.log(`${r.name.padEnd(28)}${METRICS.map((m) => fmt(r.metrics[m]).padStart(20)).join('')}`);
console.log(`\n${out.protocol}\nwritten bench/results/movielens.json`);
