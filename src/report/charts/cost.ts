/** Training cost: examples per second per recipe (mean ± std over seeds), horizontal bars labelled with the number. */
import type { TopLevelSpec } from 'vega-lite';
import { colorScale } from './palette.ts';

export interface CostDatum {
  label: string;
  mean: number;
  std: number;
}

export function costSpec(rows: CostDatum[], recipes: string[]): TopLevelSpec {
  const values = rows.map((r) => ({ ...r, lo: Math.max(0, r.mean - r.std), hi: r.mean + r.std, text: `${Math.round(r.mean).toLocaleString('en-US')}/s` }));
  const y = { field: 'label', type: 'nominal', sort: rows.map((r) => r.label), title: null, axis: { labelLimit: 260, labelFontSize: 12 } } as const;
  const x = { type: 'quantitative', title: 'training examples per second (higher is cheaper)', axis: { labelExpr: "datum.value === 0 ? '0' : format(datum.value, '~s')" } } as const;
  return {
    data: { values },
    width: 460,
    height: { step: 30 },
    encoding: { y },
    layer: [
      { mark: { type: 'bar', cornerRadiusEnd: 2 }, encoding: { x: { ...x, field: 'mean', scale: { zero: true, nice: true } }, color: { field: 'label', type: 'nominal', scale: colorScale(recipes, {}, rows.map((r) => r.label)), legend: null }, tooltip: [{ field: 'label' }, { field: 'mean', format: ',.0f' }, { field: 'std', format: ',.0f' }] } },
      { mark: { type: 'rule', color: '#222' }, encoding: { x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
      { mark: { type: 'text', align: 'left', dx: 5, fontSize: 11, color: '#222' }, encoding: { x: { field: 'hi', type: 'quantitative' }, text: { field: 'text' } } },
    ],
  } as TopLevelSpec;
}
