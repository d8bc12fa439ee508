/**
 * The comparison report as one self-contained HTML page: inline CSS and inline SVG charts, no script and
 * no external resource, so it opens from a file, an archive or an e-mail attachment exactly as written.
 * Rendered from a CompareResults object alone (see results.ts).
 */
import { fmt, metricBarsSpec, type BarDatum } from './charts/bars.ts';
import { calibrationSpec, type CalibrationDatum } from './charts/calibration.ts';
import { costSpec } from './charts/cost.ts';
import { curvesSpec, facetedCurvesSpec, type CurveDatum } from './charts/curves.ts';
import { COLORS, POPULARITY_LABEL } from './charts/palette.ts';
import { renderSvg } from './charts/render.ts';
import type { CompareResults, RecipeSummary } from './results.ts';
import { finite, type Stat } from './stats.ts';

/** Metric families shown as bars, in order, with what they say. */
export const BAR_METRICS: [family: string, meaning: string][] = [
  ['recall', 'share of a user’s held-out items found in the top K'],
  ['ndcg', 'rank-discounted hits (a hit at rank 1 counts most)'],
  ['hr', 'users with at least one hit'],
  ['mrr', 'reciprocal rank of the first hit'],
  ['recallHead', 'recall on the 20% most popular items'],
  ['recallTail', 'recall on the other 80% (long tail)'],
  ['coverage', 'share of the catalogue recommended to anyone'],
  ['popPct', 'mean popularity percentile of recommended items (1 = most popular; lower = less popularity bias)'],
];

/** What the trainer's diagnostics mean (src/train/diagnostics.ts); other keys are shown without a gloss. */
const DIAGNOSTICS: Record<string, string> = {
  fnRate: 'share of the used negatives that are training positives of the row’s user (false negatives)',
  effectiveNegatives: 'exp(entropy) of the softmax over the used negatives: how many negatives carry the gradient',
  negSimMean: 'mean cosine similarity of the used negatives (hardness)',
  negSimMax: 'largest cosine similarity of a used negative',
  maskedPerRow: 'candidates removed per row by the masks',
  negPopCorr: 'correlation of item popularity with how often the item was a negative (over-sampling of popular items)',
  negMassPopCorr: 'correlation of item popularity with the softmax mass it received as a negative (what logQ flattens)',
};

/** Summary-table columns (family, higher is better?). */
const TABLE_METRICS: [string, boolean][] = [
  ['recall', true],
  ['ndcg', true],
  ['recallTail', true],
  ['coverage', true],
  ['popPct', false],
];

export async function renderReport(r: CompareResults): Promise<string> {
  const k = r.k;
  const names = r.recipes.map((x) => x.name);
  const sections: string[] = [];
  sections.push(header(r));
  sections.push(section('Summary', `Test metrics at K = ${k}, ${overSeeds(r)}. Best mean per column in bold.`, seedsWarning(r) + summaryTable(r)));
  sections.push(inferenceSection(r));
  sections.push(await barsSection(r, names));
  sections.push(await curvesSection(r, names));
  sections.push(await calibrationSection(r, names));
  sections.push(await diagnosticsSection(r, names));
  sections.push(await costSection(r, names));
  sections.push(topItemsSection(r));
  sections.push(detailsSection(r));
  return page(`Towerlab comparison: ${names.join(' vs ')}`, sections.join('\n'));
}

function header(r: CompareResults): string {
  const d = r.data;
  const c = r.config;
  const rows: [string, string][] = [
    ['data', d ? `${d.source}: ${num(d.users)} users, ${num(d.items)} items, ${num(d.interactions)} interactions` : c.data],
    ['split', d ? `${d.split}: train ${num(d.train)}, validation ${num(d.val)}, test ${num(d.test)} (${num(d.testUsers)} test users)` : c.split],
    ['training', `${c.epochs} epochs max, batch ${c.batch_size}, validation metric ${c.val_metric}, seeds ${c.seeds.join(', ')}${c.backend ? `, backend ${c.backend}` : ''}`],
    ['evaluation', `full-corpus ranking on the test split, training and validation items excluded; cut-offs ${c.ks.join(', ')}`],
    ['created', r.created],
  ];
  const warn = r.complete ? '' : '<p class="warn">Incomplete: not every run has finished; the numbers cover the runs done so far.</p>';
  return `<header><h1>Recipe comparison</h1>${warn}<table class="meta">${rows.map(([a, b]) => `<tr><th>${esc(a)}</th><td>${esc(b)}</td></tr>`).join('')}</table></header>`;
}

