/**
 * `towerlab compare`: train every recipe with every seed on one load of the data and one split, then write
 * results.json (per-seed runs and mean ± std over seeds) and a self-contained HTML report with charts.
 * results.json is rewritten after every run, so an interrupted comparison keeps what it finished.
 */
import { basename } from 'node:path';
import cliProgress from 'cli-progress';
import { loadSplit } from '../data/split-files.ts';
import { formatMetricsTable } from '../eval/format.ts';
import { loadRecipe, type Recipe } from '../recipe/schema.ts';
import { checkRecipeSizes } from '../sampling/build.ts';
import { catalogueDeciles } from '../report/calibration.ts';
import { assembleResults, decilesOf, runRecord, summarizeRecipe, type CompareConfig, type CompareInference, type CompareResults, type RunRecord, type TopItems } from '../report/results.ts';
import { BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrapMean, meanOverSeeds, pairedBootstrap } from '../report/inference.ts';
import type { PerUserMetrics } from '../eval/ranking.ts';
import { loadItemNames } from '../data/item-names.ts';
import { writeReport, writeResults } from '../report/write.ts';
import { runExperiment, type ExperimentResult } from '../train/experiment.ts';
import { defaultProgressMode, type ProgressMode } from '../train/progress.ts';
import { UserError } from '../util/errors.ts';
import { dataSpecFrom, modelOptionsFrom, parseList, splitSpecFrom, trainConfigFrom, type DataOptions, type ModelFlagOptions, type SplitOptions, type TrainFlagOptions } from './options.ts';
import { printJsonLast } from './output.ts';

interface RecipeEntry {
  name: string;
  file: string;
  recipe: Recipe;
}

export interface CompareCommandOptions extends DataOptions, SplitOptions, ModelFlagOptions, TrainFlagOptions {
  recipes: string[];
  seeds: string;
  k: string;
  out: string;
  json?: boolean;
  itemNames?: string;
}

