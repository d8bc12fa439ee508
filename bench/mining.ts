/**
 * ANN/ensemble hard-negative mining and the LCE reranker on ml-100k (random 80/10/10 split), several seeds:
 *  - baseline: in-batch + logQ;
 *  - mined columns with logQ 'none' (logq 0) and 'frequency' (they join the mixture proposal);
 *  - + mined negatives (offline, `towerlab mine` path) from the baseline model alone, or from an ensemble of
 *    three models (the baseline, another seed, the mixed-uniform recipe) fused by RRF; each without
 *    false-negative filtering (rank window 0:50) and with it (window 10:100, margin 0: no negative may score
 *    above the positive, as in sentence-transformers' example);
 *  - + online mining (ANCE-style refresh every R steps, window 10:100, margin 0);
 *  - retrieve (baseline, full corpus, top-100) vs retrieve + LCE rerank of those 100, the reranker trained on
 *    validation pairs (the retriever never trained on them) with groups of 1 + 7 negatives from the same
 *    top-100; features with the target's score only, or with all three ensemble members' scores.
 * Every model: same split, same architecture, fixed epochs with early stopping on val recall@20.
 * Writes bench/results/mining.json and bench/results/mining.md.
 *
 *   npm run bench:mining [-- --seeds 3 --epochs 8]
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { loadInteractions } from '../src/data/load.ts';
import { prepare } from '../src/data/prepare.ts';
import { splitInteractions, type SplitSpec } from '../src/data/split.ts';
import { groupsToJsonl, writeGroups } from '../src/mine/groups-file.ts';
import { mineGroups, type MineOptions } from '../src/mine/mine.ts';
import { ModelRetriever } from '../src/mine/model-retriever.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import type { TwoTowerModel } from '../src/model/two-tower.ts';
import { featureDim } from '../src/rerank/features.ts';
import { LceReranker } from '../src/rerank/lce.ts';
import { evaluateStages, stageContext, trainReranker } from '../src/rerank/pipeline.ts';
import { loadRecipe, parseRecipe, type Recipe } from '../src/recipe/schema.ts';
import { runExperiment } from '../src/train/experiment.ts';
import { Rng } from '../src/util/rng.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const seeds = Number(arg('seeds', '3'));
const epochs = Number(arg('epochs', '6'));
const batch = 512;
const minedN = Number(arg('mined-n', '2'));
const refreshEvery = Number(arg('refresh-every', '50'));
const outFile = arg('out', 'bench/results/mining.json');
const path = resolve('..', 'shared', 'data', 'ml-100k', 'ml-100k.inter');
const split: SplitSpec = { kind: 'random', val: 0.1, test: 0.1, seed: 42 };
if (!existsSync(path)) {
  console.log(`bench:mining skipped: ${path} not found`);
  process.exit(0);
}

const backend = await getBackend();
const data = await loadInteractions({ path });
const parts = splitInteractions(data, split);
const prep = prepare(data, parts);
const base = loadRecipe('recipes/in-batch-logq.json');
const mixed = loadRecipe('recipes/mixed-uniform.json');
const withMined = (mined: object): Recipe => parseRecipe({ ...base, name: undefined, sources: [...base.sources, { type: 'mined', n: minedN, ...mined }] });
const KS = ['ndcg@10', 'recall@10', 'recall@20'];
const tmp = mkdtempSync(join(tmpdir(), 'bench-mining-'));

async function trainOne(recipe: Recipe, seed: number) {
  const t0 = performance.now();
  const r = await runExperiment({
    data: { path },
    loaded: data,
    split,
    recipe,
    model: { ...defaultModelOptions, seed },
    train: { epochs, batchSize: batch, seed, evalEvery: 1, patience: 3, valMetric: 'recall@20', valMaxUsers: 3000, resume: false, progress: 'none', logEvery: 0, diagnosticBatches: 0 },
    ks: [10, 20],
    out: null,
  });
  return { r, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Offline mining for every training row, written to JSONL like `towerlab mine`; returns the file and stats,
 * including how many mined negatives are in fact the user's held-out TEST items (false negatives we can see),
 * beside what uniformly drawn unseen items would give (|test_u| / |unseen_u|, averaged over the same rows).
 */