function summaryTable(r: CompareResults): string {
  const k = r.k;
  const cols = TABLE_METRICS.filter(([m]) => r.recipes.some((x) => x.metrics[`${m}@${k}`]) || r.popularity[`${m}@${k}`]);
  const best = new Map<string, number>();
  for (const [m, higher] of cols) {
    if (!higher) continue;
    const means = r.recipes.map((x) => x.metrics[`${m}@${k}`]?.mean).filter(finite);
    if (means.length > 1) best.set(m, Math.max(...means));
  }
  const bestEps = Math.max(...r.recipes.map((x) => x.examples_per_s.mean).filter(finite));
  const head = `<tr><th>recipe</th>${cols.map(([m]) => `<th>${esc(`${m}@${k}`)}</th>`).join('')}<th>examples/s</th><th>runs</th></tr>`;
  const body = r.recipes.map((x) => {
    const cells = cols.map(([m]) => {
      const s = x.metrics[`${m}@${k}`];
      return `<td${s && s.mean !== null && s.mean === best.get(m) ? ' class="best"' : ''}>${pm(s)}</td>`;
    });
    const eps = x.examples_per_s;
    return `<tr><th>${swatch(x.name, r)}${esc(x.name)}</th>${cells.join('')}<td${r.recipes.length > 1 && eps.mean === bestEps ? ' class="best"' : ''}>${pm(eps, 0)}</td><td>${x.runs.length}</td></tr>`;
  });
  // The baseline is deterministic given the split: its mean alone.
  const pop = `<tr class="baseline"><th>${esc(POPULARITY_LABEL)}</th>${cols.map(([m]) => `<td>${cell(r.popularity[`${m}@${k}`]?.mean)}</td>`).join('')}<td>–</td><td></td></tr>`;
  return `<table class="grid"><thead>${head}</thead><tbody>${body.join('')}${pop}</tbody></table>`;
}

async function barsSection(r: CompareResults, names: string[]): Promise<string> {
  const k = r.k;
  const rows: BarDatum[] = [];
  const shown: [string, string][] = [];
  for (const [fam, meaning] of BAR_METRICS) {
    const m = `${fam}@${k}`;
    const before = rows.length;
    for (const x of r.recipes) {
      const s = x.metrics[m];
      if (s && finite(s.mean)) rows.push({ metric: m, label: x.name, mean: s.mean, std: s.std ?? 0 });
    }
    if (rows.length === before) continue; // no recipe has it: leave the baseline out too
    const p = r.popularity[m];
    if (p && finite(p.mean)) rows.push({ metric: m, label: POPULARITY_LABEL, mean: p.mean, std: p.std ?? 0 });
    shown.push([m, meaning]);
  }
  if (!rows.length) return section('Test metrics', '', notRecorded('no test metrics'));
  const svg = await renderSvg(metricBarsSpec(rows, names), 'bars');
  const legend = `<dl class="glossary">${shown.map(([m, t]) => `<dt>${esc(m)}</dt><dd>${esc(t)}</dd>`).join('')}</dl>`;
  const bars = oneSeed(r) ? 'Bars: the one seed’s value (no error bars: a single seed has no spread); the number is the value.' : 'Bars: mean over seeds; error bars: ±1 std; the number is the mean.';
  return section('Test metrics', `${bars} Each panel has its own scale, from zero.`, figure(svg, 'bars') + legend);
}

async function curvesSection(r: CompareResults, names: string[]): Promise<string> {
  const rows: CurveDatum[] = [];
  let metric = r.config.val_metric;
  for (const x of r.recipes) {
    if (!x.curve) continue;
    metric = x.curve.metric;
    for (const p of x.curve.points) if (finite(p.mean)) rows.push({ label: x.name, epoch: p.epoch, mean: p.mean, std: p.std ?? 0 });
  }
  const title = 'Validation curves';
  if (!rows.length) return section(title, '', notRecorded('no validation was run (see --eval-every and --val)'));
  const svg = await renderSvg(curvesSpec(rows, names, `validation ${metric}`), 'curves');
  const how = oneSeed(r) ? 'one seed' : 'mean over seeds, band ±1 std';
  return section(title, `Validation ${esc(metric)} after each validated epoch (${how}); y axis from zero; recipes differ by colour, dash and marker, so identical curves stay visible. The model kept is the one from the best validation.`, figure(svg, 'curves'));
}

