/**
 * Training the two-tower model: the one loop (loop.ts) over batches from the recipe's batch composer, with
 * validation on held-out interactions (+ negative-sampling diagnostics), atomic checkpoints after every epoch
 * (weights, the sources' state, the streaming frequency estimate) that `resume` continues from, and a
 * JSON-lines log of steps and validations.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import type { Csr } from '../data/csr.ts';
import type { CategoricalFeature } from '../data/types.ts';
import { embeddingScorer } from '../eval/scorer.ts';
import { evaluateRanking } from '../eval/ranking.ts';
import { popularityBaseline } from '../eval/baselines.ts';
import { loadModel, saveModel, type ModelArtifacts } from '../model/saved-model.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import { liveRetrievers } from '../mine/model-retriever.ts';
import type { Recipe } from '../recipe/schema.ts';
import { buildSources } from '../sampling/build.ts';
import type { FrequencyState } from '../sampling/frequency.ts';
import { buildBatchComposer } from '../sampling/batch-order/build.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { CollapseCheck } from './collapse.ts';
import type { NoLearningCheck } from './no-learning.ts';
import { computeDiagnostics, type Diagnostics } from './diagnostics.ts';
import { type ProgressMode } from './progress.ts';
import { runLoop, type LoopState, type LoopTask } from './loop.ts';
import { twoTowerBatch } from '../model/two-tower-pair.ts';
import { lrFactor, type LrSchedule } from './lr-schedule.ts';
import { TrainStep } from './step.ts';

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  seed: number;
  /** Validate every this many epochs (0 = never). */
  evalEvery: number;
  /** Stop after this many validations without improvement (0 = never stop early). */
  patience: number;
  /** Metric that decides "best", e.g. 'recall@20'. */
  valMetric: string;
  /** Validate on at most this many users (sampled once, seeded) to keep validation cheap. */
  valMaxUsers: number;
  /** Where checkpoints go (null = none). */
  checkpointDir: string | null;
  resume: boolean;
  /** JSON-lines log file (null = none). */
  logPath: string | null;
  progress: ProgressMode;
  /** Log the loss every this many steps. */
  logEvery: number;
  /** Training batches inspected for diagnostics at each validation (0 = no diagnostics). */
  diagnosticBatches?: number;
  /** Learning-rate schedule (default constant, no warm-up). */
  lrSchedule?: LrSchedule;
}

export interface TrainInputs {
  backend: Backend;
  model: TwoTowerModel;
  recipe: Recipe;
  trainUsers: Int32Array;
  trainItems: Int32Array;
  numItems: number;
  /** Validation targets per user (null = no validation). */
  val: Csr | null;
  /** Training items per user, excluded from validation rankings. */
  seen: Csr;
  itemCounts: Float64Array;
  /** Item categorical features (for stratified negatives). */
  itemFeatures?: CategoricalFeature[];
  /** Fills everything but the model of a checkpoint (vocabularies, features, ...). */
  artifacts: Omit<ModelArtifacts, 'model' | 'meta'>;
}

export interface ValidationRecord {
  epoch: number;
  step: number;
  metrics: Record<string, number>;
  /** Training loss (moving average) when this validation ran; for collapse detection. */
  loss?: number;
  /** Negative-sampling diagnostics at this point (see diagnostics.ts). */
  diagnostics?: Diagnostics;
}

export interface TrainSummary {
  epochs: number;
  steps: number;
  examples: number;
  trainSeconds: number;
  examplesPerSecond: number;
  finalLoss: number;
  bestEpoch: number;
  best: number | null;
  history: ValidationRecord[];
  stoppedEarly: boolean;
  /** Collapse check over the validation history (see collapse.ts). */
  collapse: CollapseCheck;
  /** Never-learned check (no-learning.ts), against popularity on the same validation users. */
  noLearning: NoLearningCheck;
  /** Popularity's value of the validation metric on the validation users (null without validation). */
  valPopularity: number | null;
  /** Batch composition (recipe.batchSampler): its counters, and proximity-graph time as a fraction of training time. */
  batchSampler?: { type: string; graphSeconds: number; graphFraction: number } & Record<string, number | string>;
}