async function mineFile(models: TwoTowerModel[], o: Omit<MineOptions, 'fusion' | 'n' | 'sample'>, tag: string, fusion: 'rrf' | 'soft-vote' = 'rrf') {
  const t0 = performance.now();
  const members = models.map((m) => new ModelRetriever(backend, m, { exclude: prep.seenWithVal }));
  const g = mineGroups(members, prep.trainUsers, prep.trainItems, { ...o, fusion, n: 10, sample: 'top' });
  const seconds = (performance.now() - t0) / 1000;
  let kept = 0;
  let testHits = 0;
  let uniform = 0;
  const testSet = (u: number) => new Set(prep.test.cols.subarray(prep.test.offsets[u], prep.test.offsets[u + 1]));
  const cache = new Map<number, Set<number>>();
  for (let r = 0; r < prep.trainUsers.length; r++) {
    const u = prep.trainUsers[r];
    let t = cache.get(u);
    if (!t) cache.set(u, (t = testSet(u)));
    const unseen = prep.numItems - (prep.seenWithVal.offsets[u + 1] - prep.seenWithVal.offsets[u]);
    for (let i = 0; i < 10; i++) {
      const id = g.negatives.ids[r * 10 + i];
      if (id < 0) continue;
      kept++;
      if (t.has(id)) testHits++;
      uniform += t.size / unseen;
    }
  }
  const file = join(tmp, `${tag}.jsonl`);
  await writeGroups(file, groupsToJsonl(g, prep.trainUsers, prep.trainItems, data.userVocab.ids, data.itemVocab.ids));
  return { file, negativesPerGroup: kept / prep.trainUsers.length, seconds, testItemRate: testHits / kept, uniformTestItemRate: uniform / kept };
}
const fnRows: Array<Record<string, number | string>> = [];

const runs: Record<string, Array<Record<string, number>>> = {};
const extra: Record<string, Array<Record<string, number>>> = {};
const push = (m: Record<string, Array<Record<string, number>>>, k: string, v: Record<string, number>) => (m[k] ??= []).push(v);
const record = (key: string, r: Awaited<ReturnType<typeof trainOne>>, more: Record<string, number> = {}) => {
  push(runs, key, Object.fromEntries(KS.map((k) => [k, r.r.metrics[k]])));
  push(extra, key, { trainSeconds: r.r.train.trainSeconds, epochs: r.r.train.epochs, ...more });
};

const valUsersPairs = { users: prep.val.cols.length ? expandRows(prep.val) : new Int32Array(0), items: prep.val.cols };
function expandRows(m: { rows: number; offsets: Int32Array }): Int32Array {
  const out = new Int32Array(m.offsets[m.rows]);
  for (let r = 0; r < m.rows; r++) out.fill(r, m.offsets[r], m.offsets[r + 1]);
  return out;
}
const rerankRows: Array<Record<string, number>> = [];

