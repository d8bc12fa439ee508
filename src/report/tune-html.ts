/**
 * The page `towerlab tune` writes: what was searched, the winner, the test metrics of the final run (read once),
 * and one chart per parameter — each trial's validation metric at the last rung it reached against the value it
 * tried, coloured by that rung — so a reader sees which options matter and where the good region is.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { TrialRecord } from '../tune/asha.ts';
import type { Space } from '../tune/space.ts';
import { renderSvg } from './charts/render.ts';
import { esc } from './html.ts';

export interface TuneReport {
  space: Space;
  metric: string;
  rungs: number[];
  eta: number;
  budget: { trials?: number; seconds?: number };
  seed: number;
  seconds: number;
  jobs: number;
  trials: TrialRecord[];
  best: { trial: number; params: Record<string, unknown>; metric: number; rung: number; epochs: number } | null;
  /** Test evaluation of the chosen configuration (null when there is no test data or it was skipped). */
  final: {
    metrics: Record<string, number>;
    popularity: Record<string, number>;
    data: unknown;
    trainEpochs: number;
    bestEpoch: number;
    validation: number | null;
  } | null;
}

/** A value as a chart label: numbers as numbers, anything else as compact JSON. */
function label(v: unknown): string | number {
  if (v !== null && typeof v === 'object' && typeof (v as { name?: unknown }).name === 'string') return (v as { name: string }).name;
  return typeof v === 'number' ? v : typeof v === 'string' ? v : JSON.stringify(v);
}

export function paramSpec(name: string, type: string, trials: TrialRecord[], rungs: number[], metric: string): TopLevelSpec {
  const values = trials
    .filter((t) => !t.error && t.rungs.length > 0)
    .map((t) => ({ trial: t.id, value: label(t.params[name]), metric: t.rungs[t.rungs.length - 1], epochs: `${rungs[t.rungs.length - 1]} epochs` }));
  const numeric = type !== 'choice';
  return {
    title: name,
    data: { values },
    width: 320,
    height: 200,
    mark: { type: 'point', filled: true, size: 60, opacity: 0.85 },
    encoding: {
      x: numeric
        ? { field: 'value', type: 'quantitative', title: name, scale: type === 'log' ? { type: 'log' } : { zero: false } }
        : { field: 'value', type: 'nominal', title: name, axis: { labelLimit: 160, labelAngle: -20 } },
      y: { field: 'metric', type: 'quantitative', title: `validation ${metric}`, scale: { zero: false } },
      color: { field: 'epochs', type: 'ordinal', title: 'last rung reached', sort: rungs.map((r) => `${r} epochs`) },
      tooltip: [{ field: 'trial' }, { field: 'value' }, { field: 'metric', format: '.4f' }, { field: 'epochs' }],
    },
  } as TopLevelSpec;
}

export async function renderTuneReport(r: TuneReport): Promise<string> {
  const charts: string[] = [];
  for (const [name, p] of Object.entries(r.space.params)) {
    const type = p.type === 'int' && p.log ? 'log' : p.type;
    charts.push(`<figure class="chart">${await renderSvg(paramSpec(name, type, r.trials, r.rungs, r.metric))}</figure>`);
  }
  const fmt = (x: number | null | undefined) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(4));
  const rows = [...r.trials]
    .sort((a, b) => b.rungs.length - a.rungs.length || (b.rungs[b.rungs.length - 1] ?? -1) - (a.rungs[a.rungs.length - 1] ?? -1))
    .map(
      (t) =>
        `<tr><td>${t.id}</td>${r.rungs.map((_, k) => `<td>${fmt(t.rungs[k])}</td>`).join('')}<td>${t.epochs}</td><td>${t.seconds.toFixed(0)}</td><td class="p">${esc(t.error ? `failed: ${t.error}` : JSON.stringify(t.params))}</td></tr>`,
    )
    .join('\n');
  const final = r.final
    ? `<table class="grid"><tr><th>metric</th><th>model</th><th>popularity</th></tr>${Object.keys(r.final.metrics)
        .filter((m) => /^(recall|ndcg|hr)@/.test(m))
        .map((m) => `<tr><td>${esc(m)}</td><td>${fmt(r.final!.metrics[m])}</td><td>${fmt(r.final!.popularity[m])}</td></tr>`)
        .join('')}</table><p class="note">The chosen configuration retrained from scratch (${r.final.trainEpochs} epochs, best validation at epoch ${r.final.bestEpoch}); full ranking over the catalogue, training and validation items excluded. The test data was read only for this run.</p>`
    : '<p class="note">No test evaluation (no test data, or skipped).</p>';
  const budget = r.budget.trials !== undefined ? `${r.budget.trials} trials` : `${((r.budget.seconds ?? 0) / 60).toFixed(0)} minutes`;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Towerlab tune</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; } h1 { font-size: 24px; } h2 { font-size: 18px; border-bottom: 1px solid #e3e3e3; }
.grid { border-collapse: collapse; } .grid th, .grid td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: right; font-variant-numeric: tabular-nums; }
.grid td.p { text-align: left; font-family: ui-monospace, monospace; font-size: 12px; } .note { color: #555; max-width: 920px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; } figure.chart { margin: 4px; } pre { background: #f5f5f5; padding: 8px; overflow-x: auto; font-size: 12px; }
</style></head><body><main>
<h1>Hyperparameter search</h1>
<p class="note">Quasi-random (Halton) search with asynchronous successive halving: rungs at ${r.rungs.join(', ')} epochs, the top 1/${r.eta} of each rung by validation ${esc(r.metric)} trains on. Budget ${esc(budget)}; ${r.trials.length} trials, ${r.jobs} jobs, ${r.seconds.toFixed(0)} s of training.</p>
<h2>Best configuration</h2>
${r.best ? `<p>trial ${r.best.trial}: validation ${esc(r.metric)} ${fmt(r.best.metric)} after ${r.best.epochs} epochs</p><pre>${esc(JSON.stringify(r.best.params, null, 2))}</pre>` : '<p>none</p>'}
<h2>Test (read once, after the search)</h2>
${final}
<h2>Validation metric against each option</h2>
<div class="charts">${charts.join('\n')}</div>
<h2>Trials</h2>
<table class="grid"><tr><th>trial</th>${r.rungs.map((e) => `<th>${e} ep.</th>`).join('')}<th>epochs</th><th>s</th><th>parameters</th></tr>
${rows}
</table>
<h2>Space</h2>
<pre>${esc(JSON.stringify(r.space, null, 2))}</pre>
</main></body></html>
`;
}
