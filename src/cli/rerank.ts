/**
 * `towerlab rerank train|eval`: the second stage on the recommender side. `train` fits an LCE reranker
 * (rerank/lce.ts, rerank/pipeline.ts) over the target model's top-K — the first --model; further models add
 * their cosines as ensemble features — on the VALIDATION interactions of the split the target recorded (the
 * retriever never trained on them; lists exclude each user's training items), and saves it with
 * rerank/saved-reranker.ts. `eval` rebuilds the same features for the test interactions (lists exclude
 * training and validation items) and prints NDCG@10 / Recall@10 of the retrieved order vs the reranked one.
 */
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { csrFromPairs } from '../data/csr.ts';
import type { DataSpec } from '../data/load.ts';
import type { SplitSpec } from '../data/split.ts';
import { loadSplit } from '../data/split-files.ts';
import { ModelRetriever } from '../mine/model-retriever.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import { featureDim } from '../rerank/features.ts';
import { LceReranker } from '../rerank/lce.ts';
import { evaluateStages, stageContext, trainReranker } from '../rerank/pipeline.ts';
import { loadReranker, saveReranker } from '../rerank/saved-reranker.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { openModel } from '../model/open.ts';
import { addDataOptions, addSplitOptions, dataSpecFrom, parseList, splitSpecFrom, type DataOptions, type SplitOptions } from './options.ts';
import { printJsonLast } from './output.ts';

function num(flag: string, v: string | number, integer = false, min = -Infinity): number {
  const x = Number(v);
  if (String(v).trim() === '' || !Number.isFinite(x) || (integer && !Number.isInteger(x)) || x < min) throw new UserError(`${flag}: '${v}' is not a${integer ? 'n integer' : ' number'}${min > -Infinity ? ` ≥ ${min}` : ''}`);
  return x;
}

function openMembers(dirs: string[]): ModelArtifacts[] {
  const models = dirs.map((d) => openModel(d));
  const a = models[0];
  models.forEach((m, i) => {
    if (m.itemIds.length !== a.itemIds.length || m.itemIds.some((x, j) => x !== a.itemIds[j]) || m.userIds.length !== a.userIds.length || m.userIds.some((x, j) => x !== a.userIds[j])) {
      throw new UserError(`--model ${dirs[i]}: its users/items differ from ${dirs[0]}'s; reranker members must be trained on the same data`);
    }
  });
  return models;
}

const checksumOf = (m: ModelArtifacts): string | null => m.meta.checksums?.['tensors.bin'] ?? null;

/** Validation and test targets in the target model's index space, plus seen sets for exclusion. */
async function stageData(a: ModelArtifacts, spec: DataSpec, split: SplitSpec) {
  // loadSplit also reads a split given as files (a model trained with --train-file records one).
  const { data, split: parts } = await loadSplit(spec, split);
  const userIndex = new Map(a.userIds.map((id, i) => [id, i]));
  const itemIndex = new Map(a.itemIds.map((id, i) => [id, i]));
  const pairs = (rows: Int32Array) => {
    const us: number[] = [];
    const is: number[] = [];
    for (const r of rows) {
      const u = userIndex.get(data.userVocab.ids[data.users[r]]);
      const i = itemIndex.get(data.itemVocab.ids[data.items[r]]);
      if (u !== undefined && i !== undefined) {
        us.push(u);
        is.push(i);
      }
    }
    return { users: Int32Array.from(us), items: Int32Array.from(is) };
  };
  const numUsers = a.userIds.length;
  const val = pairs(parts.val);
  const test = pairs(parts.test);
  // From the split, not the model's saved `seen` (which may already include the validation items).
  const train = pairs(parts.train);
  const seen = csrFromPairs(numUsers, train.users, train.items, true);
  const seenWithVal = csrFromPairs(numUsers, Int32Array.from([...train.users, ...val.users]), Int32Array.from([...train.items, ...val.items]), true);
  return { val, valCsr: csrFromPairs(numUsers, val.users, val.items, true), testCsr: csrFromPairs(numUsers, test.users, test.items, true), seen, seenWithVal };
}

export interface RerankTrainCommandOptions extends DataOptions, SplitOptions {
  model: string[];
  out: string;
  k: string;
  group: string;
  epochs: string;
  batch: string;
  hidden: string;
  lr: string;
  temperature: string;
  seed: string;
  backend: BackendChoice;
  json?: boolean;
}

export interface RerankEvalCommandOptions {
  reranker: string;
  backend: BackendChoice;
  json?: boolean;
}

function resolveSpecs(a: ModelArtifacts, o: DataOptions & SplitOptions): { spec: DataSpec; split: SplitSpec } {
  const saved = (a.meta.data ?? {}) as DataSpec;
  const given = o.data ? dataSpecFrom(o) : ({} as Partial<DataSpec>);
  const spec = { ...saved, ...Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) } as DataSpec;
  if (!spec.path) throw new UserError('--data: the model records no data set; give --data');
  const split: SplitSpec = o.split ? splitSpecFrom(o) : (a.meta.split as SplitSpec);
  if (!split) throw new UserError('--split: the model records no split; give --split');
  return { spec, split };
}