for (let seed = 1; seed <= seeds; seed++) {
  const log = (m: string) => process.stderr.write(`[seed ${seed}] ${m}\n`);
  log('baseline in-batch+logQ');
  const A = await trainOne(base, seed);
  record('in-batch+logQ', A);
  log('ensemble members: another seed, mixed-uniform');
  const B = await trainOne(base, seed + 100);
  const C = await trainOne(mixed, seed + 200);
  record('member: in-batch+logQ (seed+100)', B);
  record('member: mixed-uniform', C);
  const ens = [A.r.model, B.r.model, C.r.model];
  const noFilter = { rankStart: 0, rankEnd: 50 };
  const fnFilter = { rankStart: 10, rankEnd: 100, margin: 0 };
  const variants: Array<[string, TwoTowerModel[], Omit<MineOptions, 'fusion' | 'n' | 'sample'>, 'none' | 'frequency']> = [
    ['+mined single, no filter, no logQ', [A.r.model], noFilter, 'none'],
    ['+mined single, FN filter, no logQ', [A.r.model], fnFilter, 'none'],
    ['+mined single, no filter', [A.r.model], noFilter, 'frequency'],
    ['+mined single, FN filter', [A.r.model], fnFilter, 'frequency'],
    ['+mined ensemble RRF, no filter', ens, noFilter, 'frequency'],
    ['+mined ensemble RRF, FN filter', ens, fnFilter, 'frequency'],
  ];
  const files = new Map<string, Awaited<ReturnType<typeof mineFile>>>();
  for (const [key, models, o, correction] of variants) {
    const fileKey = `${models.length}-${o.rankStart}-${o.rankEnd}`;
    if (!files.has(fileKey)) {
      log(`mining: ${models.length} model(s), window ${o.rankStart}:${o.rankEnd}${o.margin !== undefined ? `, margin ${o.margin}` : ''}`);
      files.set(fileKey, await mineFile(models, o, `${seed}-${fileKey}`));
    }
    const mined = files.get(fileKey)!;
    if (!fnRows.some((x) => x.seed === seed && x.key === fileKey)) fnRows.push({ seed, key: fileKey, mined: `${models.length === 1 ? 'single' : 'ensemble RRF'}, ${o.margin !== undefined ? 'FN filter' : 'no filter'}`, testItemRate: mined.testItemRate, uniformTestItemRate: mined.uniformTestItemRate, negativesPerGroup: mined.negativesPerGroup });
    log(`  ${key}: ${mined.negativesPerGroup.toFixed(2)} negatives/group (mined in ${mined.seconds.toFixed(1)} s); training`);
    const r = await trainOne(withMined({ from: mined.file, sample: 'random', correction }), seed);
    record(key, r, { mineSeconds: mined.seconds, negativesPerGroup: mined.negativesPerGroup });
  }
  for (const [o, name] of [[noFilter, 'ensemble soft-vote, no filter'], [fnFilter, 'ensemble soft-vote, FN filter']] as const) {
    const sv = await mineFile(ens, o, `${seed}-sv-${o.rankStart}`, 'soft-vote');
    fnRows.push({ seed, key: `sv-${o.rankStart}`, mined: name, testItemRate: sv.testItemRate, uniformTestItemRate: sv.uniformTestItemRate, negativesPerGroup: sv.negativesPerGroup });
  }
  log('online mining (refresh)');
  const online = await trainOne(withMined({ from: 'online', refreshEvery, rankRange: [10, 100], margin: 0, sample: 'random', correction: 'frequency' }), seed);
  record(`+mined online (refresh every ${refreshEvery} steps), FN filter`, online);

  log('retrieve → LCE rerank');
  const members = ens.map((m) => new ModelRetriever(backend, m, { exclude: prep.seenWithVal }));
  const trainMembers = ens.map((m) => new ModelRetriever(backend, m, { exclude: prep.seen }));
  const allUsers = Int32Array.from({ length: prep.numUsers }, (_, u) => u);
  const row: Record<string, number> = {};
  for (const [tag, k] of [['target score', 1], ['+ensemble scores', 3]] as const) {
    // Training lists exclude only training items (validation positives must be findable); test lists exclude train+val.
    const trainCtx = stageContext(trainMembers.slice(0, k), allUsers, 100, prep.itemCounts);
    const testCtx = stageContext(members.slice(0, k), allUsers, 100, prep.itemCounts);
    const rer = new LceReranker(backend, { inDim: featureDim(A.r.model.dim, k), hidden: [64], temperature: 1, lr: 1e-3, seed });
    const t0 = performance.now();
    trainReranker(rer, trainCtx, valUsersPairs.users, valUsersPairs.items, prep.val, { epochs: 6, batch: 64, G: 8, rng: new Rng(seed) });
    const secs = (performance.now() - t0) / 1000;
    const m = evaluateStages(rer, testCtx, prep.test, [10, 100]);
    if (tag === 'target score') {
      row['retrieve ndcg@10'] = m.retrieve['ndcg@10'];
      row['retrieve recall@10'] = m.retrieve['recall@10'];
      row['recall@100 (rerank ceiling)'] = m.retrieve['recall@100'];
      row.users = m.users;
    }
    row[`rerank (${tag}) ndcg@10`] = m.rerank['ndcg@10'];
    row[`rerank (${tag}) recall@10`] = m.rerank['recall@10'];
    row[`rerank (${tag}) train s`] = secs;
  }
  rerankRows.push(row);
  writeResults(false);
}

function stats(xs: number[]) {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
}
function summarise(m: Array<Record<string, number>>) {
  return Object.fromEntries(Object.keys(m[0]).map((k) => [k, stats(m.map((r) => r[k]))]));
}

