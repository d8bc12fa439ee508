/**
 * The negatives toolbox side by side on real data: every remedy for in-batch negatives as a recipe, same model,
 * same split, several seeds. Reports Recall@20 / NDCG@20 / tail recall (mean ± std), the cost in examples/s,
 * and the diagnostics of the last validation. Includes the batch-size question: in-batch at batch 128 and 2048
 * vs batch 128 with a cross-batch queue of 2048.
 * Reads ../shared/data (skips a data set that is absent). Writes bench/results/negatives.json.
 *
 *   npm run bench:negatives [-- --datasets ml-100k,beauty --seeds 3 --epochs 20 --only logq,queue]
 */
import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { loadInteractions } from '../src/data/load.ts';
import { prepare } from '../src/data/prepare.ts';
import { splitInteractions, type SplitSpec } from '../src/data/split.ts';
import { popularityBaseline } from '../src/eval/baselines.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const seeds = Number(arg('seeds', '3'));
const epochs = Number(arg('epochs', '20'));
const only = arg('only', '').split(',').filter(Boolean);
const datasets = arg('datasets', 'ml-100k,beauty').split(',').filter(Boolean);
const shared = resolve('..', 'shared', 'data');

const DATASETS: Record<string, { path: string; split: SplitSpec; note: string }> = {
  'ml-100k': { path: `${shared}/ml-100k/ml-100k.inter`, split: { kind: 'random', val: 0.1, test: 0.1, seed: 42 }, note: 'random 80/10/10' },
  beauty: { path: `${shared}/amazon-beauty/Beauty.txt`, split: { kind: 'loo' }, note: 'leave-last-one-out' },
};

const CONFIGS: Array<{ key: string; recipe: string; batch: number }> = [
  { key: 'in-batch', recipe: 'recipes/in-batch.json', batch: 512 },
  { key: 'logq', recipe: 'recipes/in-batch-logq.json', batch: 512 },
  { key: 'logq-streaming', recipe: 'recipes/in-batch-logq-streaming.json', batch: 512 },
  { key: 'mixed-uniform', recipe: 'recipes/mixed-uniform.json', batch: 512 },
  { key: 'mixed-popularity', recipe: 'recipes/popularity-mixed.json', batch: 512 },
  { key: 'logq-b128', recipe: 'recipes/in-batch-logq.json', batch: 128 },
  { key: 'logq-b2048', recipe: 'recipes/in-batch-logq.json', batch: 2048 },
  { key: 'queue-b128', recipe: 'recipes/queue.json', batch: 128 },
  { key: 'queue-momentum-b128', recipe: 'recipes/queue-momentum.json', batch: 128 },
  { key: 'debiased', recipe: 'recipes/debiased.json', batch: 512 },
  { key: 'fn-mask', recipe: 'recipes/fn-mask.json', batch: 512 },
  { key: 'same-tower', recipe: 'recipes/same-tower.json', batch: 512 },
  { key: 'symmetric', recipe: 'recipes/symmetric.json', batch: 512 },
];

const METRICS = ['recall@20', 'ndcg@20', 'recallTail@20', 'coverage@20'];
const stats = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};

const results: any[] = [];
const backendName = (await getBackend()).name;
const outFile = arg('out', 'bench/results/negatives.json');
function writeResults(complete: boolean) {
  const out = {
    complete,
    bench: 'negatives',
    date: new Date().toISOString(),
    backend: backendName,
    protocol: Object.fromEntries(Object.entries(DATASETS).map(([k, v]) => [k, `${v.note}; full-corpus ranking, train+val items excluded; early stopping on val recall@20 (patience 3, max ${epochs} epochs)`])),
    model: `id towers dim ${defaultModelOptions.dim}, MLP ${defaultModelOptions.mlp.join('→')}, τ from the recipe`,
    seeds,
    results,
  };
  mkdirSync('bench/results', { recursive: true });
  writeResultJson(outFile, out);
}

for (const [name, ds] of Object.entries(DATASETS)) {
  if (!datasets.includes(name)) continue;
  if (!existsSync(ds.path)) {
    console.log(`${name}: skipped, ${ds.path} not found`);
    continue;
  }
  const data = await loadInteractions({ path: ds.path });
  const prep = prepare(data, splitInteractions(data, ds.split));
  const pop = popularityBaseline({ backend: await getBackend(), test: prep.test, exclude: prep.seenWithVal, ks: [20], itemPopularity: prep.itemCounts }).metrics;
  results.push({ dataset: name, config: 'popularity', metrics: Object.fromEntries(METRICS.map((k) => [k, { mean: pop[k], std: 0 }])) });
  for (const c of CONFIGS) {
    if (only.length && !only.includes(c.key)) continue;
    const recipe = loadRecipe(c.recipe);
    const runs: any[] = [];
    for (let seed = 1; seed <= seeds; seed++) {
      process.stderr.write(`${name} ${c.key} (batch ${c.batch}) seed ${seed}/${seeds}...\n`);
      const r = await runExperiment({
        data: { path: ds.path },
        loaded: data,
        split: ds.split,
        recipe,
        model: { ...defaultModelOptions, seed },
        train: { epochs, batchSize: c.batch, seed, evalEvery: 1, patience: 3, valMetric: 'recall@20', valMaxUsers: 3000, resume: false, progress: 'none', logEvery: 0 },
        ks: [20],
        out: null,
      });
      const last = r.train.history[r.train.history.length - 1];
      runs.push({ metrics: r.metrics, examplesPerSecond: r.examples_per_s, epochs: r.train.epochs, bestEpoch: r.train.bestEpoch, diagnostics: last?.diagnostics });
    }
    const diagKeys = Object.keys(runs[0].diagnostics ?? {});
    results.push({
      dataset: name,
      config: c.key,
      recipe: recipe.name,
      batch: c.batch,
      metrics: Object.fromEntries(METRICS.map((k) => [k, stats(runs.map((r) => r.metrics[k]))])),
      examples_per_s: stats(runs.map((r) => r.examplesPerSecond)).mean,
      epochs: runs.map((r) => r.epochs),
      diagnostics: Object.fromEntries(diagKeys.map((k) => [k, stats(runs.map((r) => r.diagnostics[k])).mean])),
    });
    writeResults(false); // after every configuration, so an interrupted run keeps what it measured
  }
}

writeResults(true);
const fmt = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)}±${s.std.toFixed(4)}`;
console.log(`\n${'data'.padEnd(9)}${'config'.padEnd(22)}${METRICS.map((m) => m.padStart(17)).join('')}${'ex/s'.padStart(9)}${'fnRate'.padStart(8)}${'effNeg'.padStart(8)}`);
for (const r of results) {
  console.log(
    `${r.dataset.padEnd(9)}${r.config.padEnd(22)}${METRICS.map((m) => fmt(r.metrics[m]).padStart(17)).join('')}${(r.examples_per_s ? Math.round(r.examples_per_s).toString() : '-').padStart(9)}${(r.diagnostics?.fnRate?.toFixed(3) ?? '-').padStart(8)}${(r.diagnostics?.effectiveNegatives?.toFixed(0) ?? '-').padStart(8)}`,
  );
}
console.log(`written ${outFile}`);
