/**
 * `towerlab mine`: hard negatives for every training pair of a data set, from one saved model or an ensemble
 * (RRF / soft voting), with false-negative filtering (rank window, margin, max score), written as groups
 * `{user, positive, negatives, scores}` to JSONL or Parquet. The data and split default to those the first
 * model recorded, so the pairs are that model's training rows; all models must share its vocabularies.
 */
import { Command, Option } from 'commander';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { dataFingerprint, recordedFingerprint } from '../data/fingerprint.ts';
import type { DataSpec } from '../data/load.ts';
import type { SplitSpec } from '../data/split.ts';
import { loadSplit } from '../data/split-files.ts';
import { groupsToJsonl, writeGroups } from '../mine/groups-file.ts';
import { SHORT_MARGIN, SHORT_MAX_SCORE, SHORT_NONE, SHORT_RANGE } from '../sampling/hard-negative-filter.ts';
import { mineGroups, type MinedGroups } from '../mine/mine.ts';
import { ModelRetriever } from '../mine/model-retriever.ts';
import { LanceIndex, lanceTarget } from '../index/lance-index.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { openModel } from '../bundle/open.ts';
import { addDataOptions, addSplitOptions, dataSpecFrom, splitSpecFrom, type DataOptions, type SplitOptions } from './options.ts';
import { printJsonLast } from './output.ts';

export function parseRange(v: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(v.trim());
  if (!m || Number(m[2]) <= Number(m[1])) throw new UserError(`--range: expected START:END with END > START (e.g. 10:100), got '${v}'`);
  return [Number(m[1]), Number(m[2])];
}

function num(flag: string, v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (String(v).trim() === '' || !Number.isFinite(x)) throw new UserError(`${flag}: '${v}' is not a number`);
  return x;
}

export interface MineCommandOptions extends DataOptions, SplitOptions {
  model: string[];
  out: string;
  fusion: 'rrf' | 'soft-vote';
  n: string;
  range: string;
  margin?: string;
  relative?: boolean;
  maxScore?: string;
  sample: 'top' | 'random';
  /** exact, hnsw, or lancedb:DIR */
  search: string;
  seed: string;
  backend: BackendChoice;
  json?: boolean;
  minNegatives?: string;
  allowMixed?: boolean;
}

