/**
 * The easy-to-hard curriculum of GNNO (Fan et al., SIGIR 2023; official TopoCuri.actions_before_epoch):
 * the hardness cap h_t — negatives j of target i are eligible only when J(i, j) ≤ h_t — starts low and
 * grows with training, so early epochs see easy (low-overlap) negatives and later ones harder negatives,
 * while items above the cap (most overlap: likely false negatives) stay excluded.
 *
 *   constant:  h(e) = max
 *   linear:    h(e) = min(max, start + pace · max(0, e − warmup))                 (official: start 0,
 *              warmup hn0 = 5, pace c_pace = 0.01 per epoch, max 0.7)
 *   step:      h(e) = min(max, start + pace · ⌊max(0, e − warmup) / every⌋)        (+pace every `every` epochs)
 *
 * e is the 0-based epoch; it may be fractional (progress measured in steps) for linear.
 */
import { UserError } from '../util/errors.ts';

export interface CurriculumSpec {
  kind: 'constant' | 'linear' | 'step';
  /** Cap before the warm-up ends. */
  start: number;
  /** Epoch at which the cap starts to grow (official hn0). */
  warmup: number;
  /** Growth per epoch (linear) or per step of `every` epochs (step). */
  pace: number;
  /** Epochs per step (step schedule). */
  every: number;
  /** Largest cap (official max_hard). */
  max: number;
}

/** The official defaults: h = 0 until epoch 5, then +0.01 per epoch up to 0.7. */
export const officialCurriculum: CurriculumSpec = { kind: 'linear', start: 0, warmup: 5, pace: 0.01, every: 1, max: 0.7 };

export function hardnessAt(c: CurriculumSpec, epoch: number): number {
  if (c.kind === 'constant') return c.max;
  const e = Math.max(0, epoch - c.warmup);
  const grown = c.kind === 'linear' ? c.pace * e : c.pace * Math.floor(e / c.every);
  return Math.min(c.max, c.start + grown);
}

export function checkCurriculum(c: CurriculumSpec, where = 'curriculum'): void {
  const bad = (f: string, m: string) => new UserError(`${where}: field '${f}': ${m}`);
  if (!['constant', 'linear', 'step'].includes(c.kind)) throw bad('kind', `expected constant, linear or step, got '${c.kind}'`);
  if (!(c.start >= 0 && c.start <= 1)) throw bad('start', `must be in [0, 1], got ${c.start}`);
  if (!(c.max >= 0 && c.max <= 1)) throw bad('max', `must be in [0, 1], got ${c.max}`);
  if (!(c.pace >= 0)) throw bad('pace', `must be >= 0, got ${c.pace}`);
  if (!(c.warmup >= 0)) throw bad('warmup', `must be >= 0, got ${c.warmup}`);
  if (!(Number.isInteger(c.every) && c.every >= 1)) throw bad('every', `must be a positive integer, got ${c.every}`);
}
