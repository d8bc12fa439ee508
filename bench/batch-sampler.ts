/**
 * Batch composition on real data (recipe.batchSampler): shuffle vs no-duplicates vs BatchSampler's rwr
 * (Yang et al. KDD 2023) at two restart probabilities, on top of in-batch softmax + logQ, same model, same split,
 * several seeds. Reports Recall@20 / NDCG@20 / tail recall (mean ± std), examples/s, the proximity-graph build
 * time and its fraction of training time, and how hard the composed batches are for the trained model (mean and
 * hardest in-batch negative cosine, see `hardness` below).
 * Reads ../shared/data (skips a data set that is absent). Writes bench/results/batch-sampler.json.
 *
 *   npm run bench:batch-sampler [-- --datasets ml-100k,beauty --seeds 3 --epochs 20 --only shuffle,rwr-p0.2 --append --hardness-only]
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { loadInteractions } from '../src/data/load.ts';
import { prepare } from '../src/data/prepare.ts';
import { splitInteractions, type SplitSpec } from '../src/data/split.ts';
import { popularityBaseline } from '../src/eval/baselines.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import type { TwoTowerModel } from '../src/model/two-tower.ts';
import { loadRecipe, parseRecipe, type BatchSamplerSpec, type Recipe } from '../src/recipe/schema.ts';
import { buildBatchComposer } from '../src/sampling/batch-order/build.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { Rng } from '../src/util/rng.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const seeds = Number(arg('seeds', '3'));
const epochs = Number(arg('epochs', '20'));
const batch = Number(arg('batch', '512'));
const only = arg('only', '').split(',').filter(Boolean);
const datasets = arg('datasets', 'ml-100k,beauty').split(',').filter(Boolean);
/** Only recompute batch hardness for the results already in the output file (implies --append). */
const hardnessOnly = process.argv.includes('--hardness-only');
const shared = resolve('..', 'shared', 'data');

// The same data sets and protocol as bench:negatives.
const DATASETS: Record<string, { path: string; split: SplitSpec; note: string }> = {
  'ml-100k': { path: `${shared}/ml-100k/ml-100k.inter`, split: { kind: 'random', val: 0.1, test: 0.1, seed: 42 }, note: 'random 80/10/10' },
  beauty: { path: `${shared}/amazon-beauty/Beauty.txt`, split: { kind: 'loo' }, note: 'leave-last-one-out' },
};

const rwr = loadRecipe('recipes/batch-rwr.json');
const withSampler = (r: Recipe, over: object): Recipe => parseRecipe({ ...r, batchSampler: { ...r.batchSampler, ...over } });
// `on`: the data sets a configuration runs on by default (keeps the whole bench near 15 minutes on 2 cores);
// --only names configurations to run everywhere.
const CONFIGS: Array<{ key: string; recipe: Recipe; on: string[] }> = [
  { key: 'shuffle', recipe: loadRecipe('recipes/in-batch-logq.json'), on: ['ml-100k', 'beauty'] },
  { key: 'no-duplicates', recipe: loadRecipe('recipes/batch-no-duplicates.json'), on: ['ml-100k', 'beauty'] },
  { key: 'rwr-p0.2', recipe: rwr, on: ['ml-100k', 'beauty'] },
  { key: 'rwr-p0.5', recipe: withSampler(rwr, { restart: 0.5 }), on: ['ml-100k'] },
  { key: 'rwr-item-p0.2', recipe: withSampler(rwr, { similarity: 'item' }), on: [] },
  // A quarter of the graph work: half the candidates and neighbours, rebuilt at epoch starts only.
  { key: 'rwr-cheap', recipe: withSampler(rwr, { candidates: 64, neighbours: 8, refreshEvery: 0 }), on: ['ml-100k', 'beauty'] },
  { key: 'rwr-cheap-every4', recipe: withSampler(rwr, { candidates: 64, neighbours: 8, refreshEvery: 0, rebuildEpochs: 4 }), on: ['ml-100k', 'beauty'] },
  // Without the hubness correction of the proximity graph (proximity-graph.ts).
  { key: 'rwr-no-hub-correction', recipe: withSampler(rwr, { hubCorrection: false }), on: ['ml-100k'] },
  // Milder: shuffled warm-up (official random_epochs), item similarity, walks of at most 32 rows per batch.
  { key: 'rwr-mild', recipe: withSampler(rwr, { similarity: 'item', walkLength: 32, warmup: 'shuffle', warmupEpochs: 3 }), on: ['ml-100k'] },
];

