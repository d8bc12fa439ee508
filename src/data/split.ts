/**
 * Train/validation/test splits as row indices into an Interactions log. Every split is deterministic (random uses
 * the seeded Rng), disjoint and covers every row; each part lists its rows in ascending order.
 */
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Interactions, Split } from './types.ts';

export type SplitSpec =
  | { kind: 'random'; val: number; test: number; seed: number }
  | { kind: 'temporal'; val: number; test: number }
  | { kind: 'loo' }
  /**
   * A predefined split given as files (see split-files.ts): the train file, an optional validation file (else a
   * seeded random `val` fraction of the train rows), an optional test file. Loaded by loadSplit, not here.
   */
  | { kind: 'files'; train: string; val: string | null; test: string | null; valFraction: number; seed: number };

export function splitInteractions(data: Interactions, spec: SplitSpec): Split {
  switch (spec.kind) {
    case 'random':
      checkFractions(spec.val, spec.test);
      return randomSplit(data, spec.val, spec.test, spec.seed);
    case 'temporal':
      checkFractions(spec.val, spec.test);
      return temporalSplit(data, spec.val, spec.test);
    case 'loo':
      return leaveOneOut(data);
    case 'files':
      throw new UserError('a split given as files is read with loadSplit (data/split-files.ts), not splitInteractions');
    default:
      throw new UserError(`unknown split kind '${(spec as { kind: string }).kind}'; expected random, temporal or loo`);
  }
}

function checkFractions(val: number, test: number): void {
  if (!(val >= 0 && test >= 0 && val + test < 1)) {
    throw new UserError(`split fractions must be >= 0 with val + test < 1, got val=${val} test=${test}`);
  }
}

function needTimes(data: Interactions, kind: string): Float64Array {
  if (data.times === null) {
    throw new UserError(
      `${data.source}: a ${kind} split needs event times, and this data has none (set timeCol, or use a random split)`,
    );
  }
  return data.times;
}

/** Rows labelled 0 = train, 1 = val, 2 = test, gathered into ascending row lists. */
function fromLabels(labels: Uint8Array, description: string): Split {
  const counts = [0, 0, 0];
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const parts = counts.map((n) => new Int32Array(n));
  const at = [0, 0, 0];
  for (let i = 0; i < labels.length; i++) parts[labels[i]][at[labels[i]]++] = i;
  return { train: parts[0], val: parts[1], test: parts[2], description };
}

/** Per-row holdout: exactly round(n*test) test and round(n*val) val rows, chosen by a seeded shuffle. */
function randomSplit(data: Interactions, val: number, test: number, seed: number): Split {
  const n = data.users.length;
  const order = new Rng(seed).shuffle(Int32Array.from({ length: n }, (_, i) => i));
  const nTest = Math.round(n * test);
  const nVal = Math.round(n * val);
  const labels = new Uint8Array(n);
  for (let k = 0; k < nTest; k++) labels[order[k]] = 2;
  for (let k = nTest; k < nTest + nVal; k++) labels[order[k]] = 1;
  return fromLabels(labels, `random(val=${val},test=${test},seed=${seed})`);
}

/** Row order by (time, row). */
function byTime(times: Float64Array): Int32Array {
  const order = Int32Array.from({ length: times.length }, (_, i) => i);
  return order.sort((a, b) => times[a] - times[b] || a - b);
}

/**
 * Global time cut: the latest `test` fraction of events is test, the `val` fraction before it val. A cut never
 * splits rows with equal times; it moves to the nearer edge of the tie group (the later edge when equally near).
 */
function temporalSplit(data: Interactions, val: number, test: number): Split {
  const times = needTimes(data, 'temporal');
  const n = times.length;
  const order = byTime(times);
  const snap = (target: number, min: number): number => {
    if (target <= min || target >= n) return Math.max(min, Math.min(n, target));
    const t = times[order[target]];
    if (times[order[target - 1]] !== t) return target;
    let lo = target;
    while (lo > min && times[order[lo - 1]] === t) lo--;
    let hi = target;
    while (hi < n && times[order[hi]] === t) hi++;
    return target - lo < hi - target ? lo : hi;
  };
  const testStart = snap(n - Math.round(n * test), 0);
  const valStart = snap(testStart - Math.round(n * val), 0);
  const labels = new Uint8Array(n);
  for (let k = valStart; k < testStart; k++) labels[order[k]] = 1;
  for (let k = testStart; k < n; k++) labels[order[k]] = 2;
  return fromLabels(labels, `temporal(val=${val},test=${test})`);
}

/**
 * Leave-last-one-out per user by (time, row): the last event is test, the one before it val. Users with fewer
 * than 3 events keep all of them in train, so every evaluated user has training history.
 */
function leaveOneOut(data: Interactions): Split {
  const times = needTimes(data, 'leave-one-out');
  const n = data.users.length;
  const numUsers = data.userVocab.size;
  // Rows grouped by user (counting sort keeps row order within a user).
  const start = new Int32Array(numUsers + 1);
  for (let i = 0; i < n; i++) start[data.users[i] + 1]++;
  for (let u = 0; u < numUsers; u++) start[u + 1] += start[u];
  const rows = new Int32Array(n);
  const fill = start.slice(0, numUsers);
  for (let i = 0; i < n; i++) rows[fill[data.users[i]]++] = i;
  const labels = new Uint8Array(n);
  for (let u = 0; u < numUsers; u++) {
    const lo = start[u];
    const hi = start[u + 1];
    if (hi - lo < 3) continue;
    // The last two by (time, row), found in one pass instead of sorting the user's history.
    let last = -1;
    let second = -1;
    const later = (a: number, b: number) => times[a] > times[b] || (times[a] === times[b] && a > b);
    for (let p = lo; p < hi; p++) {
      const r = rows[p];
      if (last < 0 || later(r, last)) {
        second = last;
        last = r;
      } else if (second < 0 || later(r, second)) second = r;
    }
    labels[last] = 2;
    labels[second] = 1;
  }
  return fromLabels(labels, 'loo(last=test,second-last=val)');
}
