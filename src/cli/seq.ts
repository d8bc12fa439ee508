/**
 * `towerlab seq`: train a next-item model (SASRec or mean pooling) on ordered histories with a chosen
 * objective — SASRec's BCE, BPR with uniform/neighbourhood (GNNO) negatives, or a recipe's sampled softmax —
 * and report leave-last-one-out full-ranking HR@K / NDCG@K (and, with --sampled, GNNO's sampled protocol);
 * --out saves the model for eval / recommend / export / serve.
 */
import { Command, Option } from 'commander';
import { formatMetricsTable } from '../eval/format.ts';
import { loadRecipe, parseRecipe, type Recipe } from '../recipe/schema.ts';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { defaultSeqModel, runSeqExperiment, scoreOf, type SeqModelOptions } from '../seq/experiment.ts';
import { evaluateSampled } from '../seq/sampled-eval.ts';
import { fullSequences, saveSeqModel } from '../seq/saved-model.ts';
import type { ObjectiveSpec, ScoreKind } from '../seq/objectives.ts';
import { defaultProgressMode } from '../train/progress.ts';
import { noLearningJson, trainingWarningLine } from '../train/no-learning.ts';
import { UserError } from '../util/errors.ts';
import { addDataOptions, dataSpecFrom, parseList, parseNum, requireInt, type DataOptions } from './options.ts';
import { printJsonLast } from './output.ts';

export function registerSeqCommand(program: Command): void {
  const d = defaultSeqModel;
  const cmd = program
    .command('seq')
    .description('train a sequential next-item model (SASRec / mean pooling) and evaluate it with leave-last-one-out full ranking');
  addDataOptions(cmd);
  cmd
    .addOption(new Option('--tower <kind>', 'sequence tower').choices(['sasrec', 'meanpool']).default(d.tower))
    .option('--dim <n>', 'embedding size', parseNum('--dim'), d.dim)
    .option('--max-len <n>', 'history length seen by the model (the most recent items)', parseNum('--max-len'), d.maxLen)
    .option('--blocks <n>', 'self-attention blocks', parseNum('--blocks'), d.blocks)
    .option('--heads <n>', 'attention heads', parseNum('--heads'), d.heads)
    .option('--dropout <x>', 'dropout rate (embeddings, attention, feed-forward)', parseNum('--dropout'), d.dropout)
    .option('--lr <x>', 'Adam learning rate (lazy Adam on the item table)', parseNum('--lr'), d.lr)
    .addOption(new Option('--loss <kind>', "bce: SASRec's one uniform negative per position; bpr: per-position negatives of the recipe's uniform/neighbourhood sources (GNNO); softmax: the recipe's sampled softmax").choices(['bce', 'bpr', 'softmax']).default('softmax'))
    .option('--recipe <file>', 'negatives recipe (JSON) for bpr/softmax; default softmax: exact cross-entropy over every item (recipes/seq-full-softmax.json)')
    .addOption(new Option('--score <kind>', 'softmax score: dot product, or cosine / temperature').choices(['dot', 'cosine']).default('dot'))
    .option('--epochs <n>', 'most training epochs (validation early-stops before: --patience)', parseNum('--epochs'), 100)
    .option('--warmup-epochs <x>', 'linear learning-rate warm-up over this many epochs (0 = none)', parseNum('--warmup-epochs'), 0)
    .option('--batch-size <n>', 'sequences per batch', parseNum('--batch-size'), 128)
    .option('--eval-every <n>', 'validate every n epochs (0 = never)', parseNum('--eval-every'), 1)
    .option('--patience <n>', 'stop after n validations without improvement (0 = never)', parseNum('--patience'), 5)
    .option('--val-metric <name>', 'validation metric deciding the best epoch', 'ndcg@10')
    .option('--val-users <n>', 'validate on at most n users', parseNum('--val-users'), 5000)
    .option('--ks <list>', 'cut-offs of the test metrics', '5,10,20')
    .option('--exclude-history', "remove each user's history items from the ranking (default: exclude nothing)")
    .option('--sampled <list>', "also report GNNO's sampled protocol: the target ranked against N uniform non-interacted items, for each N (e.g. 1000,99)")
    .option('--out <dir>', "save the trained model (best validation epoch) here, for 'towerlab eval / recommend / export / serve'")
    .option('--resume', 'continue an interrupted run from the checkpoint in --out (written there after every epoch)')
    .option('--seed <n>', 'seed of initialisation, batch order and sampling', parseNum('--seed'), d.seed)
    .option('--no-progress', 'no progress output')
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'native', 'js']).default('auto'))
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((o) => seqCommand(o));
}



