/**
 * `towerlab eval` and `towerlab recommend` on a saved sequence model (written by `towerlab seq --out`):
 * eval re-runs the leave-last-one-out evaluation (full ranking, and GNNO's sampled protocol) on the data the
 * model records or on --data; recommend ranks the next item after a user's stored sequence or after an
 * explicit --history, with the model's own sequence tower.
 */
import type { Backend } from '../compute/backend.ts';
import { getBackend } from '../compute/index.ts';
import { csrFromPairs, csrRow } from '../data/csr.ts';
import type { DataSpec } from '../data/load.ts';
import { popularityBaseline } from '../eval/baselines.ts';
import { formatMetricsTable } from '../eval/format.ts';
import { remapItems, targetsCsr } from '../seq/data.ts';
import { evaluateSeq, scoringItems, sequenceUserEmbeddings } from '../seq/evaluate.ts';
import { loadSeqData, protocolText } from '../seq/experiment.ts';
import { evaluateSampled } from '../seq/sampled-eval.ts';
import { loadSeqModel, type SeqArtifacts } from '../seq/saved-model.ts';
import { itemLine, itemNamesFrom, named } from './item-names-option.ts';
import { UserError } from '../util/errors.ts';
import { dataSpecFrom, parseList, type EvalCommandOptions, type RecommendCommandOptions } from './options.ts';
import { printJsonLast } from './output.ts';

export async function seqEvalCommand(o: EvalCommandOptions, dir: string): Promise<void> {
  if (o.split && o.split !== 'loo') throw new UserError(`--split ${o.split}: a sequence model is evaluated leave-last-one-out only`);
  const a = loadSeqModel(dir);
  const ks = parseList('--ks', o.ks);
  if (!ks.length) ks.push(10);
  const sampledNs = parseList('--sampled', o.sampled ?? '1000');
  const saved = (a.meta.data ?? {}) as DataSpec;
  const given = o.data ? dataSpecFrom(o) : ({} as Partial<DataSpec>);
  const spec = { ...saved, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as DataSpec;
  if (!spec.path) throw new UserError('--data: the model records no data set; give --data');
  const loaded = await loadSeqData(spec);
  const { data, unknownTargets } = remapItems(loaded.data, loaded.raw.itemVocab.ids, a.itemIds);
  const backend = await getBackend(o.backend);
  const excludeHistory = !!o.excludeHistory;
  const t0 = performance.now();
  const full = evaluateSeq(backend, a.tower, data, 'test', { ks, excludeHistory, score: a.score });
  const seconds = (performance.now() - t0) / 1000;
  if (!full.users) throw new UserError(`${spec.path}: no user has a test item known to the model`);
  const popularity = popularityBaseline({ backend, test: targetsCsr(data.testItem), exclude: excludeHistory ? data.trainVal : null, ks, itemPopularity: Float64Array.from(a.itemCounts) });
  const sampled = sampledNs.map((n) => ({ n, ...evaluateSampled(backend, a.tower, data, 'test', { negatives: n, ks, score: a.score, seed: 0 }) }));
  const protocol = protocolText(excludeHistory, a.itemIds.length);
  const pick = (m: Record<string, number>) => Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith('hr@') || k.startsWith('ndcg@')));
  process.stdout.write(
    `${spec.path}: ${full.users} test users, sequence model ${a.options.tower} (score ${a.score})` +
      (unknownTargets ? `; ${unknownTargets} skipped: test item unknown to the model` : '') +
      `\n${protocol} (${seconds.toFixed(2)} s):\n` +
      formatMetricsTable([{ name: 'model', result: full }, { name: 'popularity', result: popularity }], { metrics: ['hr', 'ndcg'] }) +
      '\n' +
      sampled.map((s) => `${s.protocol}:\n${formatMetricsTable([{ name: 'model', result: s.metrics }], { metrics: ['hr', 'ndcg'] })}\n`).join(''),
  );
  if (o.json) {
    printJsonLast({
      kind: 'sequence',
      metrics: pick(full.metrics),
      protocol,
      baselines: { popularity: pick(popularity.metrics) },
      sampled: Object.fromEntries(sampled.map((s) => [`sampled${s.n}`, { protocol: s.protocol, metrics: s.metrics }])),
      examples_per_s: a.meta.train?.examplesPerSecond ?? null,
      users: full.users,
      skipped_unknown: unknownTargets,
      eval_seconds: seconds,
      backend: backend.name,
    });
  }
}

