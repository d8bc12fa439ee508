/**
 * Line charts over epochs: the mean over seeds per recipe with a ±1 std band. Used for the validation
 * metric and, faceted by key, for training diagnostics.
 */
import type { TopLevelSpec } from 'vega-lite';
import { colorScale } from './palette.ts';

export interface CurveDatum {
  label: string;
  epoch: number;
  mean: number;
  std: number;
  /** The facet (diagnostic key) for faceted charts. */
  key?: string;
}

function layers(recipes: string[], present: string[], yTitle: string | null, legend: boolean) {
  // The band takes its colour from the data (scale null), so the legend shows only the lines, not faint band swatches.
  const color = { field: 'label', type: 'nominal', scale: colorScale(recipes, {}, present), legend: legend ? { title: null, orient: 'bottom', direction: 'horizontal', columns: 3, symbolType: 'stroke', symbolStrokeWidth: 3 } : null } as const;
  return [
    { mark: { type: 'area', opacity: 0.15 }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, fill: { field: 'band', type: 'nominal', scale: null } } },
    {
      mark: { type: 'line', point: { size: 30, filled: true }, strokeWidth: 2 },
      encoding: {
        y: { field: 'mean', type: 'quantitative', title: yTitle, scale: { zero: false }, axis: { format: '~r', tickCount: 6 } },
        color,
        tooltip: [{ field: 'label' }, { field: 'epoch' }, { field: 'mean', format: '.4f' }, { field: 'std', format: '.4f' }],
      },
    },
  ];
}

const labelsOf = (rows: CurveDatum[]) => [...new Set(rows.map((r) => r.label))];

function values(rows: CurveDatum[], recipes: string[]) {
  const { domain, range } = colorScale(recipes);
  return rows.map((r) => ({ ...r, lo: r.mean - r.std, hi: r.mean + r.std, band: range[domain.indexOf(r.label)] ?? '#999' }));
}

const epochAxis = (maxEpoch: number) => ({ field: 'epoch', type: 'quantitative', title: 'epoch', scale: { domain: [1, Math.max(2, maxEpoch)], nice: false }, axis: { tickMinStep: 1, format: 'd' } }) as const;

export function curvesSpec(rows: CurveDatum[], recipes: string[], yTitle: string): TopLevelSpec {
  const maxEpoch = Math.max(1, ...rows.map((r) => r.epoch));
  return {
    data: { values: values(rows, recipes) },
    width: 560,
    height: 260,
    encoding: { x: epochAxis(maxEpoch) },
    layer: layers(recipes, labelsOf(rows), yTitle, true),
  } as TopLevelSpec;
}

/** Small multiples, one per `key`, each with its own y scale. */
export function facetedCurvesSpec(rows: CurveDatum[], recipes: string[]): TopLevelSpec {
  const keys = [...new Set(rows.map((r) => r.key))];
  const maxEpoch = Math.max(1, ...rows.map((r) => r.epoch));
  return {
    data: { values: values(rows, recipes) },
    facet: { field: 'key', type: 'nominal', sort: keys, header: { title: null, labelFontWeight: 'bold' } },
    columns: Math.min(3, keys.length),
    resolve: { scale: { y: 'independent' } },
    spec: { width: 240, height: 150, encoding: { x: epochAxis(maxEpoch) }, layer: layers(recipes, labelsOf(rows), null, true) },
  } as TopLevelSpec;
}
