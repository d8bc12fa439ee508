/**
 * `towerlab eval`: re-evaluates a saved model on the test split of a data set (by default the data and
 * split it was trained with, recorded in the model), beside the popularity baseline.
 */
import { getBackend } from '../compute/index.ts';
import { csrFromPairs } from '../data/csr.ts';
import { loadInteractions, type DataSpec } from '../data/load.ts';
import type { SplitSpec } from '../data/split.ts';
import { coldTestUsers, loadSplit } from '../data/split-files.ts';
import { popularityBaseline } from '../eval/baselines.ts';
import { formatMetricsTable } from '../eval/format.ts';
import { evaluateRanking } from '../eval/ranking.ts';
import { embeddingScorer } from '../eval/scorer.ts';
import { UserError } from '../util/errors.ts';
import { seqModelDir } from '../seq/saved-model.ts';
import { openModel } from '../bundle/open.ts';
import { seqEvalCommand } from './seq-model.ts';
import { dataSpecFrom, parseList, splitSpecFrom, type EvalCommandOptions } from './options.ts';
import { printJsonLast } from './output.ts';

export async function evalCommand(o: EvalCommandOptions): Promise<void> {
  const seqDir = seqModelDir(o.model);
  if (seqDir) return seqEvalCommand(o, seqDir);
  if (o.sampled !== undefined || o.excludeHistory) throw new UserError('--sampled / --exclude-history apply to sequence models (towerlab seq --out) only');
  const a = openModel(o.model);
  const ks = parseList('--ks', o.ks);
  const saved = (a.meta.data ?? {}) as DataSpec;
  const given = o.data || o.trainFile ? dataSpecFrom(o) : ({} as Partial<DataSpec>);
  const spec: DataSpec = { ...saved, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as DataSpec;
  if (!spec.path && !o.testFile) throw new UserError('--data: the model records no data set; give --data or --test-file');
  const savedSplit = a.meta.split as SplitSpec | undefined;
  let data;
  let parts;
  if (o.testFile && !o.trainFile) {
    // Only the test rows are needed: the model brings its vocabularies and its users' training items.
    const noFeatures = { userFeatureCols: undefined, itemFeatureCols: undefined, userFeaturesPath: undefined, itemFeaturesPath: undefined, userDenseCols: undefined, itemDenseCols: undefined };
    data = await loadInteractions({ ...spec, ...noFeatures, path: o.testFile });
    parts = { test: Int32Array.from({ length: data.users.length }, (_, i) => i), description: `test file ${o.testFile}` };
  } else {
    const split: SplitSpec | undefined = o.split || o.trainFile ? splitSpecFrom(o) : savedSplit;
    if (!split) throw new UserError('--split: the model records no split; give --split');
    ({ data, split: parts } = await loadSplit(spec, split));
  }
  const userIndex = new Map(a.userIds.map((id, i) => [id, i]));
  const itemIndex = new Map(a.itemIds.map((id, i) => [id, i]));
  const us: number[] = [];
  const is: number[] = [];
  let unknown = 0;
  for (const r of parts.test) {
    const u = userIndex.get(data.userVocab.ids[data.users[r]]);
    const i = itemIndex.get(data.itemVocab.ids[data.items[r]]);
    if (u === undefined || i === undefined) unknown++;
    else {
      us.push(u);
      is.push(i);
    }
  }
  if (!us.length) throw new UserError(`${spec.path}: none of the ${parts.test.length} test interactions has a user and item known to the model`);
  const test = csrFromPairs(a.userIds.length, Int32Array.from(us), Int32Array.from(is), true);
  const backend = await getBackend(o.backend);
  const m = a.model;
  const itemPopularity = Float64Array.from(a.itemCounts);
  const t0 = performance.now();
  const scorer = embeddingScorer(backend, (ids, out) => m.user.embed(backend, ids, out), m.embedAllItems(backend), m.dim, a.itemIds.length);
  const model = evaluateRanking({ backend, scorer, test, exclude: a.seen, ks, itemPopularity });
  const seconds = (performance.now() - t0) / 1000;
  const popularity = popularityBaseline({ backend, test, exclude: a.seen, ks, itemPopularity });
  const cold = coldTestUsers(test, a.seen);
  if (cold > 0) process.stderr.write(`towerlab: note: ${cold} of ${model.users} test users have no training interactions; they stay in the test set and count in every metric\n`);
  process.stdout.write(
    `${spec.path}: ${parts.test.length} test interactions of ${model.users} users (${parts.description})` +
      (unknown ? `; ${unknown} skipped: user or item unknown to the model` : '') +
      `\nfull-corpus ranking over ${a.itemIds.length} items, training items excluded (${seconds.toFixed(2)} s):\n` +
      formatMetricsTable([
        { name: 'model', result: model },
        { name: 'popularity', result: popularity },
      ]) +
      '\n',
  );
  if (o.json) {
    printJsonLast({
      metrics: model.metrics,
      baselines: { popularity: popularity.metrics },
      // Training throughput recorded when the model was trained (evaluation has no examples/s of its own).
      examples_per_s: a.meta.train?.examplesPerSecond ?? null,
      users: model.users,
      skipped_unknown: unknown,
      test_users_without_train: cold,
      eval_seconds: seconds,
      backend: backend.name,
    });
  }
}