const METRICS = ['recall@20', 'ndcg@20', 'recallTail@20'];
const stats = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};

/**
 * How hard a composer's batches are, measured with one reference model per data set (shuffle, seed 1) so that
 * composers are compared on the same embeddings: over 20 batches of epoch 1 composed from the reference model's
 * embeddings, the mean cosine u_i·v_j of in-batch negatives (other rows, not the same user or item), and the mean
 * of each row's hardest such negative.
 */
function hardness(sampler: BatchSamplerSpec, model: TwoTowerModel, users: Int32Array, items: Int32Array, numItems: number, backend: any) {
  const U = model.user.embedAll(backend);
  const V = model.embedAllItems(backend);
  const d = model.dim;
  const B = Math.min(batch, users.length);
  const composer = buildBatchComposer(parseRecipe({ batchSampler: sampler.type === 'rwr' ? { ...sampler, warmupEpochs: 0 } : sampler }).batchSampler, {
    backend,
    trainUsers: users,
    trainItems: items,
    numItems,
    batchSize: B,
    stepsPerEpoch: Math.floor(users.length / B),
    seed: 1,
    embed: () => ({ users: U, items: V, dim: d }),
  });
  composer.beginEpoch(1, new Rng(77));
  let sum = 0;
  let cnt = 0;
  let maxSum = 0;
  let rowsCnt = 0;
  const steps = Math.min(20, Math.floor(users.length / B));
  for (let s = 0; s < steps; s++) {
    const rows = composer.batch(s);
    for (const i of rows) {
      let best = -Infinity;
      for (const j of rows) {
        if (users[j] === users[i] || items[j] === items[i]) continue;
        let dot = 0;
        for (let k = 0; k < d; k++) dot += U[users[i] * d + k] * V[items[j] * d + k];
        sum += dot;
        cnt++;
        if (dot > best) best = dot;
      }
      if (best > -Infinity) (maxSum += best), rowsCnt++;
    }
  }
  return { meanNegCos: sum / Math.max(cnt, 1), meanHardestNegCos: maxSum / Math.max(rowsCnt, 1) };
}

// --append: keep the results already in the output file, replacing those of the (data set, config) pairs re-run.
const results: any[] = (hardnessOnly || process.argv.includes('--append')) && existsSync(arg('out', 'bench/results/batch-sampler.json')) ? JSON.parse(readFileSync(arg('out', 'bench/results/batch-sampler.json'), 'utf8')).results : [];
const keep = (dataset: string, config: string) => {
  const i = results.findIndex((r) => r.dataset === dataset && r.config === config);
  if (i >= 0) results.splice(i, 1);
};
const backendName = (await getBackend()).name;
const outFile = arg('out', 'bench/results/batch-sampler.json');
function writeResults(complete: boolean) {
  // Stable order whatever --append replaced: data set, then popularity, then CONFIGS order.
  const rank = (r: any) => Object.keys(DATASETS).indexOf(r.dataset) * 100 + (r.config === 'popularity' ? -1 : CONFIGS.findIndex((c) => c.key === r.config));
  results.sort((a, b) => rank(a) - rank(b));
  const out = {
    complete,
    bench: 'batch-sampler',
    date: new Date().toISOString(),
    backend: backendName,
    machine: 'shared 2-core machine, other jobs running: timings (ex/s, graph seconds) are noisy, compare within a run',
    protocol: Object.fromEntries(
      Object.entries(DATASETS).map(([k, v]) => [k, `${v.note}; full-corpus ranking, train+val items excluded; early stopping on val recall@20 (patience 3, max ${epochs} epochs); batch ${batch}`]),
    ),
    model: `id towers dim ${defaultModelOptions.dim}, MLP ${defaultModelOptions.mlp.join('→')}; recipe in-batch + logQ (τ 0.05) for every config, only batchSampler differs`,
    rwrDefaults: rwr.batchSampler,
    seeds,
    results,
  };
  mkdirSync('bench/results', { recursive: true });
  writeResultJson(outFile, out);
}

