/**
 * The results of a `compare` run as one JSON-safe object (results.json): per recipe the per-seed raw runs
 * and their aggregates (mean ± std per metric, validation curves, diagnostics, popularity calibration),
 * the popularity baseline and a short summary. The HTML report is rendered from this object alone, so a
 * results.json can be re-rendered or compared without retraining.
 */
import type { ExperimentResult } from '../train/experiment.ts';
import { DECILES, decileShares, itemDeciles } from './calibration.ts';
import type { Interval, PairedTest } from './inference.ts';
import { finite, stat, type Stat } from './stats.ts';

export const RESULTS_FORMAT = 'towerlab-compare';
export const RESULTS_VERSION = 1;

export interface ValidationPoint {
  epoch: number;
  step: number;
  metrics: Record<string, number | null>;
  /** Numeric training diagnostics recorded with this validation (nested keys flattened with '.'), if any. */
  diagnostics?: Record<string, number>;
}

/** One training run (one recipe, one seed). */
export interface RunRecord {
  seed: number;
  metrics: Record<string, number | null>;
  examples_per_s: number;
  train_seconds: number;
  eval_seconds: number;
  epochs: number;
  steps: number;
  best_epoch: number;
  stopped_early: boolean;
  final_loss: number | null;
  history: ValidationPoint[];
  /** Share of the test top-K recommendation slots per catalogue popularity decile (decile 1 first). */
  recommended: { k: number; deciles: number[] } | null;
}

export interface CurvePoint {
  epoch: number;
  mean: number | null;
  std: number | null;
  /** Seeds that reached this epoch (early stopping can end some sooner). */
  n: number;
}

export interface RecipeSummary {
  name: string;
  /** The recipe file it came from, as given on the command line. */
  file: string | null;
  recipe: unknown;
  metrics: Record<string, Stat>;
  examples_per_s: Stat;
  train_seconds: Stat;
  /** Validation metric per epoch, mean ± std over seeds. */
  curve: { metric: string; points: CurvePoint[] } | null;
  /** Diagnostics at the last validation of each seed, and per epoch; null when never recorded. */
  diagnostics: { final: Record<string, Stat>; curves: Record<string, CurvePoint[]> } | null;
  calibration: { k: number; deciles: Stat[] } | null;
  runs: RunRecord[];
}

export interface CompareConfig {
  data: string;
  split: string;
  seeds: number[];
  epochs: number;
  batch_size: number;
  val_metric: string;
  ks: number[];
  backend: string | null;
}

export interface CompareSummary {
  k: number;
  complete: boolean;
  recipes: { name: string; runs: number; metrics: Record<string, { mean: number | null; std: number | null }>; examples_per_s: { mean: number | null; std: number | null } }[];
  popularity: Record<string, number | null>;
}

/** Bootstrap over test users (report/inference.ts): per recipe a 95 % CI per metric, and a paired test against the first recipe. */
export interface CompareInference {
  metrics: string[];
  resamples: number;
  seed: number;
  users: number;
  /** Recipe every other is tested against. */
  reference: string;
  recipes: { name: string; ci: Record<string, Interval>; vsReference: Record<string, PairedTest> | null }[];
}

/** Items recommended most often in the test users' top-K (mean count over seeds), with names when given. */
export interface TopItems {
  k: number;
  recipes: { name: string; items: { item: string; name: string | null; users: number }[] }[];
}

export interface CompareResults {
  format: typeof RESULTS_FORMAT;
  version: typeof RESULTS_VERSION;
  created: string;
  /** False while runs are still going (results.json is rewritten after every run). */
  complete: boolean;
  /** The cut-off the report's charts show. */
  k: number;
  config: CompareConfig;
  data: ExperimentResult['data'] | null;
  /** Catalogue popularity deciles (items per decile, share of training interactions per decile). */
  catalogue: { items: number[]; interactionShare: number[] } | null;
  popularity: Record<string, Stat>;
  recipes: RecipeSummary[];
  summary: CompareSummary;
  /** Confidence intervals and paired tests (final results only; absent in older results.json). */
  inference?: CompareInference | null;
  topItems?: TopItems | null;
}

/** The JSON-safe record of one experiment; `deciles` are the catalogue's item deciles (itemDeciles). */
export function runRecord(r: ExperimentResult, seed: number, k: number, deciles: Uint8Array | null): RunRecord {
  const history: ValidationPoint[] = r.train.history.map((h) => {
    const p: ValidationPoint = { epoch: h.epoch, step: h.step, metrics: cleanMetrics(h.metrics) };
    const d = flattenNumeric((h as { diagnostics?: unknown }).diagnostics);
    if (Object.keys(d).length) p.diagnostics = d;
    return p;
  });
  return {
    seed,
    metrics: cleanMetrics(r.metrics),
    examples_per_s: r.examples_per_s,
    train_seconds: r.train.trainSeconds,
    eval_seconds: r.evalSeconds,
    epochs: r.train.epochs,
    steps: r.train.steps,
    best_epoch: r.train.bestEpoch,
    stopped_early: r.train.stoppedEarly,
    final_loss: finite(r.train.finalLoss) ? r.train.finalLoss : null,
    history,
    recommended: r.recommendedCounts && deciles ? { k, deciles: decileShares(deciles, r.recommendedCounts) } : null,
  };
}

