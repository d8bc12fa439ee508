/**
 * Learning-rate schedules: a multiplier of the configured learning rates per optimisation step.
 * `warmup` ramps linearly from ~0 to 1 over that fraction of the horizon; then 'constant' stays at 1, 'cosine'
 * decays to 0 at the horizon (half a cosine period over the remaining steps), 'step' drops ×0.1 at 50 % and
 * ×0.01 at 75 % of the horizon. The horizon is the configured epochs (or `horizonEpochs`, so a run stopped at an
 * earlier epoch and resumed follows the same curve as an uninterrupted one: successive halving relies on it).
 */
export interface LrSchedule {
  kind: 'constant' | 'cosine' | 'step';
  /** Fraction of the horizon's steps spent warming up (0 = none). */
  warmup: number;
  /** Epochs the schedule spans (default: the run's epochs). */
  horizonEpochs?: number;
}

/** Multiplier at 1-based `step` of `total` steps. */
export function lrFactor(s: LrSchedule, step: number, total: number): number {
  const t = Math.min(1, Math.max(0, (step - 1) / Math.max(1, total)));
  if (s.warmup > 0 && t < s.warmup) return (step / Math.max(1, total)) / s.warmup;
  const p = s.warmup > 0 ? (t - s.warmup) / (1 - s.warmup) : t;
  switch (s.kind) {
    case 'cosine':
      return 0.5 * (1 + Math.cos(Math.PI * p));
    case 'step':
      return p < 0.5 ? 1 : p < 0.75 ? 0.1 : 0.01;
    default:
      return 1;
  }
}