export async function rerankTrainCommand(o: RerankTrainCommandOptions): Promise<void> {
  const dirs: string[] = o.model;
  const models = openMembers(dirs);
  const a = models[0];
  const { spec, split } = resolveSpecs(a, o);
  const K = num('--k', o.k, true, 2);
  const G = num('--group', o.group, true, 2);
  const epochs = num('--epochs', o.epochs, true, 1);
  const batch = num('--batch', o.batch, true, 1);
  const lr = num('--lr', o.lr, false, 0);
  const temperature = num('--temperature', o.temperature, false, 1e-6);
  const seed = num('--seed', o.seed, true);
  const hidden = parseList('--hidden', o.hidden);
  const t0 = performance.now();
  const backend = await getBackend(o.backend);
  const st = await stageData(a, spec, split);
  if (!st.val.users.length) throw new UserError(`the split (${JSON.stringify(split)}) has no validation interactions known to the model; the reranker trains on them (give --split with --val > 0)`);
  // Training lists exclude only training items: the validation positives must be findable.
  const members = models.map((m, i) => new ModelRetriever(backend, m.model, { name: dirs[i], exclude: st.seen }));
  const users = Int32Array.from(new Set(st.val.users)).sort();
  const ctx = stageContext(members, users, K, a.itemCounts);
  const lce = { inDim: featureDim(a.model.dim, members.length), hidden, temperature, lr, seed };
  const model = new LceReranker(backend, lce);
  const losses = trainReranker(model, ctx, st.val.users, st.val.items, st.valCsr, { epochs, batch, G, rng: new Rng(seed) });
  if (losses.some((l) => Number.isNaN(l))) throw new UserError(`no validation interaction has its item in the target's top-${K} with ${G - 1} other candidates: nothing to train on (raise --k)`);
  const seconds = (performance.now() - t0) / 1000;
  const training = { pairs: st.val.users.length, users: users.length, epochs, batch, group: G, losses, seconds };
  saveReranker(o.out, model, {
    lce, K, dim: a.model.dim,
    members: models.map((m, i) => ({ dir: resolve(dirs[i]), checksum: checksumOf(m) })),
    data: spec as unknown as Record<string, unknown>, split: split as unknown as Record<string, unknown>, training,
  });
  const summary = { out: o.out, models: dirs, K, features: lce.inDim, ...training };
  if (o.json) printJsonLast(summary);
  else process.stdout.write(`LCE reranker over ${dirs.length} model(s), top-${K}, trained on ${users.length} validation users (${epochs} epochs, loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}) saved to ${o.out} in ${seconds.toFixed(1)} s\n`);
}

export async function rerankEvalCommand(o: RerankEvalCommandOptions): Promise<void> {
  const backend = await getBackend(o.backend);
  const { model, meta } = loadReranker(o.reranker, backend);
  const models = openMembers(meta.members.map((m) => m.dir));
  models.forEach((m, i) => {
    const want = meta.members[i].checksum;
    if (want && checksumOf(m) !== want) throw new UserError(`${meta.members[i].dir}: the model changed since the reranker was trained (weights checksum differs); retrain with towerlab rerank train`);
  });
  const a = models[0];
  if (a.model.dim !== meta.dim) throw new UserError(`${meta.members[0].dir}: dim ${a.model.dim}, the reranker expects ${meta.dim}`);
  const spec = meta.data as unknown as DataSpec;
  const split = meta.split as unknown as SplitSpec;
  const t0 = performance.now();
  const st = await stageData(a, spec, split);
  const members = models.map((m, i) => new ModelRetriever(backend, m.model, { name: meta.members[i].dir, exclude: st.seenWithVal }));
  const users = Int32Array.from({ length: a.userIds.length }, (_, u) => u).filter((u) => st.testCsr.offsets[u + 1] > st.testCsr.offsets[u]);
  const ctx = stageContext(members, users, meta.K, a.itemCounts);
  const m = evaluateStages(model, ctx, st.testCsr, [10]);
  const seconds = (performance.now() - t0) / 1000;
  const out = { reranker: o.reranker, users: m.users, K: meta.K, retrieve: m.retrieve, rerank: m.rerank, seconds };
  if (o.json) printJsonLast(out);
  else {
    const f = (x: number) => x.toFixed(4);
    process.stdout.write(`${m.users} test users, top-${meta.K} of ${meta.members[0].dir}\n`);
    process.stdout.write(`stage     ndcg@10  recall@10\n`);
    process.stdout.write(`retrieve  ${f(m.retrieve['ndcg@10'])}   ${f(m.retrieve['recall@10'])}\n`);
    process.stdout.write(`rerank    ${f(m.rerank['ndcg@10'])}   ${f(m.rerank['recall@10'])}\n`);
  }
}

export function registerRerankCommand(program: Command): void {
  const cmd = program.command('rerank').description('train / evaluate an LCE reranker over the top-K of a saved model (retrieve → rerank)');
  const train = cmd.command('train').description('train a reranker on the validation interactions of the first model\'s split; further models add ensemble features');
  addDataOptions(train, false);
  addSplitOptions(train, false);
  train
    .requiredOption('--model <dir...>', 'model directories: the first is the target retriever, others add their cosines as features')
    .requiredOption('--out <dir>', 'output directory of the reranker (written atomically)')
    .option('--k <n>', 'candidates per user from the target', '100')
    .option('--group <n>', 'LCE group size: 1 positive + n − 1 negatives from the top-K', '8')
    .option('--epochs <n>', 'epochs over the validation pairs (negatives redrawn each epoch)', '6')
    .option('--batch <n>', 'groups per update', '64')
    .option('--hidden <sizes>', 'hidden layer sizes of the MLP', '64')
    .option('--lr <x>', 'Adam learning rate', '0.001')
    .option('--temperature <x>', 'softmax temperature of the group loss', '1')
    .option('--seed <n>', 'seed of initialisation and group draws', '1')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .option('--json', 'print a summary as one JSON object on the last line of stdout')
    .action((opts) => rerankTrainCommand(opts));
  cmd
    .command('eval')
    .description('NDCG@10 / Recall@10 of the target\'s top-K order vs the reranked order on the test interactions')
    .requiredOption('--reranker <dir>', 'a directory written by towerlab rerank train')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .option('--json', 'print the metrics as one JSON object on the last line of stdout')
    .action((opts) => rerankEvalCommand(opts));
}