const backend = await getBackend();
for (const [name, ds] of Object.entries(DATASETS)) {
  if (!datasets.includes(name)) continue;
  if (!existsSync(ds.path)) {
    console.log(`${name}: skipped, ${ds.path} not found`);
    continue;
  }
  const data = await loadInteractions({ path: ds.path });
  const prep = prepare(data, splitInteractions(data, ds.split));
  const pop = popularityBaseline({ backend, test: prep.test, exclude: prep.seenWithVal, ks: [20], itemPopularity: prep.itemCounts }).metrics;
  keep(name, 'popularity');
  results.push({ dataset: name, config: 'popularity', metrics: Object.fromEntries(METRICS.map((k) => [k, { mean: pop[k], std: 0 }])) });
  let reference: TwoTowerModel | null = null;
  const experiment = (recipe: Recipe, seed: number) =>
    runExperiment({
      data: { path: ds.path },
      loaded: data,
      split: ds.split,
      recipe,
      model: { ...defaultModelOptions, seed },
      train: { epochs, batchSize: batch, seed, evalEvery: 1, patience: 3, valMetric: 'recall@20', valMaxUsers: 3000, resume: false, progress: 'none', logEvery: 0, diagnosticBatches: 0 },
      ks: [20],
      out: null,
    });
  for (const c of CONFIGS) {
    if (hardnessOnly || (only.length ? !only.includes(c.key) : !c.on.includes(name))) continue;
    const runs: any[] = [];
    for (let seed = 1; seed <= seeds; seed++) {
      process.stderr.write(`${name} ${c.key} seed ${seed}/${seeds}...\n`);
      const r = await experiment(c.recipe, seed);
      if (c.key === 'shuffle' && seed === 1) reference = r.model;
      const bs = r.train.batchSampler!;
      runs.push({
        metrics: r.metrics,
        examplesPerSecond: r.examples_per_s,
        trainSeconds: r.train.trainSeconds,
        epochs: r.train.epochs,
        batchSampler: bs,
      });
      process.stderr.write(`  recall@20 ${r.metrics['recall@20'].toFixed(4)}, ${r.train.epochs} epochs, ${r.train.trainSeconds.toFixed(1)} s, graph ${bs.graphSeconds.toFixed(2)} s (${(100 * bs.graphFraction).toFixed(1)}%)\n`);
    }
    keep(name, c.key);
    results.push({
      dataset: name,
      config: c.key,
      recipe: c.recipe.name,
      batchSampler: c.recipe.batchSampler,
      batch,
      metrics: Object.fromEntries(METRICS.map((k) => [k, stats(runs.map((r) => r.metrics[k]))])),
      examples_per_s: stats(runs.map((r) => r.examplesPerSecond)).mean,
      trainSeconds: stats(runs.map((r) => r.trainSeconds)).mean,
      graphSeconds: stats(runs.map((r) => r.batchSampler.graphSeconds)).mean,
      graphFraction: stats(runs.map((r) => r.batchSampler.graphFraction)).mean,
      graphBuilds: stats(runs.map((r) => Number(r.batchSampler.graphBuilds ?? 0))).mean,
      walkFraction: runs[0].batchSampler.walkFraction,
      skippedRowsPerEpoch: runs[0].batchSampler.skippedRows !== undefined ? Number(runs[0].batchSampler.skippedRows) / runs[0].epochs : undefined,
      epochs: runs.map((r) => r.epochs),
    });
    writeResults(false); // after every configuration, so an interrupted run keeps what it measured
  }
  // Batch hardness of every configuration of this data set (including ones kept by --append), on one model.
  if (!reference) {
    process.stderr.write(`${name}: training the shuffle reference model (seed 1) for batch hardness...\n`);
    reference = (await experiment(CONFIGS[0].recipe, 1)).model;
  }
  for (const r of results) {
    if (r.dataset !== name || !r.batchSampler) continue;
    r.hardness = hardness(r.batchSampler, reference, prep.trainUsers, prep.trainItems, prep.numItems, backend);
  }
  writeResults(false);
}

writeResults(true);
const fmt = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}`;
console.log(`\n| data | batches | ${METRICS.join(' | ')} | ex/s | graph s (share of train) | mean / hardest neg cos | epochs |`);
console.log(`|---|---|${METRICS.map(() => '---|').join('')}---|---|---|---|`);
for (const r of results) {
  const graph = r.graphBuilds ? `${r.graphSeconds.toFixed(2)} (${(100 * r.graphFraction).toFixed(1)}%)` : '-';
  const hard = r.hardness ? `${r.hardness.meanNegCos.toFixed(3)} / ${r.hardness.meanHardestNegCos.toFixed(3)}` : '-';
  console.log(`| ${r.dataset} | ${r.config} | ${METRICS.map((m) => fmt(r.metrics[m])).join(' | ')} | ${r.examples_per_s ? Math.round(r.examples_per_s) : '-'} | ${graph} | ${hard} | ${r.epochs?.join(',') ?? '-'} |`);
}
console.log(`written ${outFile}`);
