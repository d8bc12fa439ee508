/**
 * Asynchronous successive halving (ASHA, Li et al. 2020) run by one worker: rungs at growing epoch counts
 * (minEpochs · eta^k, capped at maxEpochs); whenever a trial is among the top 1/eta of the trials that finished
 * rung k (by validation metric) and has not gone on yet, it is promoted — trained on, from its checkpoint, to
 * rung k+1 — before any new trial starts. Otherwise a new configuration starts at rung 0, while the budget
 * allows. Pure bookkeeping over a JSON-serialisable state, so a killed search resumes exactly where it was.
 */
import type { Schedule } from './space.ts';

export interface TrialRecord {
  id: number;
  params: Record<string, unknown>;
  /** Best validation metric after each finished rung (index = rung). */
  rungs: number[];
  /** Epochs trained so far. */
  epochs: number;
  /** The epoch of the best validation so far. */
  bestEpoch: number;
  /** No further training: early-stopped, failed, or at the last rung. */
  terminal: boolean;
  /** Why training failed (diverged, invalid configuration), when it did. */
  error?: string;
  seconds: number;
}

export interface Job {
  trial: number;
  /** Rung to reach (its epochs: rungEpochs(schedule)[rung]). */
  rung: number;
  /** True when it is a new trial (no checkpoint to continue from). */
  fresh: boolean;
}

/** Epochs of each rung: minEpochs · eta^k while below maxEpochs, then maxEpochs. */
export function rungEpochs(s: Schedule): number[] {
  const out: number[] = [];
  for (let e = s.minEpochs; e < s.maxEpochs; e *= s.eta) out.push(e);
  out.push(s.maxEpochs);
  return out;
}

/** The trial's highest finished rung, or −1. */
export function level(t: TrialRecord): number {
  return t.rungs.length - 1;
}

/**
 * The next job: the best promotable trial of the highest rung that has one; else a new trial when
 * `mayStartNew`; else null (the search is over).
 */
export function nextJob(trials: TrialRecord[], s: Schedule, mayStartNew: boolean): Job | null {
  const rungs = rungEpochs(s);
  for (let k = rungs.length - 2; k >= 0; k--) {
    const finished = trials.filter((t) => t.rungs.length > k && !t.error);
    const keep = Math.floor(finished.length / s.eta);
    if (keep === 0) continue;
    const top = [...finished].sort((a, b) => b.rungs[k] - a.rungs[k] || a.id - b.id).slice(0, keep);
    const promotable = top.find((t) => level(t) === k && !t.terminal);
    if (promotable) return { trial: promotable.id, rung: k + 1, fresh: false };
  }
  return mayStartNew ? { trial: trials.length, rung: 0, fresh: true } : null;
}

/** The winner: the best metric among the trials that reached the highest rung any trial reached. */
export function bestTrial(trials: TrialRecord[]): TrialRecord | null {
  const ok = trials.filter((t) => !t.error && t.rungs.length > 0);
  if (!ok.length) return null;
  const top = Math.max(...ok.map(level));
  return ok.filter((t) => level(t) === top).sort((a, b) => b.rungs[top] - a.rungs[top] || a.id - b.id)[0];
}