export interface SeqCommandOptions extends DataOptions {
  tower: SeqModelOptions['tower'];
  dim: number;
  maxLen: number;
  blocks: number;
  heads: number;
  dropout: number;
  lr: number;
  loss: 'bce' | 'bpr' | 'softmax';
  recipe?: string;
  score: ScoreKind;
  epochs: number;
  warmupEpochs: number;
  batchSize: number;
  evalEvery: number;
  patience: number;
  valMetric: string;
  valUsers: number;
  ks: string;
  excludeHistory?: boolean;
  sampled?: string;
  out?: string;
  resume?: boolean;
  seed: number;
  progress: boolean;
  backend: BackendChoice;
  json?: boolean;
}

export function seqModelFrom(o: SeqCommandOptions): SeqModelOptions {
  if (!(o.dropout >= 0 && o.dropout < 1)) throw new UserError(`--dropout: must be in [0, 1), got ${o.dropout}`);
  if (!(o.lr > 0)) throw new UserError(`--lr: must be > 0, got ${o.lr}`);
  return {
    tower: o.tower,
    dim: requireInt('--dim', o.dim, 1),
    maxLen: requireInt('--max-len', o.maxLen, 1),
    blocks: requireInt('--blocks', o.blocks, 1),
    heads: requireInt('--heads', o.heads, 1),
    dropout: o.dropout,
    lr: o.lr,
    beta2: 0.98,
    seed: o.seed,
  };
}

function warmupFrom(x: unknown): number {
  const v = Number(x ?? 0);
  if (!(v >= 0 && Number.isFinite(v))) throw new UserError(`--warmup-epochs: must be a number >= 0, got ${String(x)}`);
  return v;
}

export function objectiveFrom(o: Pick<SeqCommandOptions, 'recipe' | 'loss' | 'score'>): ObjectiveSpec {
  const recipe: Recipe | null = o.recipe ? loadRecipe(o.recipe) : null;
  if (o.loss === 'bce') {
    if (recipe) throw new UserError('--recipe: the bce loss draws its own negative (one uniform item per position); use --loss bpr or softmax with a recipe');
    return { kind: 'bce' };
  }
  if (o.loss === 'bpr') {
    if (!recipe) throw new UserError("--loss bpr needs --recipe with per-position 'uniform' and/or 'neighbourhood' sources (see recipes/gnno-bpr.json)");
    return { kind: 'bpr', recipe };
  }
  // Default: the exact softmax over the full catalogue ("SASRec+"), chosen on validation NDCG@10 (docs/sequential.md).
  return { kind: 'softmax', recipe: recipe ?? parseRecipe({ temperature: 1, sources: [{ type: 'full-catalogue' }] }), score: o.score as ScoreKind };
}

