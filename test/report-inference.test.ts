/**
 * compare's report as a reader needs it: bootstrap confidence intervals over users and paired tests against
 * the first recipe (checked against the normal approximation computed here from first principles), honest
 * wording for one seed with a warning below 3 seeds, y scales from zero, identical curves told apart by dash
 * and marker, and diagnostics laid out two per row with their own epoch axes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderReport } from '../src/report/html.ts';
import { BOOTSTRAP_RESAMPLES, bootstrapMean, meanOverSeeds, pairedBootstrap } from '../src/report/inference.ts';
import { curvesSpec, facetedCurvesSpec } from '../src/report/charts/curves.ts';
import { Rng } from '../src/util/rng.ts';
import { handMadeResults, RECIPE_NAMES } from './report-fixture.ts';

function bernoulli(n: number, p: number, seed: number): Float64Array {
  const rng = new Rng(seed);
  return Float64Array.from({ length: n }, () => (rng.next() < p ? 1 : 0));
}

test('bootstrapMean: the 95% interval matches mean ± 1.96·sd/√n, is deterministic, and collapses on constants', () => {
  const x = bernoulli(4000, 0.3, 1);
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let ss = 0;
  for (const v of x) ss += (v - m) ** 2;
  const se = Math.sqrt(ss / (x.length - 1) / x.length);
  const ci = bootstrapMean(x);
  assert.ok(Math.abs(ci.mean - m) < 1e-12);
  assert.ok(ci.lo < m && m < ci.hi);
  const half = (ci.hi - ci.lo) / 2;
  assert.ok(Math.abs(half - 1.96 * se) < 0.15 * 1.96 * se, `half width ${half} vs normal ${1.96 * se}`);
  assert.deepEqual(bootstrapMean(x), ci, 'fixed seed: the same interval every time');
  assert.deepEqual(bootstrapMean(new Float64Array(50).fill(0.25)), { mean: 0.25, lo: 0.25, hi: 0.25 });
});

test('pairedBootstrap: finds a planted per-user gain, not a difference between identical recipes, sign kept', () => {
  const rng = new Rng(7);
  const a = bernoulli(3000, 0.2, 3);
  const b = Float64Array.from(a, (v) => (v === 0 && rng.next() < 0.05 ? 1 : v)); // b finds 5% more users' items
  const up = pairedBootstrap(a, b);
  assert.ok(up.mean > 0 && up.lo > 0, JSON.stringify(up));
  assert.equal(up.p, 1 / BOOTSTRAP_RESAMPLES);
  const down = pairedBootstrap(b, a);
  assert.ok(down.mean < 0 && down.hi < 0 && down.p === up.p);
  assert.deepEqual(pairedBootstrap(a, a), { mean: 0, lo: 0, hi: 0, p: 1 });
  // Noise only: a shuffled copy differs per user but not on average beyond chance.
  const c = Float64Array.from(a);
  for (let i = c.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [c[i], c[j]] = [c[j], c[i]];
  }
  const null_ = pairedBootstrap(a, c);
  assert.ok(null_.lo <= 0 && null_.hi >= 0 && null_.p > 0.05, JSON.stringify(null_));
  assert.deepEqual(Array.from(meanOverSeeds([Float64Array.of(0, 1), Float64Array.of(1, 1)])), [0.5, 1]);
});

test('report: CI and paired-test table, one-seed wording and warning', async () => {
  const r = handMadeResults();
  r.inference = {
    metrics: ['recall@20', 'ndcg@20'],
    resamples: 1000,
    seed: 1,
    users: 234,
    reference: RECIPE_NAMES[0],
    recipes: RECIPE_NAMES.map((name, i) => ({
      name,
      ci: { 'recall@20': { mean: 0.3 + i / 100, lo: 0.28, hi: 0.32 + i / 100 }, 'ndcg@20': { mean: 0.2, lo: 0.19, hi: 0.21 } },
      vsReference: i === 0 ? null : { 'recall@20': { mean: i / 100, lo: -0.001, hi: 0.02, p: i === 1 ? 0.0004 : 0.2 }, 'ndcg@20': { mean: 0, lo: -0.01, hi: 0.01, p: 0.9 } },
    })),
  };
  let html = await renderReport(r);
  assert.match(html, /Confidence intervals and paired tests/);
  assert.match(html, /recall@20 \[95% CI\]/);
  assert.match(html, /Δ recall@20 vs in-batch/);
  assert.match(html, /&lt; 0\.001/);
  assert.match(html, /mean ± std over 3 seeds/);
  assert.doesNotMatch(html, /class="warn">Only/, 'no warning with 3 seeds');

  r.config.seeds = [1];
  html = await renderReport(r);
  assert.doesNotMatch(html, /over 1 seed/, 'one seed is no mean ± std');
  assert.match(html, /from 1 seed \(one run per recipe: no spread over seeds\)/);
  assert.match(html, /class="warn">Only 1 seed: .*--seeds 3/);
  r.config.seeds = [1, 2];
  assert.match(await renderReport(r), /class="warn">Only 2 seeds/);
});

test('charts: y from zero, recipes told apart by dash and marker, diagnostics two per row with own epoch axes', () => {
  const names = ['a', 'b'];
  const rows = [1, 2, 3].flatMap((epoch) => names.map((label) => ({ label, epoch, mean: 0.5 + epoch * 0.001, std: 0 })));
  const spec = curvesSpec(rows, names, 'recall@20') as any;
  const line = spec.layer.find((l: any) => l.mark.type === 'line');
  const point = spec.layer.find((l: any) => l.mark.type === 'point');
  assert.equal(line.encoding.y.scale.zero, true);
  assert.deepEqual(line.encoding.strokeDash.scale.domain, names);
  assert.notDeepEqual(line.encoding.strokeDash.scale.range[0], line.encoding.strokeDash.scale.range[1], 'identical curves get different dashes');
  assert.notEqual(point.encoding.shape.scale.range[0], point.encoding.shape.scale.range[1]);
  const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'];
  const f = facetedCurvesSpec(keys.flatMap((key) => rows.map((r) => ({ ...r, key }))), names) as any;
  assert.equal(f.columns, 2);
  assert.equal(f.resolve.axis.x, 'independent', 'each panel has its own epoch axis: none hangs under an empty cell');
  assert.equal(f.resolve.scale.y, 'independent');
});