export async function train(inp: TrainInputs, cfg: TrainConfig): Promise<TrainSummary> {
  const { backend, model } = inp;
  const n = inp.trainUsers.length;
  if (n === 0) throw new UserError('no training interactions left after filtering and splitting');
  const B = Math.min(cfg.batchSize, n);
  const stepsPerEpoch = Math.floor(n / B) || 1;
  const sources = buildSources(inp.recipe, { numItems: inp.numItems, trainItems: inp.trainItems, trainUsers: inp.trainUsers, itemFeatures: inp.itemFeatures, dim: model.dim, liveRetriever: liveRetrievers(backend, model), userIds: inp.artifacts.userIds, itemIds: inp.artifacts.itemIds, batchSize: B });
  const stepper = new TrainStep(backend, model, inp.recipe, sources);
  // Diagnostics describe sampled columns; the full-catalogue softmax has none to describe.
  const diagBatches = stepper.fullCatalogue ? 0 : (cfg.diagnosticBatches ?? 2);
  if (diagBatches > 0) stepper.columnCounts = new Float64Array(inp.numItems);
  const valKs = [Number(cfg.valMetric.split('@')[1] ?? 20) || 20];
  const valUsers = inp.val ? pickValUsers(inp.val, cfg.valMaxUsers, cfg.seed) : null;
  // Popularity under the validation's own protocol (same users, exclusions, K): the floor a run must clear to
  // count as having learnt anything (no-learning.ts).
  const valPopularity =
    inp.val && valUsers && cfg.evalEvery > 0 && valUsers.length
      ? (popularityBaseline({ backend, test: inp.val, exclude: inp.seen, ks: valKs, itemPopularity: inp.itemCounts, users: valUsers }).metrics[cfg.valMetric] ?? null)
      : null;

  let resumed: LoopState | undefined;
  if (cfg.resume) {
    if (!cfg.checkpointDir || !existsSync(join(cfg.checkpointDir, 'manifest.json'))) {
      throw new UserError(`--resume: no checkpoint found in ${cfg.checkpointDir ?? '(no output directory)'}`);
    }
    const ck = loadModel(cfg.checkpointDir);
    for (const [[name, dst], [, src]] of zip(model.tensors(true), ck.model.tensors(true))) {
      if (dst.length !== src.length) throw new UserError(`--resume: checkpoint tensor '${name}' does not match the configured model`);
      dst.set(src);
    }
    model.setSteps(ck.model.steps());
    resumed = ck.meta.trainer as LoopState;
    const saved = new Map(ck.trainingState ?? []);
    try {
      stepper.restoreState((name) => saved.get(name));
    } catch (e) {
      throw new UserError(`--resume: ${(e as Error).message}`);
    }
    // The streaming logQ estimate is learned state too: without it a resumed run would re-estimate from the prior.
    const fs = ck.meta.frequency as FrequencyState | undefined;
    if (fs && sources.freq.restore) {
      try {
        sources.freq.restore(fs);
      } catch (e) {
        throw new UserError(`--resume: ${(e as Error).message}`);
      }
    }
  }
  const log = (rec: Record<string, unknown>) => {
    if (cfg.logPath) appendFileSync(cfg.logPath, JSON.stringify({ time: new Date().toISOString(), ...rec }) + '\n');
  };
  if (cfg.logPath) {
    mkdirSync(dirname(cfg.logPath), { recursive: true });
    if (!cfg.resume) writeFileSync(cfg.logPath, '');
  }
  log({ event: 'start', examples: n, batchSize: B, stepsPerEpoch, epochs: cfg.epochs, resumedAt: resumed?.epoch ?? 0, backend: backend.name });
  let graphSeconds = (resumed?.batchGraphSeconds as number | undefined) ?? 0;
  const composer = buildBatchComposer(inp.recipe.batchSampler, {
    backend,
    trainUsers: inp.trainUsers,
    trainItems: inp.trainItems,
    numItems: inp.numItems,
    batchSize: B,
    stepsPerEpoch,
    seed: cfg.seed,
    embed: () => ({ users: model.user.embedAll(backend), items: model.embedAllItems(backend), dim: model.dim }),
    onGraph: (g) => {
      graphSeconds += g.seconds;
      log({ event: 'batch-graph', ...g });
    },
  });

  const users = new Int32Array(B);
  const items = new Int32Array(B);
  const schedule = cfg.lrSchedule;
  const scheduled = !!schedule && (schedule.kind !== 'constant' || schedule.warmup > 0);
  const horizonSteps = (schedule?.horizonEpochs ?? cfg.epochs) * stepsPerEpoch;
  const batch = twoTowerBatch(users, items);
  const task: LoopTask<Int32Array> = {
    step: stepper.inner,
    stepsPerEpoch,
    beginEpoch: (epoch, rng) => composer.beginEpoch(epoch, rng),
    batch: (s) => {
      const rows = composer.batch(s);
      for (let r = 0; r < B; r++) {
        const row = rows[r];
        users[r] = inp.trainUsers[row];
        items[r] = inp.trainItems[row];
      }
      return { batch, examples: B };
    },
    validate:
      inp.val && valUsers
        ? (epoch) => {
            const metrics = validate(inp, valUsers, valKs);
            const diagnostics =
              diagBatches > 0
                ? computeDiagnostics({
                    backend,
                    step: stepper,
                    trainUsers: inp.trainUsers,
                    trainItems: inp.trainItems,
                    seen: inp.seen,
                    itemCounts: inp.itemCounts,
                    columnCounts: stepper.columnCounts!,
                    batchSize: Math.min(B, 1024),
                    batches: diagBatches,
                    seed: cfg.seed + epoch,
                  })
                : undefined;
            return { metrics, extra: { diagnostics } };
          }
        : undefined,
    snapshot: () => snapshot(model),
    restore: (snap) => restore(model, snap),
    checkpoint: cfg.checkpointDir
      ? (st) => {
          st.batchGraphSeconds = graphSeconds;
          saveModel(cfg.checkpointDir!, { ...inp.artifacts, model, meta: { trainer: st, recipe: inp.recipe, frequency: sources.freq.snapshot?.() }, trainingState: stepper.stateArrays() }, true);
        }
      : undefined,
    log,
  };
  const out = runLoop(task, {
    epochs: cfg.epochs,
    seed: cfg.seed,
    evalEvery: cfg.evalEvery,
    patience: cfg.patience,
    valMetric: cfg.valMetric,
    progress: cfg.progress,
    logEvery: cfg.logEvery,
    lrFactor: scheduled ? (step) => lrFactor(schedule!, step, horizonSteps) : null,
    resume: resumed,
    baseline: valPopularity,
  });
  const st = out.state;
  const batchGraphSeconds = graphSeconds;
  const batchSampler = { type: composer.type, ...composer.stats(), graphSeconds: batchGraphSeconds, graphFraction: batchGraphSeconds / Math.max(st.trainSeconds, 1e-9) };
  log({ event: 'end', epochs: st.epoch, steps: st.step, best: st.best, bestEpoch: st.bestEpoch, stoppedEarly: out.stoppedEarly, batchSampler });
  return {
    epochs: st.epoch,
    steps: st.step,
    examples: st.examples,
    trainSeconds: st.trainSeconds,
    examplesPerSecond: st.examples / Math.max(st.trainSeconds, 1e-9),
    finalLoss: out.finalLoss,
    bestEpoch: st.bestEpoch,
    best: st.best,
    history: st.history as ValidationRecord[],
    stoppedEarly: out.stoppedEarly,
    collapse: out.collapse,
    noLearning: out.noLearning,
    valPopularity,
    batchSampler,
  };
}

