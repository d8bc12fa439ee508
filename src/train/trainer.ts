/**
 * The training loop: epochs of shuffled mini-batches through TrainStep, periodic validation on held-out
 * interactions with early stopping (the best weights are restored at the end), atomic checkpoints after
 * every epoch that `resume` continues from, and a JSON-lines log of steps and validations.
 */
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import type { Csr } from '../data/csr.ts';
import type { CategoricalFeature } from '../data/types.ts';
import { embeddingScorer } from '../eval/scorer.ts';
import { evaluateRanking } from '../eval/ranking.ts';
import { loadModel, saveModel, type ModelArtifacts } from '../model/saved-model.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import type { Recipe } from '../recipe/schema.ts';
import { buildSources } from '../sampling/build.ts';
import type { FrequencyState } from '../sampling/frequency.ts';
import { buildBatchComposer } from '../sampling/batch-order/build.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { detectCollapse, type CollapseCheck } from './collapse.ts';
import { computeDiagnostics, type Diagnostics } from './diagnostics.ts';
import { Progress, type ProgressMode } from './progress.ts';
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
  /** Batch composition (recipe.batchSampler): its counters, and proximity-graph time as a fraction of training time. */
  batchSampler?: { type: string; graphSeconds: number; graphFraction: number } & Record<string, number | string>;
}

interface TrainerState {
  epoch: number;
  step: number;
  best: number | null;
  bestEpoch: number;
  badEvals: number;
  history: ValidationRecord[];
  examples: number;
  trainSeconds: number;
  /** Seconds spent building batch-composition graphs (part of trainSeconds). */
  batchGraphSeconds?: number;
}