/** Scores of every item after `history` (model item indices), from the model's sequence tower. */
export function nextItemScores(backend: Backend, a: SeqArtifacts, history: Int32Array): Float32Array {
  const d = a.tower.dim;
  const one = csrFromPairs(1, new Int32Array(history.length), history);
  const q = new Float32Array(d);
  sequenceUserEmbeddings(backend, a.tower, one)(Int32Array.of(0), q);
  const n = a.itemIds.length;
  const scores = new Float32Array(n);
  backend.gemm(false, true, 1, n, d, 1, q, scoringItems(backend, a.tower, a.score), 0, scores);
  return scores;
}

export async function seqRecommendCommand(o: RecommendCommandOptions, dir: string): Promise<void> {
  const k = Number(o.k);
  if (!Number.isInteger(k) || k <= 0) throw new UserError(`--k: must be a positive integer, got '${o.k}'`);
  const a = loadSeqModel(dir);
  let history: Int32Array;
  let what: string;
  const unknown: string[] = [];
  if (o.history !== undefined) {
    const index = new Map(a.itemIds.map((id, i) => [id, i]));
    const ids = String(o.history).split(',').map((s) => s.trim()).filter(Boolean);
    const known: number[] = [];
    for (const id of ids) {
      const j = index.get(id);
      if (j === undefined) unknown.push(id);
      else known.push(j);
    }
    if (!known.length) throw new UserError(`--history: none of the ${ids.length} items is known to the model`);
    history = Int32Array.from(known);
    what = `history of ${known.length} items`;
  } else if (o.user !== undefined) {
    const u = a.userIds.indexOf(String(o.user));
    if (u < 0) throw new UserError(`unknown user '${o.user}': the model knows ${a.userIds.length} users (ids as in the training data)`);
    history = csrRow(a.sequences, u);
    what = `user ${o.user} (${history.length} items in sequence)`;
  } else throw new UserError('recommend: give --user <id> or --history <item,item,...> (oldest first)');
  const backend = await getBackend();
  const scores = nextItemScores(backend, a, history);
  const seen = new Set(history);
  if (!o.includeSeen) for (const j of seen) scores[j] = -Infinity;
  const n = a.itemIds.length;
  const kk = Math.min(k, n);
  const idx = new Int32Array(kk);
  const val = new Float32Array(kk);
  backend.topkRows(scores, 1, n, kk, idx, val);
  const items = named(
    [...idx].map((j, r) => ({ j, r })).filter(({ j, r }) => j >= 0 && Number.isFinite(val[r])).map(({ j, r }) => ({ item: a.itemIds[j], score: val[r] })),
    a.itemIds,
    await itemNamesFrom(o, a.itemIds),
  );
  if (o.json) printJsonLast({ kind: 'sequence', tower: a.options.tower, user: o.user ?? null, history: o.history !== undefined ? history.length : null, k, excludedSeen: o.includeSeen ? 0 : seen.size, unknownHistoryItems: unknown, items });
  else {
    if (unknown.length) process.stderr.write(`warning: ${unknown.length} history item(s) unknown to the model ignored: ${unknown.slice(0, 5).join(', ')}\n`);
    process.stdout.write(`next-item top ${items.length} for ${what}, ${a.options.tower} tower (${o.includeSeen ? 'history included' : `${seen.size} history items excluded`}):\n`);
    items.forEach((it, r) => process.stdout.write(itemLine(r + 1, it)));
  }
}
