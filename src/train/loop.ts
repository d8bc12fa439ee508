/**
 * The one training loop, for every encoder the contrastive step trains (two-tower, sequence towers, text):
 * epochs of batches from the task through ContrastiveStep, each epoch seeded on its own (a resumed run draws
 * exactly what an uninterrupted one would), the sources' beginEpoch, a learning-rate multiplier per step,
 * divergence check, periodic validation with early stopping (the best weights are restored at the end),
 * a checkpoint after every epoch (weights + the sources' state, written by the task) that resume continues
 * from, and collapse and never-learned detection over the validation history (collapse.ts, no-learning.ts). A
 * non-finite loss still stops the run with an error at the step it happens. What differs between encoders — how a batch is
 * made, how validation ranks, what a checkpoint holds — is the task's.
 */
import type { EncoderBatch } from '../model/encoder.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { detectCollapse, type CollapseCheck } from './collapse.ts';
import { detectNoLearning, type NoLearningCheck } from './no-learning.ts';
import type { ContrastiveStep } from './contrastive-step.ts';
import { Progress, type ProgressMode } from './progress.ts';

/** One validation: metrics, the training loss (moving average) then, and whatever the task adds. */
export interface LoopValidation {
  epoch: number;
  step: number;
  metrics: Record<string, number>;
  loss?: number;
  [extra: string]: unknown;
}

/** One epoch: its mean loss, the moving average at its end, seconds. */
export interface LoopEpoch {
  epoch: number;
  loss: number;
  lossEma: number;
  seconds: number;
}

/** Everything the loop needs to continue: saved in checkpoints (meta.trainer). */
export interface LoopState {
  epoch: number;
  step: number;
  best: number | null;
  bestEpoch: number;
  badEvals: number;
  history: LoopValidation[];
  /** Every epoch (absent in checkpoints of older versions). */
  epochs?: LoopEpoch[];
  /** Mean training loss of the run's first steps, before training could move it (never-learned check). */
  initialLoss?: number;
  examples: number;
  trainSeconds: number;
  [extra: string]: unknown;
}

export interface LoopTask<I> {
  step: ContrastiveStep<I>;
  stepsPerEpoch: number;
  /** Orders the data of 1-based `epoch` (inside the timed span: e.g. batch-composition graphs). */
  beginEpoch(epoch: number, rng: Rng): void;
  /** The s-th batch of the current epoch and the examples it counts (rows, sequences, queries). */
  batch(s: number): { batch: EncoderBatch<I>; examples: number };
  /** Validation metrics of the current weights (and extras stored in the record; a note for the progress line). */
  validate?(epoch: number): { metrics: Record<string, number>; extra?: Record<string, unknown>; note?: string };
  /** Copies of the weights (best epoch) and their restoration. */
  snapshot(): Float32Array[];
  restore(snap: Float32Array[]): void;
  /** Writes a checkpoint of the weights, the step's source state and `st` (called after every epoch). */
  checkpoint?(st: LoopState): void;
  log?(rec: Record<string, unknown>): void;
  onEpochEnd?(e: LoopEpoch, v: LoopValidation | null): void;
}

export interface LoopConfig {
  epochs: number;
  seed: number;
  /** Validate every n epochs and at the last one (0 = never). */
  evalEvery: number;
  /** Stop after n validations without improvement (0 = never). */
  patience: number;
  valMetric: string;
  progress: ProgressMode;
  /** Log the loss every n steps (task.log). */
  logEvery?: number;
  /** Learning-rate multiplier at a 1-based step (null = constant, the rates are never touched). */
  lrFactor?: ((step: number) => number) | null;
  /** State of a checkpoint to continue from. */
  resume?: LoopState;
  /**
   * The popularity baseline's value of `valMetric` on the same validation users and exclusions (null = none):
   * a run whose best validation does not beat it is reported as not learned (no-learning.ts).
   */
  baseline?: number | null;
}

export interface LoopResult {
  state: LoopState;
  /** Moving average of the loss at the end, and the last step's loss. */
  finalLoss: number;
  lastLoss: number;
  stoppedEarly: boolean;
  collapse: CollapseCheck;
  /** Never-learned check over the same history (no-learning.ts); `noLearning.learned === false` says it happened. */
  noLearning: NoLearningCheck;
  /** Restored the best validation epoch's weights. */
  restoredBest: boolean;
}