export async function train(inp: TrainInputs, cfg: TrainConfig): Promise<TrainSummary> {
  const { backend, model } = inp;
  const n = inp.trainUsers.length;
  if (n === 0) throw new UserError('no training interactions left after filtering and splitting');
  const B = Math.min(cfg.batchSize, n);
  const stepsPerEpoch = Math.floor(n / B) || 1;
  const sources = buildSources(inp.recipe, { numItems: inp.numItems, trainItems: inp.trainItems, trainUsers: inp.trainUsers, itemFeatures: inp.itemFeatures, dim: model.dim, model, backend, userIds: inp.artifacts.userIds, itemIds: inp.artifacts.itemIds, batchSize: B });
  const stepper = new TrainStep(backend, model, inp.recipe, sources);
  // Diagnostics describe sampled columns; the full-catalogue softmax has none to describe.
  const diagBatches = stepper.fullCatalogue ? 0 : (cfg.diagnosticBatches ?? 2);
  if (diagBatches > 0) stepper.columnCounts = new Float64Array(inp.numItems);
  const valKs = [Number(cfg.valMetric.split('@')[1] ?? 20) || 20];
  const valUsers = inp.val ? pickValUsers(inp.val, cfg.valMaxUsers, cfg.seed) : null;

  let st: TrainerState = { epoch: 0, step: 0, best: null, bestEpoch: 0, badEvals: 0, history: [], examples: 0, trainSeconds: 0 };
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
    st = ck.meta.trainer as TrainerState;
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
    stepper.step = st.step;
  }
  let best = st.best !== null ? snapshot(model) : null;
  const log = (rec: Record<string, unknown>) => {
    if (cfg.logPath) appendFileSync(cfg.logPath, JSON.stringify({ time: new Date().toISOString(), ...rec }) + '\n');
  };
  if (cfg.logPath) {
    mkdirSync(dirname(cfg.logPath), { recursive: true });
    if (!cfg.resume) writeFileSync(cfg.logPath, '');
  }
  log({ event: 'start', examples: n, batchSize: B, stepsPerEpoch, epochs: cfg.epochs, resumedAt: st.epoch, backend: backend.name });
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
      st.batchGraphSeconds = (st.batchGraphSeconds ?? 0) + g.seconds;
      log({ event: 'batch-graph', ...g });
    },
  });

  const bar = new Progress(cfg.progress, cfg.epochs * stepsPerEpoch, st.epoch * stepsPerEpoch, cfg.epochs);
  const users = new Int32Array(B);
  const items = new Int32Array(B);
  const schedule = cfg.lrSchedule;
  const scheduled = !!schedule && (schedule.kind !== 'constant' || schedule.warmup > 0);
  const horizonSteps = (schedule?.horizonEpochs ?? cfg.epochs) * stepsPerEpoch;
  let lossEma = NaN;
  let stoppedEarly = false;

  while (st.epoch < cfg.epochs && !stoppedEarly) {
    const epoch = st.epoch + 1;
    // Per-epoch seeds make a resumed run draw exactly what an uninterrupted one would.
    const rng = new Rng(cfg.seed * 1_000_003 + epoch);
    const t0 = performance.now();
    composer.beginEpoch(epoch, rng); // inside the timed span: graph builds count as training time
    stepper.beginEpoch(epoch - 1);
    for (let s = 0; s < stepsPerEpoch; s++) {
      const rows = composer.batch(s);
      for (let r = 0; r < B; r++) {
        const row = rows[r];
        users[r] = inp.trainUsers[row];
        items[r] = inp.trainItems[row];
      }
      if (scheduled) model.setLrScale(lrFactor(schedule!, stepper.step + 1, horizonSteps));
      const { loss } = stepper.run(users, items, rng);
      if (!Number.isFinite(loss)) throw new UserError(`training diverged at step ${stepper.step} (loss ${loss}); lower the learning rates or raise the temperature`);
      lossEma = Number.isNaN(lossEma) ? loss : 0.98 * lossEma + 0.02 * loss;
      st.examples += B;
      const elapsed = st.trainSeconds + (performance.now() - t0) / 1000;
      bar.tick({ epoch, epochs: cfg.epochs, loss: lossEma, examplesPerSecond: st.examples / Math.max(elapsed, 1e-9) });
      if (cfg.logEvery > 0 && stepper.step % cfg.logEvery === 0) log({ event: 'step', epoch, step: stepper.step, loss, lossEma });
    }
    st.trainSeconds += (performance.now() - t0) / 1000;
    st.step = stepper.step;
    st.epoch = epoch;
    log({ event: 'epoch', epoch, step: st.step, loss: lossEma, examplesPerSecond: st.examples / st.trainSeconds });

    if (inp.val && valUsers && cfg.evalEvery > 0 && (epoch % cfg.evalEvery === 0 || epoch === cfg.epochs)) {
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
      st.history.push({ epoch, step: st.step, metrics, loss: lossEma, diagnostics });
      const v = metrics[cfg.valMetric];
      if (v === undefined) throw new UserError(`validation metric '${cfg.valMetric}' is not computed (have: ${Object.keys(metrics).join(', ')})`);
      if (st.best === null || v > st.best) {
        st.best = v;
        st.bestEpoch = epoch;
        st.badEvals = 0;
        best = snapshot(model);
      } else st.badEvals++;
      log({ event: 'validation', epoch, step: st.step, metrics, diagnostics, best: st.best, bestEpoch: st.bestEpoch });
      bar.note(`epoch ${epoch}: val ${cfg.valMetric} ${v.toFixed(4)} (best ${st.best.toFixed(4)} @ ${st.bestEpoch})`);
      if (cfg.patience > 0 && st.badEvals >= cfg.patience) stoppedEarly = true;
    }
    if (cfg.checkpointDir) {
      saveModel(cfg.checkpointDir, { ...inp.artifacts, model, meta: { trainer: st, recipe: inp.recipe, frequency: sources.freq.snapshot?.() }, trainingState: stepper.stateArrays() }, true);
    }
  }
  bar.stop();
  if (scheduled) model.setLrScale(1);
  if (best) restore(model, best);
  const batchGraphSeconds = st.batchGraphSeconds ?? 0;
  const batchSampler = { type: composer.type, ...composer.stats(), graphSeconds: batchGraphSeconds, graphFraction: batchGraphSeconds / Math.max(st.trainSeconds, 1e-9) };
  log({ event: 'end', epochs: st.epoch, steps: st.step, best: st.best, bestEpoch: st.bestEpoch, stoppedEarly, batchSampler });
  return {
    epochs: st.epoch,
    steps: st.step,
    examples: st.examples,
    trainSeconds: st.trainSeconds,
    examplesPerSecond: st.examples / Math.max(st.trainSeconds, 1e-9),
    finalLoss: lossEma,
    bestEpoch: st.bestEpoch,
    best: st.best,
    history: st.history,
    stoppedEarly,
    collapse: detectCollapse(
      st.history.map((h) => ({ epoch: h.epoch, loss: h.loss ?? Number.NaN, val: h.metrics[cfg.valMetric] })),
      cfg.patience > 0 ? cfg.patience : 3,
    ),
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
