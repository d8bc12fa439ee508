/** `towerlab train`: run one experiment, print metrics beside the popularity baseline, save the model. */
import { formatMetricsTable } from '../eval/format.ts';
import { defaultRecipe, loadRecipe } from '../recipe/schema.ts';
import { runExperiment } from '../train/experiment.ts';
import { dataSpecFrom, modelOptionsFrom, parseList, splitSpecFrom, trainConfigFrom, type DataOptions, type ModelFlagOptions, type SplitOptions, type TrainFlagOptions } from './options.ts';
import { printJsonLast } from './output.ts';
import { withOptionsFile } from './run-options.ts';
import type { Command } from 'commander';
import { noLearningJson, trainingWarningLine } from '../train/no-learning.ts';

export interface TrainCommandOptions extends DataOptions, SplitOptions, ModelFlagOptions, TrainFlagOptions {
  recipe?: string;
  options?: string;
  out?: string;
  json?: boolean;
  /** FILE[:COLUMN] naming the items, saved with the model. */
  itemNames?: string;
}

export async function trainCommand(given: TrainCommandOptions, cmd?: Command): Promise<void> {
  const o: TrainCommandOptions = withOptionsFile(given, cmd, given.options);
  const recipe = o.recipe ? loadRecipe(o.recipe) : defaultRecipe;
  const ks = parseList('--ks', o.ks);
  if (!ks.length) ks.push(20);
  const train = trainConfigFrom(o);
  const r = await runExperiment({
    data: dataSpecFrom(o),
    split: splitSpecFrom(o),
    recipe,
    model: modelOptionsFrom(o),
    train,
    ks,
    out: o.out ?? null,
    backend: o.backend,
    itemNames: o.itemNames,
  });
  const d = r.data;
  if (d.testUsersWithoutTrain) {
    process.stderr.write(`towerlab: note: ${d.testUsersWithoutTrain} of ${d.testUsers} test users have no training interactions; they stay in the test set and count in every metric\n`);
  }
  const lines = [
    `data: ${d.source}: ${d.users} users, ${d.items} items, ${d.interactions} interactions; split ${d.split}: train ${d.train}, val ${d.val}, test ${d.test} (${d.testUsers} test users)`,
    `trained ${r.train.epochs} epochs, ${r.train.steps} steps in ${r.train.trainSeconds.toFixed(1)} s: ${Math.round(r.examples_per_s).toLocaleString('en-US')} examples/s (backend ${r.backend})` +
      (r.train.best !== null ? `; best validation at epoch ${r.train.bestEpoch}${r.train.stoppedEarly ? ' (stopped early)' : ''}` : ''),
    ...batchSamplerLine(r.train.batchSampler),
    `test (full-corpus ranking over ${d.items} items, training and validation items excluded; evaluation ${r.evalSeconds.toFixed(2)} s):`,
    formatMetricsTable([
      { name: 'model', result: r.metrics },
      { name: 'popularity', result: r.baselines.popularity },
    ]),
  ];
  if (o.out) lines.push(`model saved to ${o.out}/model`);
  process.stdout.write(lines.join('\n') + '\n');
  const warning = trainingWarningLine(r.train.collapse, r.train.noLearning, train.valMetric, train.patience > 0 ? train.patience : 3);
  if (warning) process.stderr.write(warning + '\n');
  if (o.json) {
    printJsonLast({
      metrics: r.metrics,
      collapsed: r.train.collapse.collapsed,
      collapse_peak_epoch: r.train.collapse.collapsed ? r.train.collapse.peakEpoch : null,
      ...noLearningJson(r.train.noLearning),
      baselines: r.baselines,
      val_popularity: r.train.valPopularity,
      examples_per_s: r.examples_per_s,
      eval_seconds: r.evalSeconds,
      train: { epochs: r.train.epochs, steps: r.train.steps, seconds: r.train.trainSeconds, best_epoch: r.train.bestEpoch, stopped_early: r.train.stoppedEarly, final_loss: r.train.finalLoss, validation: r.train.history, batch_sampler: r.train.batchSampler },
      data: r.data,
      backend: r.backend,
      model: o.out ? `${o.out}/model` : null,
    });
  }
}

/** One line on batch composition when it is not plain shuffling (graph time as a share of training time). */
function batchSamplerLine(bs: Record<string, number | string> | undefined): string[] {
  if (!bs || bs.type === 'shuffle') return [];
  const n = (k: string) => Number(bs[k] ?? 0);
  if (bs.type === 'rwr') {
    return [
      `batches: rwr (BatchSampler); proximity graph built ${n('graphBuilds')} times in ${n('graphSeconds').toFixed(1)} s (${(100 * n('graphFraction')).toFixed(1)}% of training time); ${(100 * n('walkFraction')).toFixed(0)}% of batch rows reached by walks`,
    ];
  }
  return [`batches: ${bs.type}; ${n('skippedRows')} instance-epochs skipped, ${n('refillRows')} refill rows`];
}
