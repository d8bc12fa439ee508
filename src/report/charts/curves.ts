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

/** Dash patterns and marker shapes per recipe: identical curves drawn on top of each other stay distinguishable. */
const DASHES = [[1, 0], [7, 4], [2, 3], [10, 3, 2, 3], [4, 4], [12, 4]];
const SHAPES = ['circle', 'square', 'triangle-up', 'diamond', 'cross', 'triangle-down'];

function layers(recipes: string[], present: string[], yTitle: string | null, legend: boolean) {
  // The band takes its colour from the data (scale null), so the legend shows only the lines, not faint band swatches.
  // Colour, dash and shape share one field and title, so vega-lite merges them into one legend.
  const leg = legend ? { title: null, orient: 'bottom', direction: 'horizontal', columns: 3, symbolStrokeWidth: 2.5, symbolSize: 90 } : null;
  const domain = recipes.filter((x) => present.includes(x));
  const pick = <T,>(list: T[]) => domain.map((x) => list[recipes.indexOf(x) % list.length]);
  const color = { field: 'label', type: 'nominal', scale: colorScale(recipes, {}, present), legend: leg } as const;
  const strokeDash = { field: 'label', type: 'nominal', scale: { domain, range: pick(DASHES) }, legend: leg } as const;
  const shape = { field: 'label', type: 'nominal', scale: { domain, range: pick(SHAPES) }, legend: leg } as const;
  // Earlier recipes draw wider, so a later identical curve on top leaves a visible rim of the one below.
  const strokeWidth = { field: 'width', type: 'quantitative', scale: null, legend: null } as const;
  // From zero: a 0.004 difference must look like one, not fill the panel (diagnostics that go negative include zero too).
  const y = { field: 'mean', type: 'quantitative', title: yTitle, scale: { zero: true }, axis: { format: '~r', tickCount: 5 } } as const;
  return [
    { mark: { type: 'area', opacity: 0.15 }, encoding: { y: { field: 'lo', type: 'quantitative', scale: { zero: true } }, y2: { field: 'hi' }, fill: { field: 'band', type: 'nominal', scale: null } } },
    { mark: { type: 'line' }, encoding: { y, color, strokeDash, strokeWidth } },
    {
      // Hollow markers of different shapes: overlapping points still show every outline.
      mark: { type: 'point', size: 55, filled: false, strokeWidth: 1.6 },
      encoding: { y, color, shape, tooltip: [{ field: 'label' }, { field: 'epoch' }, { field: 'mean', format: '.4f' }, { field: 'std', format: '.4f' }] },
    },
  ];
}

const labelsOf = (rows: CurveDatum[]) => [...new Set(rows.map((r) => r.label))];

function values(rows: CurveDatum[], recipes: string[]) {
  const { domain, range } = colorScale(recipes);
  return rows.map((r) => ({ ...r, lo: r.mean - r.std, hi: r.mean + r.std, band: range[domain.indexOf(r.label)] ?? '#999', width: Math.max(1.5, 4 - 0.8 * Math.max(0, recipes.indexOf(r.label))) }));
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

/**
 * Small multiples, one per `key`, each with its own y scale (from zero) and its own epoch axis: two per row,
 * so a last odd panel leaves no axis hanging under an empty cell.
 */
export function facetedCurvesSpec(rows: CurveDatum[], recipes: string[]): TopLevelSpec {
  const keys = [...new Set(rows.map((r) => r.key))];
  const maxEpoch = Math.max(1, ...rows.map((r) => r.epoch));
  return {
    data: { values: values(rows, recipes) },
    facet: { field: 'key', type: 'nominal', sort: keys, header: { title: null, labelFontWeight: 'bold' } },
    columns: Math.min(2, keys.length),
    resolve: { scale: { y: 'independent' }, axis: { x: 'independent' } },
    spec: { width: 380, height: 150, encoding: { x: epochAxis(maxEpoch) }, layer: layers(recipes, labelsOf(rows), null, true) },
  } as TopLevelSpec;
}
