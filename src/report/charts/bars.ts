/**
 * Metric bars: one panel per metric (each with its own y scale, since recall and coverage differ by an
 * order of magnitude), one bar per recipe plus the popularity baseline, error bars of ±1 std over seeds and
 * the mean printed above each bar.
 */
import type { TopLevelSpec } from 'vega-lite';
import { colorScale, POPULARITY_COLOR, POPULARITY_LABEL } from './palette.ts';

export interface BarDatum {
  metric: string;
  label: string;
  mean: number;
  std: number;
}

export function metricBarsSpec(rows: BarDatum[], recipes: string[], opts: { columns?: number; title?: string } = {}): TopLevelSpec {
  const labels = [...recipes, ...(rows.some((r) => r.label === POPULARITY_LABEL) ? [POPULARITY_LABEL] : [])];
  const metrics = [...new Set(rows.map((r) => r.metric))];
  const values = rows.map((r) => ({ ...r, lo: Math.max(0, r.mean - r.std), hi: r.mean + r.std, text: fmt(r.mean) }));
  const x = { field: 'label', type: 'nominal', sort: labels, axis: null, scale: { paddingInner: 0.15, paddingOuter: 0.2 } } as const;
  return {
    title: opts.title,
    data: { values },
    facet: { field: 'metric', type: 'nominal', sort: metrics, header: { title: null, labelFontWeight: 'bold', labelPadding: 4 } },
    // Panels per row shrink as bars per panel grow, so the chart stays about a page wide.
    columns: opts.columns ?? Math.min(labels.length > 6 ? 2 : labels.length > 4 ? 3 : 4, metrics.length),
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: { step: 40 },
      height: 170,
      encoding: { x },
      layer: [
        {
          mark: { type: 'bar', cornerRadiusTopLeft: 2, cornerRadiusTopRight: 2 },
          encoding: {
            y: { field: 'mean', type: 'quantitative', title: null, axis: { format: '.2~f', tickCount: 5 }, scale: { zero: true, nice: true } },
            color: { field: 'label', type: 'nominal', scale: colorScale(recipes, { [POPULARITY_LABEL]: POPULARITY_COLOR }, rows.map((r) => r.label)), legend: { title: null, orient: 'top', direction: 'horizontal', columns: Math.min(4, labels.length) } },
            tooltip: [{ field: 'label' }, { field: 'metric' }, { field: 'mean', format: '.4f' }, { field: 'std', format: '.4f' }],
          },
        },
        { mark: { type: 'rule', color: '#222', strokeWidth: 1.2 }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        { mark: { type: 'tick', color: '#222', thickness: 1.2, size: 8 }, encoding: { y: { field: 'hi', type: 'quantitative' } } },
        { mark: { type: 'tick', color: '#222', thickness: 1.2, size: 8 }, encoding: { y: { field: 'lo', type: 'quantitative' } } },
        { mark: { type: 'text', dy: -7, fontSize: 10, color: '#222', baseline: 'bottom' }, encoding: { y: { field: 'hi', type: 'quantitative' }, text: { field: 'text' } } },
      ],
    },
  } as TopLevelSpec;
}

/** Three decimals for [0, 1] metrics, fewer for larger numbers; `like` picks the decimals (e.g. a std formatted as its mean). */
export function fmt(x: number, like = x): string {
  if (!Number.isFinite(x)) return '–';
  const a = Math.abs(like);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(3);
}