async function calibrationSection(r: CompareResults, names: string[]): Promise<string> {
  const rows: CalibrationDatum[] = [];
  let k = r.k;
  for (const x of r.recipes) {
    if (!x.calibration) continue;
    k = x.calibration.k;
    x.calibration.deciles.forEach((s, d) => {
      if (finite(s.mean)) rows.push({ label: x.name, decile: d + 1, share: s.mean, std: s.std ?? 0 });
    });
  }
  const title = 'Popularity calibration';
  if (!rows.length) return section(title, '', notRecorded('per-item recommendation counts were not recorded'));
  const svg = await renderSvg(calibrationSpec(rows, r.catalogue?.interactionShare ?? null, names, k), 'calibration');
  const note =
    `Where the top-${k} test recommendations fall in the catalogue, sorted by training popularity into deciles of equal item count. ` +
    `Dashed: the share of training interactions per decile (black) and a uniform 10% (grey). A recipe above the black line at decile 1 over-recommends popular items; reaching the right-hand deciles means it surfaces the long tail. Square-root y scale.`;
  return section(title, note, figure(svg, 'calibration'));
}

async function diagnosticsSection(r: CompareResults, names: string[]): Promise<string> {
  const title = 'Training diagnostics';
  const keys = [...new Set(r.recipes.flatMap((x) => (x.diagnostics ? Object.keys(x.diagnostics.final) : [])))];
  if (!keys.length) return section(title, '', notRecorded('no training diagnostics were recorded with the validations'));
  const head = `<tr><th>recipe</th>${keys.map((key) => `<th>${esc(key)}</th>`).join('')}</tr>`;
  const body = r.recipes
    .map((x) => `<tr><th>${swatch(x.name, r)}${esc(x.name)}</th>${keys.map((key) => `<td>${x.diagnostics?.final[key] ? pm(x.diagnostics.final[key]) : '<span class="na">not recorded</span>'}</td>`).join('')}</tr>`)
    .join('');
  const known = keys.filter((key) => DIAGNOSTICS[key]);
  const glossary = known.length ? `<dl class="glossary">${known.map((key) => `<dt>${esc(key)}</dt><dd>${esc(DIAGNOSTICS[key])}</dd>`).join('')}</dl>` : '';
  const table = `<table class="grid">${head}${body}</table>${glossary}`;
  const rows: CurveDatum[] = [];
  for (const x of r.recipes) {
    for (const [key, pts] of Object.entries(x.diagnostics?.curves ?? {})) for (const p of pts) if (finite(p.mean)) rows.push({ key, label: x.name, epoch: p.epoch, mean: p.mean, std: p.std ?? 0 });
  }
  const multiEpoch = new Set(rows.map((p) => p.epoch)).size > 1;
  const chart = multiEpoch ? figure(await renderSvg(facetedCurvesSpec(rows, names), 'diagnostics'), 'diagnostics') : '';
  const at = oneSeed(r) ? 'At the last validation (one seed)' : 'At the last validation of each seed, mean ± std over seeds';
  return section(title, at + (multiEpoch ? '; below, per validated epoch, one chart per diagnostic with its own y scale including zero, recipes by colour, dash and marker.' : '.'), table + chart);
}

async function costSection(r: CompareResults, names: string[]): Promise<string> {
  const rows = r.recipes.filter((x) => finite(x.examples_per_s.mean)).map((x) => ({ label: x.name, mean: x.examples_per_s.mean as number, std: x.examples_per_s.std ?? 0 }));
  if (!rows.length) return section('Cost', '', notRecorded('no throughput recorded'));
  const svg = await renderSvg(costSpec(rows, names), 'cost');
  return section('Cost', `Training throughput (examples per second of training time, validation excluded), ${overSeeds(r)}, on this machine.`, figure(svg, 'cost'));
}