/** Catalogue deciles of an experiment's item popularity (null when it did not return it). */
export function decilesOf(r: ExperimentResult): Uint8Array | null {
  return r.itemCounts ? itemDeciles(r.itemCounts) : null;
}

/** Aggregates the runs of one recipe over seeds. */
export function summarizeRecipe(name: string, file: string | null, recipe: unknown, runs: RunRecord[], valMetric: string): RecipeSummary {
  const keys = unionKeys(runs.map((r) => r.metrics));
  const metrics = Object.fromEntries(keys.map((m) => [m, stat(runs.map((r) => r.metrics[m]))]));
  const curveMetric = valMetric || unionKeys(runs.flatMap((r) => r.history.map((h) => h.metrics)))[0];
  const points = curvePoints(runs, (h) => h.metrics[curveMetric]);
  const diagKeys = unionKeys(runs.flatMap((r) => r.history.map((h) => h.diagnostics ?? {})));
  let diagnostics: RecipeSummary['diagnostics'] = null;
  if (diagKeys.length) {
    const last = runs.map((r) => [...r.history].reverse().find((h) => h.diagnostics)?.diagnostics ?? {});
    diagnostics = {
      final: Object.fromEntries(diagKeys.map((key) => [key, stat(last.map((d) => d[key]))])),
      curves: Object.fromEntries(diagKeys.map((key) => [key, curvePoints(runs, (h) => h.diagnostics?.[key])])),
    };
  }
  const rec = runs.map((r) => r.recommended).filter((x): x is NonNullable<RunRecord['recommended']> => x !== null);
  const calibration = rec.length ? { k: rec[0].k, deciles: Array.from({ length: DECILES }, (_, d) => stat(rec.map((x) => x.deciles[d]))) } : null;
  return {
    name,
    file,
    recipe,
    metrics,
    examples_per_s: stat(runs.map((r) => r.examples_per_s)),
    train_seconds: stat(runs.map((r) => r.train_seconds)),
    curve: points.length ? { metric: curveMetric, points } : null,
    diagnostics,
    calibration,
    runs,
  };
}

export function assembleResults(a: {
  k: number;
  config: CompareConfig;
  data: ExperimentResult['data'] | null;
  catalogue: CompareResults['catalogue'];
  popularityRuns: Record<string, number>[];
  recipes: RecipeSummary[];
  complete: boolean;
  created?: string;
  inference?: CompareInference | null;
  topItems?: TopItems | null;
}): CompareResults {
  const popularity = Object.fromEntries(unionKeys(a.popularityRuns).map((m) => [m, stat(a.popularityRuns.map((p) => p[m]))]));
  const summary: CompareSummary = {
    k: a.k,
    complete: a.complete,
    recipes: a.recipes.map((r) => ({
      name: r.name,
      runs: r.runs.length,
      metrics: Object.fromEntries(Object.entries(r.metrics).map(([m, s]) => [m, { mean: s.mean, std: s.std }])),
      examples_per_s: { mean: r.examples_per_s.mean, std: r.examples_per_s.std },
    })),
    popularity: Object.fromEntries(Object.entries(popularity).map(([m, s]) => [m, s.mean])),
  };
  return {
    format: RESULTS_FORMAT,
    version: RESULTS_VERSION,
    created: a.created ?? new Date().toISOString(),
    complete: a.complete,
    k: a.k,
    config: a.config,
    data: a.data,
    catalogue: a.catalogue,
    popularity,
    recipes: a.recipes,
    summary,
    inference: a.inference ?? null,
    topItems: a.topItems ?? null,
  };
}

/** results.json text: non-finite numbers become null (JSON has no NaN). */
export function resultsJson(r: CompareResults): string {
  return JSON.stringify(r, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n';
}

/** Per-epoch mean ± std of `value` over the runs that validated at that epoch. */
function curvePoints(runs: RunRecord[], value: (h: ValidationPoint) => number | null | undefined): CurvePoint[] {
  const epochs = [...new Set(runs.flatMap((r) => r.history.map((h) => h.epoch)))].sort((x, y) => x - y);
  return epochs
    .map((epoch) => {
      const s = stat(runs.map((r) => r.history.find((h) => h.epoch === epoch)).filter((h) => h !== undefined).map(value));
      return { epoch, mean: s.mean, std: s.std, n: s.n };
    })
    .filter((p) => p.n > 0);
}

function cleanMetrics(m: Record<string, number>): Record<string, number | null> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, finite(v) ? v : null]));
}

/** Keys in first-seen order. */
function unionKeys(objs: object[]): string[] {
  const seen = new Set<string>();
  for (const o of objs) for (const k of Object.keys(o)) seen.add(k);
  return [...seen];
}

/** Finite numeric leaves of a (possibly nested) object, keyed by their '.'-joined path; booleans and strings are dropped. */
export function flattenNumeric(x: unknown, prefix = '', out: Record<string, number> = {}): Record<string, number> {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return out;
  for (const [k, v] of Object.entries(x)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (finite(v)) out[key] = v;
    else if (v && typeof v === 'object' && !Array.isArray(v)) flattenNumeric(v, key, out);
  }
  return out;
}
