/**
 * "Never learned" detection, beside collapse detection (collapse.ts): a run whose validation metric never rose
 * meaningfully — stuck at or below the popularity baseline, flat at its first value because the learning rate is
 * far too high or too low (or 0), or with a non-finite loss — ends like any other run: early stopping keeps its
 * "best" epoch and the CLI prints a (bad) metrics table. Without this check it is reported, and averaged into
 * benches, as a normal result; with it the result says it did not learn and benches leave it out of the mean.
 *
 * Rule, over the validations v_1 … v_m (the metric that picks the best epoch) with the mean training loss ℓ_k of
 * each validation's epoch, the training loss ℓ_0 of the run's first steps (before training could move it), and —
 * where the caller has it — the popularity baseline b measured on the same validation users, metric and
 * exclusions. The run did NOT learn when, checked in this order:
 *   1. non-finite: a training loss or a validation value is NaN or ±Infinity;
 *   2. zero: every validation is 0 (nothing ranked right, ever);
 *   3. below-baseline: b is given and max v ≤ (1 + minGain) · b — the best validation never beat popularity by
 *      more than minGain (5 %) relative;
 *   4. flat: m ≥ 2, max(v_2 … v_m) ≤ (1 + minRise) · v_1 (validation never rose 5 % above its first value), AND
 *      mean(ℓ_2 … ℓ_m) ≥ (1 − minLossFall) · ℓ_0 (the training loss never fell 10 % below where it started; the
 *      mean, not the minimum, so the batch noise of a small run is not taken for a fall), AND the run did not
 *      collapse (validation falling while the loss falls is collapse.ts's report, not this one).
 * Both halves of 4 are needed: a run that learns everything in its first epoch and then plateaus has a flat
 * validation but a loss far below its start; a curriculum that makes negatives harder can keep the loss up while
 * validation rises. With no validation at all nothing can be said (learned: null) — except rule 1.
 * Popularity is the floor a demanding user applies to any recommender: a model that cannot beat "recommend the
 * most popular items" has learnt no personalisation, however its loss moved. Checked against every per-epoch
 * history in bench/results (bench/no-learning-history.ts): the lowest healthy best/popularity is 1.8×, the
 * lowest healthy rise over the first validation 12 %, the lowest loss fall 14 % (from the first epoch's mean).
 */

import { collapseLine, type CollapseCheck } from './collapse.ts';

export type NoLearningReason = 'non-finite' | 'zero' | 'below-baseline' | 'flat';

export interface NoLearningCheck {
  /** false: the run did not learn (reason says why); true: it did by this rule; null: no validation to judge by. */
  learned: boolean | null;
  reason: NoLearningReason | null;
  /** One sentence saying what was seen (null when learned). */
  detail: string | null;
  /** Best validation value and its epoch, the first validation value (null without validations). */
  best: number | null;
  bestEpoch: number | null;
  first: number | null;
  /** The popularity baseline it was compared with (null when the caller had none). */
  baseline: number | null;
}

export interface NoLearningInput {
  /** Validations in order: epoch, the training loss of that epoch (mean, when known), the validation metric's value. */
  history: Array<{ epoch: number; loss?: number; val?: number }>;
  /** Mean training loss of every epoch (for the non-finite check), when known. */
  epochLosses?: number[];
  /** Training loss of the run's first steps (ℓ_0); without it the loss at the first validation stands in. */
  initialLoss?: number;
  /** Popularity baseline on the same validation users, metric and exclusions. */
  baseline?: number | null;
  /** The same run's collapse verdict (collapse.ts): a collapsed run is not also called flat. */
  collapsed?: boolean;
}

/** Relative margin over popularity that counts as beating it. */
export const NO_LEARNING_MIN_GAIN = 0.05;
/** Relative rise over the first validation that counts as rising. */
export const NO_LEARNING_MIN_RISE = 0.05;
/** Relative fall of the training loss below its start that counts as the loss moving. */
export const NO_LEARNING_MIN_LOSS_FALL = 0.1;

const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

