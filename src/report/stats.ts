/** Summary statistics over seeds. Missing values (null, NaN: e.g. tail recall with no tail test items) are skipped. */

/** Mean ± sample standard deviation of one quantity over seeds, with the raw per-seed values (JSON-safe). */
export interface Stat {
  mean: number | null;
  /** Sample standard deviation (n − 1); 0 with one value, null with none. */
  std: number | null;
  /** Number of finite values the statistics are over. */
  n: number;
  values: (number | null)[];
}

export function finite(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

export function stat(values: readonly (number | null | undefined)[]): Stat {
  const xs = values.filter(finite);
  const clean = values.map((v) => (finite(v) ? v : null));
  if (xs.length === 0) return { mean: null, std: null, n: 0, values: clean };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, std, n: xs.length, values: clean };
}