/** Per mined file kind: mean over seeds of the share of mined negatives that are held-out test items. */
function summariseFn() {
  const kinds = [...new Set(fnRows.map((r) => r.mined as string))];
  return kinds.map((mined) => {
    const rs = fnRows.filter((r) => r.mined === mined);
    return { mined, testItemRate: stats(rs.map((r) => r.testItemRate as number)), uniformTestItemRate: stats(rs.map((r) => r.uniformTestItemRate as number)), negativesPerGroup: stats(rs.map((r) => r.negativesPerGroup as number)) };
  });
}

function writeResults(complete: boolean) {
  const baseRuns = runs['in-batch+logQ'] ?? [];
  const configs = Object.entries(runs).map(([config, rs]) => ({
    config,
    metrics: summarise(rs),
    // Paired over seeds: config − baseline of the same seed.
    deltaVsBaseline: config === 'in-batch+logQ' ? null : Object.fromEntries(KS.map((k) => [k, stats(rs.map((r, i) => r[k] - (baseRuns[i]?.[k] ?? NaN)))])),
    extra: summarise(extra[config]),
  }));
  const out = {
    complete,
    bench: 'mining',
    date: new Date().toISOString(),
    backend: backend.name,
    machine: 'shared 2-core machine, other jobs running concurrently: timings are indicative only',
    protocol: `ml-100k, random 80/10/10 split (seed 42); full-corpus ranking with train+val items excluded; id towers dim ${defaultModelOptions.dim}, MLP ${defaultModelOptions.mlp.join('→')}; batch ${batch}; up to ${epochs} epochs, early stopping on val recall@20 (patience 3); mined negatives: ${minedN} per row drawn from each pair's 10 mined (offline) or from the window (online); FN filter = window 10:100 + margin 0 (no negative above the positive's cosine), no filter = window 0:50; logQ of mined columns: 'frequency' (they join the mixture proposal) unless marked 'no logQ' (logq 0)`,
    seeds,
    configs,
    falseNegatives: summariseFn(),
    rerank: rerankRows.length ? { perSeed: rerankRows, summary: summarise(rerankRows), protocol: 'target = the in-batch+logQ model; top-100 per test user (train+val excluded); LCE MLP [features → 64 → 1], groups 1 + 7 negatives from the top-100, trained 6 epochs on validation pairs whose positive is in the top-100 (training items excluded from those lists); NDCG/Recall@10 of both stages on the same users' } : null,
  };
  mkdirSync('bench/results', { recursive: true });
  writeResultJson(outFile, out);
  const fmt = (s: { mean: number; std: number }) => `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}`;
  const md: string[] = [
    `# bench:mining — ml-100k, ${seeds} seed(s)${complete ? '' : ' (incomplete)'}`,
    '',
    out.protocol,
    '',
    '| config | NDCG@10 | Recall@10 | Recall@20 | Δ NDCG@10 vs baseline (paired) | train s |',
    '|---|---|---|---|---|---|',
    ...configs.map((c) => `| ${c.config} | ${fmt(c.metrics['ndcg@10'])} | ${fmt(c.metrics['recall@10'])} | ${fmt(c.metrics['recall@20'])} | ${c.deltaVsBaseline ? fmt(c.deltaVsBaseline['ndcg@10']) : '—'} | ${c.extra.trainSeconds.mean.toFixed(1)} |`),
  ];
  md.push('', '## False negatives among mined negatives', '', 'Share of the (up to 10) mined negatives per training pair that are the user\'s held-out test items, vs the share expected from uniformly drawn unseen items.', '', '| mined | test items among negatives | uniform expectation | negatives / pair |', '|---|---|---|---|');
  for (const f of out.falseNegatives) md.push(`| ${f.mined} | ${fmt(f.testItemRate)} | ${fmt(f.uniformTestItemRate)} | ${f.negativesPerGroup.mean.toFixed(2)} |`);
  if (out.rerank) {
    md.push('', '## retrieve → LCE rerank (same users, same top-100)', '', out.rerank.protocol, '', '| metric | mean ± std |', '|---|---|');
    for (const [k, v] of Object.entries(out.rerank.summary)) md.push(`| ${k} | ${fmt(v)} |`);
  }
  writeFileSync(outFile.replace(/\.json$/, '.md'), md.join('\n') + '\n');
}

writeResults(true);
rmSync(tmp, { recursive: true, force: true });
console.log(`written ${outFile} and ${outFile.replace(/\.json$/, '.md')}`);