async function seqCommand(o: SeqCommandOptions): Promise<void> {
  if (!/^(hr|ndcg|recall|mrr)@\d+$/.test(o.valMetric)) throw new UserError(`--val-metric: expected hr@K or ndcg@K, got '${o.valMetric}'`);
  const ks = parseList('--ks', o.ks);
  if (!ks.length) ks.push(10);
  const model = seqModelFrom(o);
  const sampledList = parseList('--sampled', o.sampled);
  const objective = objectiveFrom(o);
  const r = await runSeqExperiment({
    data: dataSpecFrom(o),
    model,
    objective,
    train: {
      epochs: requireInt('--epochs', o.epochs, 1),
      batchSize: requireInt('--batch-size', o.batchSize, 1),
      seed: o.seed,
      evalEvery: requireInt('--eval-every', o.evalEvery, 0),
      patience: requireInt('--patience', o.patience, 0),
      valMetric: o.valMetric,
      valUsers: requireInt('--val-users', o.valUsers, 1),
      progress: o.progress === false ? 'none' : defaultProgressMode(),
      warmupEpochs: warmupFrom(o.warmupEpochs),
      checkpointDir: o.out ?? null,
      resume: !!o.resume,
    },
    ks,
    excludeHistory: !!o.excludeHistory,
    backend: o.backend,
  });
  const t = r.train;
  const score = scoreOf(objective);
  const backend = await getBackend(o.backend);
  const sampled = sampledList.map((n) => ({ negatives: n, ...evaluateSampled(backend, r.tower, r.seqData, 'test', { negatives: n, ks, score, seed: 0 }) }));
  if (o.out) {
    saveSeqModel(o.out, {
      tower: r.tower,
      options: model,
      score,
      userIds: r.raw.userVocab.ids,
      itemIds: r.raw.itemVocab.ids,
      sequences: fullSequences(r.seqData),
      itemCounts: Float32Array.from(r.seqData.itemCounts),
      meta: {
        data: dataSpecFrom(o),
        split: { kind: 'loo' },
        objective: { loss: o.loss, recipe: objective.kind === 'bce' ? null : objective.recipe },
        metrics: r.metrics,
        protocol: r.protocol,
        sampled: Object.fromEntries(sampled.map((x) => [`sampled${x.negatives}`, x.metrics])),
        train: { epochs: t.epochs, bestEpoch: t.bestEpoch, seconds: t.trainSeconds, examplesPerSecond: t.sequencesPerSecond },
      },
    });
  }
  const lines = [
    `data: ${r.data.source}: ${r.data.users} users, ${r.data.items} items, ${r.data.interactions} interactions; ${r.data.trainSequences} training sequences, ${r.data.testUsers} test users`,
    `model: ${model.tower}${model.tower === 'sasrec' ? ` (${model.blocks} blocks, ${model.heads} head(s), dim ${model.dim}, max length ${model.maxLen}, dropout ${model.dropout})` : ` (dim ${model.dim})`}, loss ${o.loss}`,
    `trained ${t.epochs} epochs, ${t.steps} steps in ${t.trainSeconds.toFixed(1)} s: ${Math.round(t.sequencesPerSecond).toLocaleString('en-US')} sequences/s, ${Math.round(t.positionsPerSecond).toLocaleString('en-US')} positions/s (backend ${r.backend})` +
      (t.bestEpoch !== null ? `; best validation at epoch ${t.bestEpoch}${t.stoppedEarly ? ' (stopped early)' : ''}` : ''),
  ];
  if (r.graph) {
    const g = r.graph;
    lines.push(
      `transition graph: ${g.items} items, ${g.edges} directed edges, built in ${g.graphSeconds.toFixed(2)} s; neighbourhood overlap: ${g.candidates} candidates in ${g.overlapSeconds.toFixed(2)} s; memory ${((g.graphBytes + g.overlapBytes + g.samplerBytes) / 2 ** 20).toFixed(1)} MiB`,
    );
  }
  lines.push(
    `test (${r.protocol}; evaluation ${r.evalSeconds.toFixed(2)} s):`,
    formatMetricsTable(
      [
        { name: 'model', result: r.metrics },
        { name: 'popularity', result: r.popularity },
      ],
      { metrics: ['hr', 'ndcg'] },
    ),
  );
  for (const x of sampled) lines.push(`test, sampled protocol (${x.protocol}):`, formatMetricsTable([{ name: 'model', result: x.metrics }], { metrics: ['hr', 'ndcg'] }));
  if (o.out) lines.push(`model saved to ${o.out} (towerlab eval/recommend/export --model ${o.out})`);
  process.stdout.write(lines.join('\n') + '\n');
  const warning = trainingWarningLine(t.collapse, t.noLearning, o.valMetric, o.patience > 0 ? o.patience : 3);
  if (warning) process.stderr.write(warning + '\n');
  if (o.json) {
    printJsonLast({
      metrics: Object.fromEntries(Object.entries(r.metrics).filter(([k]) => k.startsWith('hr@') || k.startsWith('ndcg@'))),
      protocol: r.protocol,
      popularity: Object.fromEntries(Object.entries(r.popularity).filter(([k]) => k.startsWith('hr@') || k.startsWith('ndcg@'))),
      collapsed: t.collapse.collapsed,
      collapse_peak_epoch: t.collapse.collapsed ? t.collapse.peakEpoch : null,
      ...noLearningJson(t.noLearning),
      val_popularity: t.valPopularity,
      sampled: Object.fromEntries(sampled.map((x) => [`sampled${x.negatives}`, { protocol: x.protocol, metrics: x.metrics }])),
      model_dir: o.out ?? null,
      examples_per_s: t.sequencesPerSecond,
      positions_per_s: t.positionsPerSecond,
      train: { epochs: t.epochs, steps: t.steps, seconds: t.trainSeconds, best_epoch: t.bestEpoch, stopped_early: t.stoppedEarly, final_loss: t.finalLoss, history: t.history },
      graph: r.graph,
      eval_seconds: r.evalSeconds,
      data: r.data,
      backend: r.backend,
    });
  }
}