export async function mineCommand(o: MineCommandOptions): Promise<void> {
  const dirs: string[] = o.model;
  const models = dirs.map((d) => openModel(d));
  const a = models[0];
  models.forEach((m, i) => {
    if (m.itemIds.length !== a.itemIds.length || m.itemIds.some((x, j) => x !== a.itemIds[j]) || m.userIds.length !== a.userIds.length || m.userIds.some((x, j) => x !== a.userIds[j])) {
      throw new UserError(`--model ${dirs[i]}: its users/items differ from ${dirs[0]}'s; an ensemble needs models trained on the same data`);
    }
  });
  const [rankStart, rankEnd] = parseRange(o.range);
  const n = num('--n', o.n)!;
  if (!Number.isInteger(n) || n < 1) throw new UserError(`--n: must be a positive integer, got '${o.n}'`);
  const saved = (a.meta.data ?? {}) as DataSpec;
  const given = o.data || o.trainFile ? dataSpecFrom(o) : ({} as Partial<DataSpec>);
  const spec: DataSpec = { ...saved, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as DataSpec;
  if (!spec.path) throw new UserError('--data: the model records no data set; give --data');
  const split: SplitSpec = o.split || o.trainFile ? splitSpecFrom(o) : (a.meta.split as SplitSpec);
  if (!split) throw new UserError('--split: the model records no split; give --split');

  const t0 = performance.now();
  const { data, split: parts } = await loadSplit(spec, split);
  if (!o.allowMixed) checkSameTraining(dirs, models.map((m) => recordedFingerprint(m.meta)), dataFingerprint(data, parts));
  const userIndex = new Map(a.userIds.map((id, i) => [id, i]));
  const itemIndex = new Map(a.itemIds.map((id, i) => [id, i]));
  const us: number[] = [];
  const is: number[] = [];
  for (const r of parts.train) {
    const u = userIndex.get(data.userVocab.ids[data.users[r]]);
    const i = itemIndex.get(data.itemVocab.ids[data.items[r]]);
    if (u !== undefined && i !== undefined) {
      us.push(u);
      is.push(i);
    }
  }
  if (!us.length) throw new UserError(`${spec.path}: no training interaction has a user and item known to the model`);
  const users = Int32Array.from(us);
  const positives = Int32Array.from(is);
  const backend = await getBackend(o.backend);
  let lance: LanceIndex | null = null;
  const lanceDir = lanceTarget(o.search);
  if (lanceDir !== null) {
    if (models.length > 1) throw new UserError('--search lancedb:DIR: one table serves one model; an ensemble searches exactly or with hnsw');
    lance = LanceIndex.open(lanceDir, { itemIds: a.itemIds, dim: a.model.dim });
  } else if (o.search !== 'exact' && o.search !== 'hnsw') throw new UserError(`--search: expected exact, hnsw or lancedb:DIR, got '${o.search}'`);
  const members = models.map((m, i) => new ModelRetriever(backend, m.model, { name: dirs[i], search: lance ? 'index' : (o.search as 'exact' | 'hnsw'), index: lance ?? undefined, exclude: m.seen }));
  const g = mineGroups(members, users, positives, {
    fusion: o.fusion,
    n,
    rankStart,
    rankEnd,
    margin: num('--margin', o.margin),
    relative: !!o.relative,
    maxScore: num('--max-score', o.maxScore),
    sample: o.sample,
    rng: new Rng(Number(o.seed)),
  });
  const minNeg = o.minNegatives === undefined ? 0 : num('--min-negatives', o.minNegatives)!;
  if (!Number.isInteger(minNeg) || minNeg < 0 || minNeg > n) throw new UserError(`--min-negatives: must be an integer in 0..--n (${n}), got '${o.minNegatives}'`);
  const counts = new Int32Array(users.length);
  const shortBy = { margin: 0, max_score: 0, range: 0 };
  let empty = 0;
  for (let r = 0; r < users.length; r++) {
    let c = 0;
    while (c < n && g.negatives.ids[r * n + c] >= 0) c++;
    counts[r] = c;
    if (c === 0) empty++;
    const why = g.shortReasons[r];
    if (why === SHORT_MARGIN) shortBy.margin++;
    else if (why === SHORT_MAX_SCORE) shortBy.max_score++;
    else if (why === SHORT_RANGE) shortBy.range++;
  }
  lance?.close();
  const short = users.length - g.shortReasons.filter((x) => x === SHORT_NONE).length;
  // --min-negatives drops short groups rather than refilling them from deeper ranks: a refill would hand back
  // the candidates the margin / max-score filters just judged likely false negatives, or leave the rank window.
  const keep = keptRows(counts, minNeg);
  const kept = keep.length === users.length ? { g, users, positives } : selectRows(g, users, positives, keep);
  let total = 0;
  for (const r of keep) total += counts[r];
  await writeGroups(o.out, groupsToJsonl(kept.g, kept.users, kept.positives, a.userIds, a.itemIds));
  const seconds = (performance.now() - t0) / 1000;
  const dropped = users.length - keep.length;
  const summary = {
    out: o.out, models: dirs, fusion: dirs.length > 1 ? o.fusion : null, groups: keep.length, negatives: total, short_groups: short, empty_groups: empty,
    short_by: shortBy, dropped_groups: dropped, min_negatives: minNeg, range: [rankStart, rankEnd], seconds,
  };
  const shortLine = shortSummary(short, empty, users.length, n, shortBy, [rankStart, rankEnd], o.margin, o.maxScore);
  if (shortLine) process.stderr.write(`${shortLine}${dropped ? `; ${dropped} dropped by --min-negatives ${minNeg}` : short && !minNeg ? '; --min-negatives N drops groups below N' : ''}\n`);
  if (o.json) printJsonLast(summary);
  else {
    process.stdout.write(`${keep.length} groups (${total} negatives; ${short} with fewer than ${n}${dropped ? `, ${dropped} dropped` : ''}) from ${dirs.length} model(s)${dirs.length > 1 ? ` fused by ${o.fusion}` : ''} written to ${o.out} in ${seconds.toFixed(1)} s\n`);
  }
}

/**
 * Refuses to mix models trained on different rows, or to mine pairs other than the models' training rows,
 * unless --allow-mixed: a fused ranking of such models, or negatives for rows a model has never seen, is
 * silently something else than asked. Models saved without a fingerprint (before it existed) count as unknown.
 */
function checkSameTraining(dirs: string[], prints: Array<ReturnType<typeof recordedFingerprint>>, mining: ReturnType<typeof dataFingerprint>): void {
  const hint = 'give --allow-mixed to mine anyway';
  prints.forEach((f, i) => {
    if (!f) {
      if (dirs.length > 1) throw new UserError(`--model ${dirs[i]}: records no data fingerprint (saved before towerlab recorded one), so it cannot be checked to share ${dirs[0]}'s training data and split; ${hint}`);
      return;
    }
    if (f.data !== mining.data) throw new UserError(`--model ${dirs[i]}: trained on other data than the data being mined (fingerprint ${f.data} vs ${mining.data}); ${hint}`);
    if (f.train !== mining.train) throw new UserError(`--model ${dirs[i]}: trained on another split of this data than the one being mined (training rows ${f.train} vs ${mining.train}); ${hint}`);
  });
}

function keptRows(counts: Int32Array, min: number): number[] {
  const keep: number[] = [];
  for (let r = 0; r < counts.length; r++) if (counts[r] >= min) keep.push(r);
  return keep;
}

function selectRows(g: MinedGroups, users: Int32Array, positives: Int32Array, rows: number[]): { g: MinedGroups; users: Int32Array; positives: Int32Array } {
  const n = g.negatives.k;
  const ids = new Int32Array(rows.length * n);
  const scores = new Float32Array(rows.length * n);
  rows.forEach((r, i) => {
    ids.set(g.negatives.ids.subarray(r * n, r * n + n), i * n);
    scores.set(g.negatives.scores.subarray(r * n, r * n + n), i * n);
  });
  return {
    g: {
      negatives: { rows: rows.length, k: n, ids, scores },
      positiveScores: Float32Array.from(rows, (r) => g.positiveScores[r]),
      shortReasons: Uint8Array.from(rows, (r) => g.shortReasons[r]),
    },
    users: Int32Array.from(rows, (r) => users[r]),
    positives: Int32Array.from(rows, (r) => positives[r]),
  };
}

/** One line: how many groups are short or empty, and why. Empty when every group is full. */
export function shortSummary(short: number, empty: number, groups: number, n: number, by: { margin: number; max_score: number; range: number }, range: [number, number], margin?: string, maxScore?: string): string {
  if (!short) return '';
  const why: string[] = [];
  if (by.margin) why.push(`${by.margin} by --margin ${margin}`);
  if (by.max_score) why.push(`${by.max_score} by --max-score ${maxScore}`);
  if (by.range) why.push(`${by.range} because rank window ${range[0]}:${range[1]} held fewer than ${n} unseen candidates`);
  return `note: ${short} of ${groups} groups have fewer than ${n} negatives (${empty} empty): ${why.join(', ')}`;
}

export function registerMineCommand(program: Command): void {
  const cmd = program.command('mine').description('mine hard negatives for the training pairs with one model or an ensemble, writing groups to JSONL/Parquet');
  addDataOptions(cmd, false);
  addSplitOptions(cmd, false);
  cmd
    .requiredOption('--model <dir...>', 'model directories (several = ensemble); repeat --model or list them')
    .requiredOption('--out <path>', 'output file: .jsonl (what a mined source reads) or .parquet')
    .addOption(new Option('--fusion <method>', 'how an ensemble is fused').choices(['rrf', 'soft-vote']).default('rrf'))
    .option('--n <k>', 'negatives per (user, positive) group', '10')
    .option('--range <start:end>', 'rank window over each user\'s unseen items (skip the top START, look at most END deep)', '10:100')
    .option('--margin <x>', 'drop candidates scoring above positive − x (or positive·(1 − x) with --relative)')
    .option('--relative', 'the margin is relative to the positive\'s score')
    .option('--max-score <x>', 'drop candidates whose (mean) cosine exceeds x')
    .addOption(new Option('--sample <how>', 'take the top n survivors or a random n').choices(['top', 'random']).default('top'))
    .option('--search <how>', "exact top-k, HNSW (usearch, built in memory), or a LanceDB table written by 'export --to lancedb:DIR' (lancedb:DIR)", 'exact')
    .option('--min-negatives <n>', 'drop groups left with fewer than n negatives by the filters (default: keep every group)')
    .option('--allow-mixed', 'mine even when the models were trained on different data or splits than each other or the mined pairs')
    .option('--seed <n>', 'seed of --sample random', '1')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .option('--json', 'print a summary as one JSON object on the last line of stdout')
    .action((opts) => mineCommand(opts));
}