function detailsSection(r: CompareResults): string {
  const k = r.k;
  const rows = r.recipes.flatMap((x) =>
    x.runs.map(
      (run) =>
        `<tr><th>${esc(x.name)}</th><td>${run.seed}</td><td>${cell(run.metrics[`recall@${k}`])}</td><td>${cell(run.metrics[`ndcg@${k}`])}</td><td>${run.epochs}${run.stopped_early ? ' (early stop)' : ''}</td><td>${run.best_epoch}</td><td>${cell(run.final_loss)}</td><td>${num(Math.round(run.examples_per_s))}</td><td>${run.train_seconds.toFixed(1)}</td></tr>`,
    ),
  );
  const runs = `<table class="grid"><tr><th>recipe</th><th>seed</th><th>recall@${k}</th><th>ndcg@${k}</th><th>epochs</th><th>best epoch</th><th>final loss</th><th>examples/s</th><th>train s</th></tr>${rows.join('')}</table>`;
  const recipes = r.recipes.map((x) => `<h3>${esc(x.name)}${x.file ? ` <small>${esc(x.file)}</small>` : ''}</h3><pre>${esc(JSON.stringify(x.recipe, null, 2))}</pre>`).join('');
  return section('Runs and recipes', 'Every run, and the recipes as they were validated. All numbers are also in results.json.', `<details open><summary>per-seed runs</summary>${runs}</details><details><summary>recipes</summary>${recipes}</details>`);
}

function section(title: string, note: string, body: string): string {
  return `<section><h2>${esc(title)}</h2>${note ? `<p class="note">${note}</p>` : ''}${body}</section>`;
}

function figure(svg: string, name: string): string {
  return `<figure class="chart" data-chart="${name}">${svg}</figure>`;
}

function notRecorded(why: string): string {
  return `<p class="na">not recorded: ${esc(why)}</p>`;
}

function swatch(name: string, r: CompareResults): string {
  const i = r.recipes.findIndex((x) => x.name === name);
  return `<span class="sw sw${i % COLORS.length}"></span>`;
}

function oneSeed(r: CompareResults): boolean {
  return r.config.seeds.length === 1;
}

/** "mean ± std over 3 seeds", or for one seed what it is: one run, no spread. */
export function overSeeds(r: CompareResults): string {
  const n = r.config.seeds.length;
  return n === 1 ? 'from 1 seed (one run per recipe: no spread over seeds)' : `mean ± std over ${n} seeds`;
}

function seedsWarning(r: CompareResults): string {
  const n = r.config.seeds.length;
  if (n >= 3) return '';
  return `<p class="warn">Only ${n} seed${n === 1 ? '' : 's'}: differences between recipes may be seed noise${n === 1 ? ' (no std can be computed)' : ' (a std from 2 runs is unreliable)'}. Run with <code>--seeds 3</code> or more before drawing conclusions; the intervals below cover the sampling of test users only.</p>`;
}

function interval(x: { mean: number; lo: number; hi: number } | undefined, like?: number): string {
  if (!x || !finite(x.mean)) return '<span class="na">–</span>';
  const f = (v: number) => fmt(v, like ?? x.mean);
  return `${f(x.mean)} <span class="pm">[${f(x.lo)}, ${f(x.hi)}]</span>`;
}

function pValue(p: number): string {
  return !finite(p) ? '–' : p < 0.001 ? '&lt; 0.001' : p.toFixed(3);
}

function inferenceSection(r: CompareResults): string {
  const inf = r.inference;
  const title = 'Confidence intervals and paired tests';
  if (!inf) return section(title, '', notRecorded('per-user test metrics were not kept (results.json from an older version, or an incomplete run)'));
  const ref = inf.reference;
  const head = `<tr><th>recipe</th>${inf.metrics.map((m) => `<th>${esc(m)} [95% CI]</th>`).join('')}${inf.metrics.map((m) => `<th>Δ ${esc(m)} vs ${esc(ref)} [95% CI]</th><th>p</th>`).join('')}</tr>`;
  const body = inf.recipes
    .map((x) => {
      const ci = inf.metrics.map((m) => `<td>${interval(x.ci[m])}</td>`).join('');
      const vs = inf.metrics
        .map((m) => {
          const t = x.vsReference?.[m];
          if (!t) return '<td class="na">reference</td><td></td>';
          const sig = t.p < 0.05 ? ' class="best"' : '';
          return `<td${sig}>${interval(t, x.ci[m]?.mean)}</td><td${sig}>${pValue(t.p)}</td>`;
        })
        .join('');
      return `<tr><th>${swatch(x.name, r)}${esc(x.name)}</th>${ci}${vs}</tr>`;
    })
    .join('');
  const note =
    `Bootstrap over the ${num(inf.users)} test users (${num(inf.resamples)} resamples, fixed seed ${inf.seed})` +
    (oneSeed(r) ? '' : `, each user’s metric averaged over the ${r.config.seeds.length} seeds`) +
    `. Paired test: the same users’ differences against the first recipe (${esc(ref)}), two-sided bootstrap p; bold where p &lt; 0.05 (no correction for testing several recipes). ` +
    'The intervals cover which users happened to be in the test split, not training randomness (that is the ± std over seeds).';
  return section(title, note, `<table class="grid"><thead>${head}</thead><tbody>${body}</tbody></table>`);
}