export function detectNoLearning(inp: NoLearningInput, minGain = NO_LEARNING_MIN_GAIN, minRise = NO_LEARNING_MIN_RISE, minLossFall = NO_LEARNING_MIN_LOSS_FALL): NoLearningCheck {
  const v = inp.history.filter((h) => h.val !== undefined) as Array<{ epoch: number; loss?: number; val: number }>;
  const baseline = inp.baseline ?? null;
  let best: number | null = null;
  let bestEpoch: number | null = null;
  for (const h of v) if (Number.isFinite(h.val) && (best === null || h.val > best)) [best, bestEpoch] = [h.val, h.epoch];
  const first = v.length ? v[0].val : null;
  const out = (reason: NoLearningReason | null, detail: string | null, learned: boolean | null = reason === null): NoLearningCheck => ({ learned, reason, detail, best, bestEpoch, first, baseline });

  // 1. Non-finite loss or metric: whatever the weights are now, they were not reached by learning.
  const badLoss = (inp.epochLosses ?? []).findIndex((l) => !Number.isFinite(l));
  if (badLoss >= 0) return out('non-finite', `the training loss of epoch ${badLoss + 1} is ${inp.epochLosses![badLoss]}`);
  if (inp.initialLoss !== undefined && !Number.isFinite(inp.initialLoss)) return out('non-finite', `the training loss at the start is ${inp.initialLoss}`);
  for (const h of v) {
    if (h.loss !== undefined && !Number.isFinite(h.loss)) return out('non-finite', `the training loss at epoch ${h.epoch} is ${h.loss}`);
    if (!Number.isFinite(h.val)) return out('non-finite', `the validation value at epoch ${h.epoch} is ${h.val}`);
  }
  if (!v.length) return out(null, null, null);
  const top = best as number;

  // 2. Nothing ever ranked right.
  if (top <= 0) return out('zero', `the validation metric was 0 at all ${v.length} validations`);

  // 3. Never beat popularity by a meaningful margin.
  if (baseline !== null && Number.isFinite(baseline) && top <= (1 + minGain) * baseline) {
    return out('below-baseline', `the best validation value (${f4(top)} at epoch ${bestEpoch}) is not ${Math.round(minGain * 100)}% above the popularity baseline on the same users (${f4(baseline)})`);
  }

  // 4. Flat validation and a training loss that never moved.
  if (v.length >= 2 && !inp.collapsed) {
    const v1 = v[0].val;
    let laterMax = -Infinity;
    for (let k = 1; k < v.length; k++) laterMax = Math.max(laterMax, v[k].val);
    const l0 = inp.initialLoss ?? v[0].loss;
    const later = v.slice(1).map((h) => h.loss);
    if (l0 !== undefined && later.every((l) => l !== undefined) && laterMax <= (1 + minRise) * v1) {
      const meanLater = (later as number[]).reduce((a, b) => a + b, 0) / later.length;
      // Losses can be negative (e.g. some pairwise objectives): the fall is relative to |ℓ_0|.
      if (l0 - meanLater < minLossFall * Math.abs(l0)) {
        return out(
          'flat',
          `the validation value never rose ${Math.round(minRise * 100)}% above its first (${f4(v1)} at epoch ${v[0].epoch}; best ${f4(top)}) over ${v.length} validations, and the training loss never fell ${Math.round(minLossFall * 100)}% below its start (${f4(l0)} → mean ${f4(meanLater)} after the first validation)`,
        );
      }
    }
  }
  return out(null, null);
}

/** The one stderr line that reports a run that did not learn. */
export function noLearningLine(c: NoLearningCheck, metric: string): string {
  return `warning: training did not learn (${c.reason}): validation ${metric}: ${c.detail}; this is a failed run, not a model's result`;
}

/**
 * The one stderr line a run's end gets, if any: not learning is the stronger statement (a "collapse" from a peak
 * that never beat popularity is no result either), so it wins over the collapse line; null for a normal run.
 */
export function trainingWarningLine(c: CollapseCheck, n: NoLearningCheck, metric: string, window: number): string | null {
  if (n.learned === false) return noLearningLine(n, metric);
  if (c.collapsed) return collapseLine(c, metric, window);
  return null;
}

/** The JSON a CLI result carries: `learned` (false / true / null = no validation) and, when false, why. */
export function noLearningJson(n: NoLearningCheck): { learned: boolean | null; no_learning: { reason: NoLearningReason; detail: string; best: number | null; best_epoch: number | null; baseline: number | null } | null } {
  return {
    learned: n.learned,
    no_learning: n.learned === false ? { reason: n.reason!, detail: n.detail!, best: n.best, best_epoch: n.bestEpoch, baseline: n.baseline } : null,
  };
}
