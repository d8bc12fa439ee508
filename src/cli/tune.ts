/**
 * `towerlab tune --space space.json --budget 40trials|2h`: quasi-random search (seeded Halton points) over recipe
 * fields and train options with asynchronous successive halving on validation data (tune/asha.ts).
 *
 * Honesty: the search loads the data WITHOUT the test file (with --data, the test fraction is held out and never
 * evaluated); the test data is read once, after the search, to evaluate the chosen configuration, retrained from
 * scratch exactly as `train --recipe best-recipe.json --options best-options.json` would.
 *
 * Output directory: tune-state.json (rewritten atomically after every job: kill the process at any time and
 * `--resume` continues, finished jobs are never redone), trials/<id>/ (each trial's checkpoint, so a promoted
 * trial trains on instead of starting over), results.json, best-recipe.json, best-options.json, index.html.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadSplit } from '../data/split-files.ts';
import type { SplitSpec } from '../data/split.ts';
import { DEFAULT_RECIPE_JSON, parseRecipe } from '../recipe/schema.ts';
import { renderTuneReport, type TuneReport } from '../report/tune-html.ts';
import { runExperiment } from '../train/experiment.ts';
import { bestTrial, nextJob, rungEpochs, type TrialRecord } from '../tune/asha.ts';
import { loadSpace, samplePoint, setPath, type Space } from '../tune/space.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import type { BackendChoice } from '../compute/index.ts';
import { dataSpecFrom, modelOptionsFrom, splitSpecFrom, trainConfigFrom, type DataOptions, type SplitOptions } from './options.ts';
import { printJsonLast } from './output.ts';
import { asRunOptions, normalizeOptions, trainOptionDefaults } from './run-options.ts';

export interface Budget {
  trials?: number;
  seconds?: number;
}

export function parseBudget(v: string): Budget {
  const s = String(v).trim().toLowerCase();
  let m = /^(\d+)\s*trials?$/.exec(s);
  if (m && Number(m[1]) >= 1) return { trials: Number(m[1]) };
  m = /^(\d+(?:\.\d+)?)\s*(h|m|min|s)$/.exec(s);
  if (m && Number(m[1]) > 0) return { seconds: Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 's' ? 1 : 60) };
  throw new UserError(`--budget: expected a number of trials (40trials) or a time (2h, 90m, 600s), got '${v}'`);
}

interface TuneState {
  version: 1;
  /** What the search is over; a resume must match it. */
  key: string;
  seed: number;
  trials: TrialRecord[];
  /** Seconds spent in jobs (a time budget counts across resumes). */
  seconds: number;
  jobs: number;
}

/** The flags of `towerlab tune` (commander's option values; see main.ts). */
export interface TuneCommandOptions extends DataOptions, SplitOptions {
  space: string;
  budget: string;
  seed: number;
  out: string;
  resume?: boolean;
  skipTest?: boolean;
  json?: boolean;
  backend: BackendChoice;
}