function topItemsSection(r: CompareResults): string {
  const t = r.topItems;
  if (!t || !t.recipes.length) return '';
  const rows = Array.from({ length: Math.max(...t.recipes.map((x) => x.items.length)) }, (_, i) =>
    `<tr><th>${i + 1}</th>${t.recipes.map((x) => {
      const it = x.items[i];
      return it ? `<td class="item">${esc(it.item)}${it.name ? ` <span class="name">${esc(it.name)}</span>` : ''} <span class="pm">${fmt(it.users, 10)}</span></td>` : '<td></td>';
    }).join('')}</tr>`,
  );
  const head = `<tr><th>#</th>${t.recipes.map((x) => `<th>${swatch(x.name, r)}${esc(x.name)}</th>`).join('')}</tr>`;
  return section('Most recommended items', `The items most often in the test users’ top ${t.k}, with the number of users (mean over seeds)${t.recipes.some((x) => x.items.some((i) => i.name)) ? '; names from --item-names' : ''}.`, `<table class="grid items">${head}${rows.join('')}</table>`);
}

function pm(s: Stat | undefined, digits?: number): string {
  if (!s || !finite(s.mean)) return '<span class="na">–</span>';
  const f = (x: number) => (digits === 0 ? num(Math.round(x)) : fmt(x, s.mean as number));
  return `${f(s.mean)}${s.n > 1 && finite(s.std) ? ` <span class="pm">± ${f(s.std)}</span>` : ''}`;
}

function cell(x: number | null | undefined): string {
  return finite(x) ? fmt(x) : '–';
}

function num(x: number): string {
  return x.toLocaleString('en-US');
}

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 12px; } h2 { font-size: 18px; margin: 0 0 6px; border-bottom: 1px solid #e3e3e3; padding-bottom: 4px; } h3 { font-size: 14px; margin: 12px 0 4px; }
section { margin-top: 30px; } .note { color: #555; margin: 4px 0 12px; max-width: 920px; }
table { border-collapse: collapse; } .meta th { text-align: left; color: #666; font-weight: normal; padding: 2px 16px 2px 0; vertical-align: top; }
.grid th, .grid td { padding: 5px 12px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
.grid th:first-child { text-align: left; } .grid thead th, .grid tr:first-child th { border-bottom: 2px solid #ccc; }
.grid td.best { font-weight: 700; } .grid td.item { text-align: left; } .grid .name { color: #555; } .grid tr.baseline { color: #666; font-style: italic; }
.pm { color: #777; font-size: 12px; } .na { color: #999; font-style: italic; }
.warn { background: #fff4e0; border: 1px solid #f0c36d; padding: 6px 10px; }
figure.chart { margin: 8px 0; overflow-x: auto; } figure.chart svg { max-width: 100%; height: auto; }
.glossary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; color: #555; font-size: 13px; margin: 6px 0 0; } .glossary dt { font-weight: 600; } .glossary dd { margin: 0; }
.sw { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 7px; vertical-align: baseline; }
${COLORS.map((c, i) => `.sw${i} { background: ${c}; }`).join(' ')}
pre { background: #f5f5f5; padding: 8px 10px; overflow-x: auto; font-size: 12px; } small { color: #777; font-weight: normal; }
details { margin: 6px 0; } summary { cursor: pointer; color: #444; }
`;

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}
