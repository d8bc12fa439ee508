/**
 * ML-1M on the fixed random split of the graph-recommender papers (LCFN/UltraGCN: ../shared/data/ml-1m-random-split,
 * train.txt / test.txt), beside UltraGCN (Recall@20 .2787, NDCG@20 .2642). Protocol: full ranking over all items,
 * each user's training items excluded (UltraGCN's).
 *
 * The configuration is NOT chosen here: it is recipes/ml1m/recipe.json + recipes/ml1m/options.json, the files
 * `towerlab tune` wrote after searching on a validation carve-out of train.txt (command in
 * docs/collaborative-filtering.md). This bench trains that configuration with 3 seeds on the whole train file for
 * the tuned number of epochs (no test data was used to choose anything), evaluates on test.txt, and runs the same
 * configuration unchanged on MovieLens-100K (random 80/10/10 split, seed 42, full ranking, training items
 * excluded). A run that collapses (train/collapse.ts), never learns (train/no-learning.ts: its validation never beat
 * popularity on the validation users, or stayed flat; ML-1M has no validation part, so only ML-100K is judged
 * so), or does not beat popularity on test is marked in the table and left out of the mean.
 * Writes bench/results/ml1m.json (or --out).
 *
 *   npm run bench:ml1m [-- --seeds 1,2,3 --jobs 3 --skip-100k --config recipes/ml1m --out ml1m.json]
 *   (--config: a directory holding recipe.json + options.json; --out: the file under bench/results/)
 *   (--jobs runs seeds as parallel child processes: faster on a shared machine, same numbers)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeResultJson } from './result-paths.ts';
import { join, resolve } from 'node:path';
import { modelOptionsFrom, trainConfigFrom } from '../src/cli/options.ts';
import { asRunOptions, normalizeOptions, trainOptionDefaults } from '../src/cli/run-options.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { runExperiment } from '../src/train/experiment.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

const REF = { name: 'UltraGCN (published)', recall: 0.2787, ndcg: 0.2642 };
const ML1M = resolve('..', 'shared', 'data', 'ml-1m-random-split');
const ML100K = resolve('..', 'shared', 'data', 'ml-100k', 'ml-100k.inter');
const CONFIG = arg('config', 'recipes/ml1m');
const RECIPE = `${CONFIG}/recipe.json`;
const OPTIONS = `${CONFIG}/options.json`;
const OUT = arg('out', 'ml1m.json');
const seeds = arg('seeds', '1,2,3').split(',').map(Number);
const jobs = Number(arg('jobs', '1'));
const dataset = arg('dataset', 'all');

if (!existsSync(join(ML1M, 'train.txt'))) {
  console.log(`bench:ml1m skipped: ${ML1M}/train.txt not found (the shared data folder is absent)`);
  process.exit(0);
}

const recipe = loadRecipe(RECIPE);
const options = normalizeOptions(JSON.parse(readFileSync(OPTIONS, 'utf8')), OPTIONS);
const o = { ...trainOptionDefaults(), ...options };

interface Run {
  dataset: string;
  seed: number;
  metrics: Record<string, number>;
  popularity: Record<string, number>;
  epochs: number;
  seconds: number;
  examplesPerSecond: number;
  data: unknown;
  /** Validation verdicts (train/collapse.ts, train/no-learning.ts; learned null = no validation part). */
  collapsed?: boolean;
  learned?: boolean | null;
  noLearningReason?: string | null;
}

async function runOne(ds: 'ml-1m' | 'ml-100k', seed: number): Promise<Run> {
  const files = ds === 'ml-1m';
  const r = await runExperiment({
    data: { path: files ? join(ML1M, 'train.txt') : ML100K },
    // ML-1M: the whole train file, the tuned epochs, no validation (nothing left to choose). ML-100K: one file,
    // random 80/10/10, the same options; its validation part only picks the best epoch.
    split: files
      ? { kind: 'files', train: join(ML1M, 'train.txt'), val: null, test: join(ML1M, 'test.txt'), valFraction: 0, seed: 42 }
      : { kind: 'random', val: 0.1, test: 0.1, seed: 42 },
    recipe,
    model: { ...modelOptionsFrom(asRunOptions(o)), seed },
    train: { ...trainConfigFrom(asRunOptions({ ...o, seed })), progress: 'none' },
    ks: [20],
    out: null,
  });
  return {
    dataset: ds,
    seed,
    metrics: r.metrics,
    popularity: r.baselines.popularity,
    epochs: r.train.epochs,
    seconds: r.train.trainSeconds,
    examplesPerSecond: r.examples_per_s,
    data: r.data,
    collapsed: r.train.collapse.collapsed,
    learned: r.train.noLearning.learned,
    noLearningReason: r.train.noLearning.reason,
  };
}