function validate(inp: TrainInputs, users: Int32Array, ks: number[]): Record<string, number> {
  const { backend, model } = inp;
  const itemEmb = model.embedAllItems(backend);
  const scorer = embeddingScorer(backend, (ids: Int32Array, out: Float32Array) => model.user.embed(backend, ids, out), itemEmb, model.dim, inp.numItems);
  const r = evaluateRanking({ backend, scorer, test: inp.val!, exclude: inp.seen, ks, itemPopularity: inp.itemCounts, users });
  return r.metrics;
}

/** Users with validation targets, at most `max` of them, drawn once with a fixed seed. */
function pickValUsers(val: Csr, max: number, seed: number): Int32Array {
  const all: number[] = [];
  for (let u = 0; u < val.rows; u++) if (val.offsets[u + 1] > val.offsets[u]) all.push(u);
  const arr = Int32Array.from(all);
  if (arr.length <= max) return arr;
  new Rng(seed ^ 0x5eed).shuffle(arr);
  return arr.slice(0, max).sort();
}

function snapshot(model: TwoTowerModel): Float32Array[] {
  return model.tensors(false).map(([, a]) => a.slice());
}

function restore(model: TwoTowerModel, snap: Float32Array[]): void {
  model.tensors(false).forEach(([, a], i) => a.set(snap[i]));
}

function zip<A, B>(a: A[], b: B[]): Array<[A, B]> {
  if (a.length !== b.length) throw new UserError('--resume: checkpoint does not match the configured model (different tensors)');
  return a.map((x, i) => [x, b[i]]);
}
