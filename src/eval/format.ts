/**
 * Plain-text metric table for the CLI: one row per metric@K, one column per evaluated model/baseline,
 * plus a relative-change column of the first column against the second when there are exactly two.
 */
import { METRIC_NAMES, type EvalResult } from './ranking.ts';

export interface MetricColumn {
  name: string;
  result: EvalResult | Record<string, number>;
}

export interface FormatOptions {
  /** Decimal places (default 4). */
  digits?: number;
  /** Metric families to show, in order (default: all of METRIC_NAMES present in the results). */
  metrics?: readonly string[];
  /** Show "first vs second" relative change when there are two columns (default true). */
  delta?: boolean;
}

/**
 * Renders e.g.
 *   metric        model  popularity      Δ
 *   recall@20    0.2513      0.1102  +128%
 * Missing or NaN values print as "–". Rows are grouped by metric family, then by ascending K.
 */
export function formatMetricsTable(columns: MetricColumn[], options: FormatOptions = {}): string {
  const digits = options.digits ?? 4;
  const maps = columns.map((c) => ('metrics' in c.result && typeof c.result.metrics === 'object' ? (c.result as EvalResult).metrics : (c.result as Record<string, number>)));
  const keys = new Set(maps.flatMap((m) => Object.keys(m)));
  const families = options.metrics ?? [...METRIC_NAMES, ...familiesOf(keys).filter((f) => !(METRIC_NAMES as readonly string[]).includes(f))];
  const rows: string[] = [];
  for (const fam of families) {
    const ksOfFam = [...keys]
      .filter((k) => k.startsWith(`${fam}@`))
      .map((k) => Number(k.slice(fam.length + 1)))
      .sort((a, b) => a - b);
    for (const k of ksOfFam) rows.push(`${fam}@${k}`);
  }
  const withDelta = (options.delta ?? true) && columns.length === 2;
  const header = ['metric', ...columns.map((c) => c.name), ...(withDelta ? ['Δ'] : [])];
  const body = rows.map((key) => {
    const vals = maps.map((m) => m[key]);
    const cells = [key, ...vals.map((v) => fmt(v, digits))];
    if (withDelta) cells.push(relChange(vals[0], vals[1]));
    return cells;
  });
  const table = [header, ...body];
  const widths = header.map((_, c) => Math.max(...table.map((r) => r[c].length)));
  return table.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

function familiesOf(keys: Set<string>): string[] {
  return [...new Set([...keys].map((k) => k.split('@')[0]))];
}

function fmt(v: number | undefined, digits: number): string {
  return v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits);
}

function relChange(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '–';
  const r = (a / b - 1) * 100;
  return `${r >= 0 ? '+' : ''}${Math.abs(r) >= 10 ? r.toFixed(0) : r.toFixed(1)}%`;
}