// Child mode: one (dataset, seed), result as JSON on stdout.
if (flag('child')) {
  const run = await runOne(arg('dataset', 'ml-1m') as 'ml-1m' | 'ml-100k', Number(arg('seed', '1')));
  process.stdout.write(JSON.stringify(run) + '\n');
  process.exit(0);
}

const tasks: Array<['ml-1m' | 'ml-100k', number]> = [];
for (const ds of ['ml-1m', 'ml-100k'] as const) {
  if (dataset !== 'all' && dataset !== ds) continue;
  if (ds === 'ml-100k' && (flag('skip-100k') || !existsSync(ML100K))) continue;
  for (const s of seeds) tasks.push([ds, s]);
}

function child(ds: string, seed: number): Promise<Run> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'bench/ml1m.ts', '--child', '--dataset', ds, '--seed', String(seed), '--config', CONFIG], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.on('exit', (code) => (code === 0 ? res(JSON.parse(out.trim().split('\n').at(-1)!)) : rej(new Error(`${ds} seed ${seed}: exit ${code}`))));
  });
}

const runs: Run[] = [];
const stat = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean: m, std: xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0, n: xs.length };
};
/** The table and bench/results/ml1m.json from the runs finished so far. */
function summarize(): string[] {
  const summary: Record<string, unknown> = {};
  const lines = ['| data | model | Recall@20 | NDCG@20 | seeds |', '|---|---|---|---|---|'];
  for (const ds of ['ml-1m', 'ml-100k']) {
    const rs = runs.filter((r) => r.dataset === ds).sort((a, b) => a.seed - b.seed);
    if (!rs.length) continue;
    // Why a run is left out of the mean, if it is (runs of older result files carry no validation verdicts).
    const why = (r: Run) =>
      r.learned === false ? `not learned (${r.noLearningReason})` : r.collapsed ? 'collapsed' : !(r.metrics['recall@20'] > r.popularity['recall@20']) ? 'below popularity on test' : null;
    const ok = rs.filter((r) => why(r) === null);
    const leftOut = rs.filter((r) => why(r) !== null).map((r) => ({ seed: r.seed, why: why(r) }));
    const collapsed = leftOut.map((x) => x.seed);
    const rec = stat(ok.map((r) => r.metrics['recall@20']));
    const ndcg = stat(ok.map((r) => r.metrics['ndcg@20']));
    summary[ds] = { recall20: rec, ndcg20: ndcg, collapsedSeeds: collapsed, leftOut, popularity: rs[0].popularity, runs: rs };
    const f = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}`;
    lines.push(`| ${ds} | two-tower, tuned (${recipe.name ?? RECIPE}) | ${f(rec)} | ${f(ndcg)} | ${ok.map((r) => r.seed).join(', ')}${leftOut.length ? `; left out: ${leftOut.map((x) => `${x.seed} (${x.why})`).join(', ')}` : ''} |`);
    lines.push(`| ${ds} | popularity | ${rs[0].popularity['recall@20'].toFixed(4)} | ${rs[0].popularity['ndcg@20'].toFixed(4)} | – |`);
    if (ds === 'ml-1m') {
      lines.push(`| ${ds} | ${REF.name} | ${REF.recall.toFixed(4)} | ${REF.ndcg.toFixed(4)} | – |`);
      lines.push(`| ${ds} | ours / UltraGCN | ${(rec.mean / REF.recall * 100).toFixed(1)} % | ${(ndcg.mean / REF.ndcg * 100).toFixed(1)} % | – |`);
    }
  }
  const out = { protocol: 'full ranking over all items, training items excluded', recipe: RECIPE, options, reference: REF, summary, created: new Date().toISOString() };
  mkdirSync('bench/results', { recursive: true });
  writeResultJson(`bench/results/${OUT}`, out);
  return lines;
}
const queue = [...tasks];
await Promise.all(
  Array.from({ length: Math.max(1, jobs) }, async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      process.stderr.write(`bench:ml1m: ${t[0]} seed ${t[1]}...\n`);
      const r = jobs > 1 ? await child(t[0], t[1]) : await runOne(t[0], t[1]);
      process.stderr.write(`bench:ml1m: ${t[0]} seed ${t[1]}: recall@20 ${r.metrics['recall@20'].toFixed(4)} ndcg@20 ${r.metrics['ndcg@20'].toFixed(4)} (${r.epochs} epochs, ${r.seconds.toFixed(0)} s)\n`);
      runs.push(r);
      // Rewritten after every run, so runs already finished survive an interrupted bench.
      summarize();
    }
  }),
);

const lines = summarize();
console.log(lines.join('\n'));
console.log('wrote bench/results/ml1m.json');