export async function compareCommand(o: CompareCommandOptions): Promise<void> {
  const files: string[] = o.recipes ?? [];
  if (!files.length) throw new UserError('--recipes: give at least one recipe file');
  const recipes = nameRecipes(files.map((f) => ({ file: f, recipe: loadRecipe(f) })));
  const seeds = parseSeeds(o.seeds, o.seed);
  const k = parseList('--k', String(o.k))[0];
  const ks = parseList('--ks', o.ks);
  if (!ks.includes(k)) ks.push(k);
  const dataSpec = dataSpecFrom(o);
  const split = splitSpecFrom(o);
  const model = modelOptionsFrom(o);
  const trainCfg = trainConfigFrom(o);
  const out: string = o.out;
  const mode: ProgressMode = o.progress === false ? 'none' : defaultProgressMode();

  const { data, split: parts } = await loadSplit(dataSpec, split);
  // Every recipe against this data up front: a bad size in the last recipe must not wait for the others' runs.
  const outDim = model.mlp.length ? model.mlp[model.mlp.length - 1] : model.dim;
  for (const r of recipes) checkRecipeSizes(r.recipe, { numItems: data.itemVocab.ids.length, numInstances: data.items.length, numUsers: data.userVocab.ids.length, dim: outDim, batchSize: trainCfg.batchSize }, r.file);
  const itemNames = o.itemNames ? await loadItemNames(o.itemNames, data.itemVocab.ids, dataSpec.itemCol) : null;
  // Per recipe, per seed: per-user test metrics (same users, same order: one split) and top-K counts per item.
  const perUser = new Map<string, PerUserMetrics[]>(recipes.map((r) => [r.name, []]));
  const counts = new Map<string, Float64Array[]>(recipes.map((r) => [r.name, []]));
  const config: CompareConfig = {
    data: data.source,
    split: split.kind,
    seeds,
    epochs: trainCfg.epochs,
    batch_size: trainCfg.batchSize,
    val_metric: trainCfg.valMetric,
    ks: [...ks].sort((a, b) => a - b),
    backend: null,
  };
  const runs = new Map<string, RunRecord[]>(recipes.map((r) => [r.name, []]));
  const popularityRuns: Record<string, number>[] = [];
  let first: ExperimentResult | null = null;
  let deciles: Uint8Array | null = null;
  const results = (complete: boolean): CompareResults =>
    assembleResults({
      k,
      config,
      data: first?.data ?? null,
      catalogue: first?.itemCounts ? catalogueDeciles(first.itemCounts) : null,
      popularityRuns,
      recipes: recipes.filter((r) => runs.get(r.name)!.length).map((r) => summarizeRecipe(r.name, r.file, r.recipe, runs.get(r.name)!, trainCfg.valMetric)),
      complete,
      // 1000 resamples per recipe and metric: only once, for the final results.
      inference: complete ? inferenceOf(recipes.map((r) => r.name).filter((n) => perUser.get(n)!.length), perUser, k) : null,
      topItems: complete ? topItemsOf(recipes.map((r) => r.name).filter((n) => counts.get(n)!.length), counts, data.itemVocab.ids, itemNames, k) : null,
    });

  const total = recipes.length * seeds.length;
  const bar = new RunProgress(mode, total);
  let i = 0;
  try {
    for (const r of recipes) {
      for (const seed of seeds) {
        i++;
        bar.start(i, `${r.name} seed ${seed}`);
        const t0 = performance.now();
        const res = await runExperiment({
          data: dataSpec,
          split,
          recipe: r.recipe,
          model: { ...model, seed },
          // A nested training bar would fight the run bar; line output nests fine.
          train: { ...trainCfg, seed, progress: mode === 'lines' ? 'lines' : 'none' },
          ks,
          out: null,
          backend: o.backend,
          loaded: data,
          loadedSplit: parts,
          countRecommendationsAt: k,
          keepPerUser: true,
        });
        if (res.perUser) perUser.get(r.name)!.push(res.perUser);
        if (res.recommendedCounts) counts.get(r.name)!.push(res.recommendedCounts);
        if (!first) {
          first = res;
          deciles = decilesOf(res);
          config.backend = res.backend;
        }
        runs.get(r.name)!.push(runRecord(res, seed, k, deciles));
        popularityRuns.push(res.baselines.popularity);
        bar.done(i, `${r.name} seed ${seed}`, `recall@${k} ${fmt4(res.metrics[`recall@${k}`])} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        writeResults(out, results(i === total));
      }
    }
  } finally {
    bar.stop();
  }

  const final = results(true);
  const paths = await writeReport(out, final);
  const col = (m: Record<string, number | null>) => Object.fromEntries(Object.entries(m).filter(([key]) => key.endsWith(`@${k}`)).map(([key, v]) => [key, v ?? NaN]));
  const table = formatMetricsTable(
    [...final.summary.recipes.map((x) => ({ name: x.name, result: col(Object.fromEntries(Object.entries(x.metrics).map(([m, s]) => [m, s.mean]))) })), { name: 'popularity', result: col(final.summary.popularity) }],
    { delta: false },
  );
  const d = final.data!;
  process.stdout.write(
    [
      `data: ${d.source}: ${d.users} users, ${d.items} items, ${d.interactions} interactions; split ${d.split}`,
      `${recipes.length} recipes × ${seeds.length} seeds (${seeds.join(', ')}); test metrics at K=${k}, mean over seeds:`,
      table,
      `examples/s: ${final.summary.recipes.map((x) => `${x.name} ${Math.round(x.examples_per_s.mean ?? NaN).toLocaleString('en-US')}`).join(', ')}`,
      `report: ${paths.html}`,
      `results: ${paths.results}`,
    ].join('\n') + '\n',
  );
  if (o.json) printJsonLast({ ...final.summary, report: paths.html, results: paths.results });
}

/** 95 % bootstrap CIs of recall@k / ndcg@k per recipe, and paired bootstrap tests against the first recipe. */
function inferenceOf(names: string[], perUser: Map<string, PerUserMetrics[]>, k: number): CompareInference | null {
  if (!names.length) return null;
  const metrics = [`recall@${k}`, `ndcg@${k}`];
  const users = perUser.get(names[0])![0].users;
  for (const n of names) {
    for (const p of perUser.get(n)!) {
      if (p.users.length !== users.length || p.users.some((u, i) => u !== users[i])) return null; // not paired: say nothing
    }
  }
  const byUser = (n: string, m: string) => meanOverSeeds(perUser.get(n)!.map((p) => p.values[m]));
  return {
    metrics,
    resamples: BOOTSTRAP_RESAMPLES,
    seed: BOOTSTRAP_SEED,
    users: users.length,
    reference: names[0],
    recipes: names.map((n, i) => ({
      name: n,
      ci: Object.fromEntries(metrics.map((m) => [m, bootstrapMean(byUser(n, m))])),
      vsReference: i === 0 ? null : Object.fromEntries(metrics.map((m) => [m, pairedBootstrap(byUser(names[0], m), byUser(n, m))])),
    })),
  };
}

/** The 10 items most often in the test users' top-k per recipe (mean over seeds), named when names are given. */
function topItemsOf(names: string[], counts: Map<string, Float64Array[]>, itemIds: string[], itemNames: (string | null)[] | null, k: number): TopItems | null {
  if (!names.length) return null;
  return {
    k,
    recipes: names.map((n) => {
      const runs = counts.get(n)!;
      const mean = new Float64Array(itemIds.length);
      for (const c of runs) for (let j = 0; j < mean.length; j++) mean[j] += c[j] / runs.length;
      const order = Int32Array.from(mean.keys()).sort((a, b) => mean[b] - mean[a] || a - b).subarray(0, 10);
      return { name: n, items: Array.from(order, (j) => ({ item: itemIds[j], name: itemNames?.[j] ?? null, users: mean[j] })) };
    }),
  };
}

/** Display names: the recipe's own name, else its file name; repeats get ' (2)', ' (3)', ... */
function nameRecipes(list: { file: string; recipe: Recipe }[]): RecipeEntry[] {
  const used = new Map<string, number>();
  return list.map(({ file, recipe }) => {
    const base = recipe.name?.trim() || basename(file).replace(/\.json$/i, '');
    const n = (used.get(base) ?? 0) + 1;
    used.set(base, n);
    return { name: n === 1 ? base : `${base} (${n})`, file, recipe };
  });
}

/** `--seeds 3` → base, base+1, base+2 (base = --seed); `--seeds 1,5,9` → exactly those. */
export function parseSeeds(v: string | undefined, base: number): number[] {
  const s = String(v ?? '3').trim();
  if (s.includes(',')) {
    const list = s.split(',').map((x) => Number(x.trim()));
    if (list.some((x) => !Number.isInteger(x) || x < 0)) throw new UserError(`--seeds: '${s}' is not a list of non-negative integers`);
    if (new Set(list).size !== list.length) throw new UserError(`--seeds: '${s}' repeats a seed`);
    return list;
  }
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--seeds: expected a number of seeds >= 1 or a comma-separated list, got '${s}'`);
  return Array.from({ length: n }, (_, i) => base + i);
}

function fmt4(x: number | undefined): string {
  return x !== undefined && Number.isFinite(x) ? x.toFixed(4) : '–';
}

/** Which run of how many is going: a bar on a terminal, one line per run start/end otherwise. */
class RunProgress {
  private readonly bar: cliProgress.SingleBar | null;

  constructor(
    private readonly mode: ProgressMode,
    private readonly total: number,
  ) {
    this.bar =
      mode === 'bar'
        ? new cliProgress.SingleBar({ format: 'run {run}/{total} |{bar}| {name} | elapsed {duration_formatted} | ETA {eta_formatted}', stream: process.stderr, hideCursor: true, etaBuffer: 4 }, cliProgress.Presets.shades_classic)
        : null;
    this.bar?.start(total, 0, { run: 1, name: '' });
  }

  start(i: number, name: string): void {
    if (this.bar) this.bar.update(i - 1, { run: i, name });
    else if (this.mode === 'lines') process.stderr.write(`run ${i}/${this.total}: ${name}\n`);
  }

  done(i: number, name: string, what: string): void {
    if (this.bar) this.bar.update(i, { run: i, name: `${name}: ${what}` });
    else if (this.mode === 'lines') process.stderr.write(`run ${i}/${this.total} done: ${name}: ${what}\n`);
  }

  stop(): void {
    this.bar?.stop();
  }
}
