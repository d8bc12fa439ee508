/**
 * Popularity calibration: the share of each recipe's top-K recommendations that falls in each catalogue
 * popularity decile (1 = the most popular 10% of items), against two references: the share of training
 * interactions per decile (what a recommender mirroring the log would do) and the uniform 10% line (every
 * item equally often). Bars above the interaction line at decile 1 mean popularity bias; a square-root y
 * scale keeps the small tail deciles visible next to the head.
 */
import type { TopLevelSpec } from 'vega-lite';
import { colorScale } from './palette.ts';

const HEIGHT = 280;

export const INTERACTIONS_LABEL = 'training interactions';
export const UNIFORM_LABEL = 'uniform (10% per decile)';

export interface CalibrationDatum {
  label: string;
  decile: number;
  share: number;
  std: number;
}

export function calibrationSpec(rows: CalibrationDatum[], interactionShare: number[] | null, recipes: string[], k: number): TopLevelSpec {
  const refs: { label: string; decile: number; share: number }[] = [];
  for (let d = 1; d <= 10; d++) {
    refs.push({ label: UNIFORM_LABEL, decile: d, share: 0.1 });
    if (interactionShare) refs.push({ label: INTERACTIONS_LABEL, decile: d, share: interactionShare[d - 1] });
  }
  const extra: Record<string, string> = { [UNIFORM_LABEL]: '#b0b0b0' };
  if (interactionShare) extra[INTERACTIONS_LABEL] = '#222222';
  const color = { field: 'label', type: 'nominal', scale: colorScale(recipes, extra, [...rows.map((r) => r.label), ...Object.keys(extra)]), legend: { title: null, orient: 'bottom', direction: 'horizontal', columns: 3, symbolType: 'stroke', symbolStrokeWidth: 3 } } as const;
  const top = Math.min(1, 1.1 * Math.max(0.1, ...refs.map((r) => r.share), ...rows.map((r) => r.share + r.std)));
  // Tick labels at least 18 px apart on the square-root scale; tickCount must cover them or vega thins them.
  const ticks: number[] = [];
  for (const t of [0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1]) {
    const px = (v: number) => HEIGHT * Math.sqrt(v / top);
    if (t <= top && (ticks.length === 0 || px(t) - px(ticks[ticks.length - 1]) >= 18)) ticks.push(t);
  }
  const y = { field: 'share', type: 'quantitative', title: `share of top-${k} recommendations`, scale: { type: 'sqrt', domain: [0, top], nice: false }, axis: { format: '~%', values: ticks, tickCount: ticks.length, labelOverlap: false } } as const;
  return {
    width: 560,
    height: HEIGHT,
    encoding: { x: { field: 'decile', type: 'ordinal', title: 'catalogue popularity decile (1 = most popular 10% of items by training interactions)', axis: { labelAngle: 0 } } },
    layer: [
      { data: { values: refs }, mark: { type: 'line', strokeDash: [5, 4], strokeWidth: 1.5 }, encoding: { y, color } },
      {
        data: { values: rows.map((r) => ({ ...r, lo: Math.max(0, r.share - r.std), hi: Math.min(1, r.share + r.std) })) },
        layer: [
          { mark: { type: 'line', point: { size: 35, filled: true }, strokeWidth: 2 }, encoding: { y, color, tooltip: [{ field: 'label' }, { field: 'decile' }, { field: 'share', format: '.2%' }] } },
          { mark: { type: 'rule', strokeWidth: 1 }, encoding: { y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color } },
        ],
      },
    ],
  } as TopLevelSpec;
}