export function runLoop<I>(task: LoopTask<I>, cfg: LoopConfig): LoopResult {
  const step = task.step;
  const pair = step.pair;
  const spe = task.stepsPerEpoch;
  const st: LoopState = cfg.resume ?? { epoch: 0, step: 0, best: null, bestEpoch: 0, badEvals: 0, history: [], epochs: [], examples: 0, trainSeconds: 0 };
  st.epochs ??= [];
  step.step = st.step;
  let best = st.best !== null ? task.snapshot() : null;
  const bar = new Progress(cfg.progress, cfg.epochs * spe, st.epoch * spe, cfg.epochs);
  let lossEma = st.epochs.length ? st.epochs[st.epochs.length - 1].lossEma : NaN;
  let stoppedEarly = false;
  let lastLoss = NaN;
  const lr = cfg.lrFactor ?? null;
  // The loss before training could move it: the mean of a fresh run's first steps (a handful, against batch noise).
  const initialSteps = st.epoch === 0 && st.initialLoss === undefined ? Math.min(10, spe) : 0;
  let initialSum = 0;
  while (st.epoch < cfg.epochs && !stoppedEarly) {
    const epoch = st.epoch + 1;
    // Per-epoch seeds make a resumed run draw exactly what an uninterrupted one would.
    const rng = new Rng(cfg.seed * 1_000_003 + epoch);
    const t0 = performance.now();
    task.beginEpoch(epoch, rng);
    step.beginEpoch(epoch - 1);
    let lossSum = 0;
    for (let s = 0; s < spe; s++) {
      const { batch, examples } = task.batch(s);
      if (lr) pair.setLrScale(lr(step.step + 1));
      const { loss } = step.run(batch, rng);
      if (!Number.isFinite(loss)) throw new UserError(`training diverged at step ${step.step}, epoch ${epoch} (loss ${loss}); lower the learning rates or raise the temperature`);
      lossSum += loss;
      lastLoss = loss;
      if (epoch === 1 && s < initialSteps) {
        initialSum += loss;
        if (s === initialSteps - 1) st.initialLoss = initialSum / initialSteps;
      }
      lossEma = Number.isNaN(lossEma) ? loss : 0.98 * lossEma + 0.02 * loss;
      st.examples += examples;
      const elapsed = st.trainSeconds + (performance.now() - t0) / 1000;
      bar.tick({ epoch, epochs: cfg.epochs, loss: lossEma, examplesPerSecond: st.examples / Math.max(elapsed, 1e-9) });
      if (cfg.logEvery && cfg.logEvery > 0 && step.step % cfg.logEvery === 0) task.log?.({ event: 'step', epoch, step: step.step, loss, lossEma });
    }
    const seconds = (performance.now() - t0) / 1000;
    st.trainSeconds += seconds;
    st.step = step.step;
    st.epoch = epoch;
    const e: LoopEpoch = { epoch, loss: lossSum / spe, lossEma, seconds };
    st.epochs.push(e);
    task.log?.({ event: 'epoch', epoch, step: st.step, loss: lossEma, examplesPerSecond: st.examples / st.trainSeconds });
    let rec: LoopValidation | null = null;
    if (task.validate && cfg.evalEvery > 0 && (epoch % cfg.evalEvery === 0 || epoch === cfg.epochs)) {
      const v = task.validate(epoch);
      rec = { epoch, step: st.step, metrics: v.metrics, loss: lossEma, ...v.extra };
      st.history.push(rec);
      const m = v.metrics[cfg.valMetric];
      if (m === undefined) throw new UserError(`validation metric '${cfg.valMetric}' is not computed (have: ${Object.keys(v.metrics).join(', ')})`);
      if (st.best === null || m > st.best) {
        st.best = m;
        st.bestEpoch = epoch;
        st.badEvals = 0;
        best = task.snapshot();
      } else st.badEvals++;
      task.log?.({ event: 'validation', epoch, step: st.step, metrics: v.metrics, ...v.extra, best: st.best, bestEpoch: st.bestEpoch });
      bar.note(v.note ?? `epoch ${epoch}: val ${cfg.valMetric} ${m.toFixed(4)} (best ${st.best.toFixed(4)} @ ${st.bestEpoch})`);
      if (cfg.patience > 0 && st.badEvals >= cfg.patience) stoppedEarly = true;
    }
    task.checkpoint?.(st);
    task.onEpochEnd?.(e, rec);
  }
  bar.stop();
  if (lr) pair.setLrScale(1);
  if (best) task.restore(best);
  const collapse = detectCollapse(
    st.history.map((h) => ({ epoch: h.epoch, loss: h.loss ?? Number.NaN, val: h.metrics[cfg.valMetric] })),
    cfg.patience > 0 ? cfg.patience : 3,
  );
  // The epoch's mean loss, not the moving average: in a short run the average still mostly holds the first steps.
  const epochLoss = new Map(st.epochs.map((e) => [e.epoch, e.loss]));
  const noLearning = detectNoLearning({
    history: st.history.map((h) => ({ epoch: h.epoch, loss: epochLoss.get(h.epoch) ?? h.loss, val: h.metrics[cfg.valMetric] })),
    epochLosses: st.epochs.map((e) => e.loss),
    initialLoss: st.initialLoss,
    baseline: cfg.baseline ?? null,
    collapsed: collapse.collapsed,
  });
  return { state: st, finalLoss: lossEma, lastLoss, stoppedEarly, collapse, noLearning, restoredBest: !!best };
}