export async function tuneCommand(o: TuneCommandOptions, _cmd?: Command): Promise<void> {
  const { space, baseRecipe } = loadSpace(o.space);
  const budget = parseBudget(o.budget);
  const out: string = o.out;
  const seed: number = o.seed;
  const dataSpec = dataSpecFrom(o);
  const split = splitSpecFrom(o);
  const searchSplit: SplitSpec = split.kind === 'files' ? { ...split, test: null } : split;
  if (split.kind === 'files' && !split.val && !(split.valFraction > 0)) throw new UserError('tune: needs validation data: give --val-file or --val > 0');
  if (split.kind !== 'files' && split.kind !== 'loo' && !(split.val > 0)) throw new UserError('tune: needs validation data: --val must be > 0');

  const defaults = trainOptionDefaults();
  const baseOptions = normalizeOptions(space.options, `${o.space}: field 'options'`, defaults);
  const rungs = rungEpochs(space.schedule);
  const statePath = join(out, 'tune-state.json');
  const key = JSON.stringify({ space, baseRecipe, data: dataSpec, split: searchSplit, seed });
  let state: TuneState;
  if (o.resume) {
    if (!existsSync(statePath)) throw new UserError(`--resume: no tune-state.json in ${out}`);
    state = JSON.parse(readFileSync(statePath, 'utf8')) as TuneState;
    if (state.version !== 1 || state.key !== key) throw new UserError(`--resume: ${statePath} is a search over another space, data, split or seed`);
  } else {
    if (existsSync(statePath)) throw new UserError(`${out}: holds a search already (tune-state.json); continue it with --resume or choose another --out`);
    state = { version: 1, key, seed, trials: [], seconds: 0, jobs: 0 };
  }
  const save = () => writeFileAtomic(statePath, JSON.stringify(state, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));

  /** The recipe, train options and the options object (for best-options.json) of a parameter point. */
  const configFor = (params: Record<string, unknown>, where: string) => {
    let recipeObj: unknown = params.recipe ?? baseRecipe ?? DEFAULT_RECIPE_JSON;
    const optionParams: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(params)) {
      const [root, ...path] = name.split('.');
      if (name === 'recipe') continue;
      if (root === 'recipe') recipeObj = setPath(recipeObj, path, value);
      else optionParams[path.join('.')] = value;
    }
    const options = { ...baseOptions, ...normalizeOptions(optionParams, `${o.space}: field 'params'`, defaults) };
    const opts = { ...defaults, ...options, seed, valMetric: space.metric, backend: o.backend };
    const recipe = parseRecipe(recipeObj, where);
    return { recipe, recipeObj, options, model: modelOptionsFrom(asRunOptions(opts)), train: trainConfigFrom(asRunOptions(opts)) };
  };
  // Fail on a bad space before any training: every parameter's extremes must make a valid configuration.
  configFor(samplePoint(space, 0, seed), `${o.space}: recipe`);

  process.stderr.write(`tune: loading ${split.kind === 'files' ? `${split.train} (test file not read until the end)` : dataSpec.path}\n`);
  const { data, split: parts } = await loadSplit(dataSpec, searchSplit);
  // With one file, the test rows stay out of training and are not evaluated during the search.
  const searchParts = { ...parts, test: new Int32Array(0) };
  const k = Number(space.metric.split('@')[1]);
  const mayStart = () =>
    (budget.trials === undefined || state.trials.length < budget.trials) && (budget.seconds === undefined || state.seconds < budget.seconds);

  for (;;) {
    const job = nextJob(state.trials, space.schedule, mayStart());
    if (!job) break;
    // A time budget also stops promotions: the search ends when the time is spent.
    if (budget.seconds !== undefined && state.seconds >= budget.seconds) break;
    let t = state.trials[job.trial];
    if (job.fresh) {
      t = { id: job.trial, params: samplePoint(space, job.trial, seed), rungs: [], epochs: 0, bestEpoch: 0, terminal: false, seconds: 0 };
      state.trials.push(t);
    }
    const dir = join(out, 'trials', String(t.id));
    const epochs = rungs[job.rung];
    const t0 = performance.now();
    try {
      const c = configFor(t.params, `trial ${t.id}: recipe`);
      // A trial killed mid-job continues from its last checkpoint; a new one never reuses leftovers.
      const ck = join(dir, 'checkpoint', 'manifest.json');
      if (job.fresh && existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      const res = await runExperiment({
        data: dataSpec,
        split: searchSplit,
        recipe: c.recipe,
        model: c.model,
        train: { ...c.train, epochs, resume: existsSync(ck), progress: 'none', lrSchedule: { ...c.train.lrSchedule!, horizonEpochs: rungs[rungs.length - 1] } },
        ks: [k],
        out: dir,
        backend: o.backend,
        loaded: data,
        loadedSplit: searchParts,
        skipTest: true,
      });
      const best = res.train.best ?? NaN;
      t.rungs[job.rung] = best;
      t.epochs = res.train.epochs;
      t.bestEpoch = res.train.bestEpoch;
      t.terminal = res.train.stoppedEarly || job.rung === rungs.length - 1;
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      // A configuration that diverges or is invalid loses; the search goes on.
      t.error = e.message;
      t.terminal = true;
    }
    // A finished trial needs no checkpoint any more (its record is in the state).
    if (t.terminal) rmSync(dir, { recursive: true, force: true });
    const secs = (performance.now() - t0) / 1000;
    t.seconds += secs;
    state.seconds += secs;
    state.jobs++;
    save();
    writeFileAtomic(join(out, 'results.json'), JSON.stringify(report(null), null, 2));
    const v = t.rungs[job.rung];
    process.stderr.write(
      `tune: job ${state.jobs}: trial ${t.id} rung ${job.rung} (${epochs} epochs): ` +
        (t.error ? `failed: ${t.error}` : `val ${space.metric} ${v.toFixed(4)}${t.terminal && job.rung < rungs.length - 1 ? ' (stopped early)' : ''}`) +
        ` [${secs.toFixed(0)} s; ${state.trials.length} trials, ${state.seconds.toFixed(0)} s in all]\n`,
    );
  }

  const best = bestTrial(state.trials);
  if (!best) throw new UserError('tune: no trial finished (every configuration failed); see results.json');
  const c = configFor(best.params, `trial ${best.id}: recipe`);
  const bestRung = best.rungs.length - 1;
  const bestOptions = { ...c.options, epochs: rungs[bestRung], scheduleEpochs: rungs[rungs.length - 1], seed, valMetric: space.metric };
  writeFileAtomic(join(out, 'best-recipe.json'), JSON.stringify(c.recipe, null, 2) + '\n');
  writeFileAtomic(join(out, 'best-options.json'), JSON.stringify(kebab(bestOptions), null, 2) + '\n');

  // The test data, read once: the chosen configuration retrained from scratch and evaluated.
  let final: TuneReport['final'] = null;
  const hasTest = split.kind === 'files' ? split.test !== null : split.kind === 'loo' || split.test > 0;
  if (hasTest && !o.skipTest) {
    process.stderr.write(`tune: search done (${state.trials.length} trials, ${state.jobs} jobs); training trial ${best.id}'s configuration once more and reading the test data\n`);
    const res = await runExperiment({
      data: dataSpec,
      split,
      recipe: c.recipe,
      model: c.model,
      train: { ...trainConfigFrom(asRunOptions({ ...defaults, ...bestOptions, backend: o.backend })), progress: 'none' },
      ks: [...new Set([10, k, 50])].sort((a, b) => a - b),
      out: join(out, 'final'),
      backend: o.backend,
    });
    final = { metrics: res.metrics, popularity: res.baselines.popularity, data: res.data, trainEpochs: res.train.epochs, bestEpoch: res.train.bestEpoch, validation: res.train.best };
  }
  const rep = report(final);
  rep.best = { trial: best.id, params: best.params, metric: best.rungs[bestRung], rung: bestRung, epochs: rungs[bestRung] };
  writeFileAtomic(join(out, 'results.json'), JSON.stringify(rep, null, 2));
  writeFileAtomic(join(out, 'index.html'), await renderTuneReport(rep));
  const dataFlags = split.kind === 'files' ? `--train-file ${split.train}${split.val ? ` --val-file ${split.val}` : ''}${split.test ? ` --test-file ${split.test}` : ''}` : `--data ${dataSpec.path}`;
  const line = `towerlab train ${dataFlags} --recipe ${join(out, 'best-recipe.json')} --options ${join(out, 'best-options.json')}`;
  process.stdout.write(
    [
      `tune: ${state.trials.length} trials, ${state.jobs} jobs, ${state.seconds.toFixed(0)} s; rungs ${rungs.join(', ')} epochs, eta ${space.schedule.eta}`,
      `best: trial ${best.id}, val ${space.metric} ${best.rungs[bestRung].toFixed(4)} at ${rungs[bestRung]} epochs: ${JSON.stringify(best.params)}`,
      final ? `test (read once, after the search): ${Object.entries(final.metrics).filter(([m]) => /^(recall|ndcg)@/.test(m)).map(([m, v]) => `${m} ${v.toFixed(4)}`).join(', ')}; popularity recall@${k} ${(final.popularity[`recall@${k}`] ?? NaN).toFixed(4)}` : 'test: not evaluated',
      `equivalent: ${line}`,
      `report: ${join(out, 'index.html')}`,
    ].join('\n') + '\n',
  );
  if (o.json) printJsonLast({ ...rep, command: line });

  function report(fin: TuneReport['final']): TuneReport {
    return {
      space: space as Space,
      metric: space.metric,
      rungs,
      eta: space.schedule.eta,
      budget,
      seed,
      seconds: state.seconds,
      jobs: state.jobs,
      trials: state.trials,
      best: null,
      final: fin,
    };
  }
}

function kebab(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), v]));
}

