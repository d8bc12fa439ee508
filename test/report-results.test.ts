/**
 * The comparison results model without training: statistics over seeds, catalogue popularity deciles,
 * per-recipe aggregation (curves, diagnostics, calibration), JSON safety, and the per-item recommendation
 * counts that evaluateRanking returns on request (what the calibration plot is built from).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { evaluateRanking } from '../src/eval/ranking.ts';
import type { Scorer } from '../src/eval/scorer.ts';
import { catalogueDeciles, decileShares, itemDeciles } from '../src/report/calibration.ts';
import { flattenNumeric, resultsJson } from '../src/report/results.ts';
import { stat } from '../src/report/stats.ts';
import { handMadeResults } from './report-fixture.ts';

test('stat: mean and sample std over seeds, skipping missing values', () => {
  const s = stat([1, 2, 3, null, NaN]);
  assert.equal(s.mean, 2);
  assert.equal(s.std, 1);
  assert.equal(s.n, 3);
  assert.deepEqual(s.values, [1, 2, 3, null, null]);
  assert.deepEqual(stat([0.5]), { mean: 0.5, std: 0, n: 1, values: [0.5] });
  assert.deepEqual(stat([null]), { mean: null, std: null, n: 0, values: [null] });
});

test('popularity deciles: ranked by train count, equal item counts, shares sum to 1', () => {
  const counts = Float64Array.from({ length: 20 }, (_, j) => 20 - j); // item 0 most popular
  const dec = itemDeciles(counts);
  assert.deepEqual([...dec.subarray(0, 4)], [0, 0, 1, 1]);
  assert.equal(dec[19], 9);
  const cat = catalogueDeciles(counts);
  assert.deepEqual(cat.items, new Array(10).fill(2));
  assert.ok(Math.abs(cat.interactionShare.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.ok(cat.interactionShare[0] > cat.interactionShare[9]);
  const rec = new Float64Array(20);
  rec[0] = 3;
  rec[19] = 1;
  assert.deepEqual(decileShares(dec, rec), [0.75, 0, 0, 0, 0, 0, 0, 0, 0, 0.25]);
  assert.deepEqual(decileShares(dec, new Float64Array(20)), new Array(10).fill(0));
});

test('evaluateRanking counts top-K recommendations per item only when asked', async () => {
  const backend = await createJsBackend({ wasm: false });
  const scores = [
    [0.9, 0.8, 0.1, 0.0],
    [0.9, 0.1, 0.8, 0.0],
  ];
  const scorer: Scorer = { numItems: 4, scoreUsers: (users, out) => users.forEach((u, r) => out.set(scores[u], r * 4)) };
  const test = csrFromPairs(2, Int32Array.from([0, 1]), Int32Array.from([3, 3]));
  const exclude = csrFromPairs(2, Int32Array.from([1]), Int32Array.from([0])); // user 1 has seen item 0
  const opts = { backend, scorer, test, exclude, ks: [1, 3], itemPopularity: Float64Array.from([4, 3, 2, 1]) };
  assert.equal(evaluateRanking(opts).recommendedCounts, undefined);
  const r = evaluateRanking({ ...opts, countRecommendationsAt: 2 });
  assert.deepEqual([...r.recommendedCounts!], [1, 2, 1, 0]); // user 0: 0, 1; user 1 (item 0 excluded): 2, 1
  assert.deepEqual(r.metrics, evaluateRanking(opts).metrics, 'metrics unchanged by counting');
  assert.deepEqual([...evaluateRanking({ ...opts, countRecommendationsAt: 10 }).recommendedCounts!], [1, 2, 2, 1], 'K beyond the list (maxK 3) counts what is filled');
  assert.throws(() => evaluateRanking({ ...opts, countRecommendationsAt: 0 }), /countRecommendationsAt/);
});

test('summarizeRecipe: metrics, curves, diagnostics and calibration over seeds', () => {
  const r = handMadeResults();
  assert.equal(r.format, 'towerlab-compare');
  const [a, , c] = r.recipes;
  assert.equal(a.runs.length, 3);
  const recall = a.metrics['recall@20'];
  assert.equal(recall.n, 3);
  assert.ok(Math.abs(recall.mean! - 0.208) < 1e-12);
  assert.ok(Math.abs(recall.std! - 0.004) < 1e-12);
  assert.equal(a.metrics['recallTail@20'].mean, null, 'all-NaN metric has no mean');
  assert.deepEqual(a.curve!.points.map((p) => p.epoch), [1, 2, 3]);
  assert.equal(a.curve!.metric, 'recall@20');
  assert.deepEqual(Object.keys(a.diagnostics!.final), ['fnRate', 'effectiveNegatives', 'negSimMean']);
  assert.ok(Math.abs(a.diagnostics!.final.effectiveNegatives.mean! - 150) < 1e-12, 'diagnostics from the last validation');
  assert.equal(c.diagnostics, null);
  assert.equal(r.recipes[1].calibration, null);
  assert.equal(a.calibration!.k, 20);
  assert.ok(Math.abs(a.calibration!.deciles[0].mean! - 0.4) < 1e-12);
  assert.deepEqual(r.summary.recipes.map((x) => x.name), r.recipes.map((x) => x.name));
  assert.ok(Math.abs(r.summary.popularity['recall@20']! - 0.1) < 1e-12);
});

test('results.json is plain JSON: NaN and Infinity become null', () => {
  const r = handMadeResults();
  r.recipes[0].runs[0].metrics['recall@10'] = NaN;
  (r.recipes[0].runs[0] as any).final_loss = Infinity;
  const back = JSON.parse(resultsJson(r));
  assert.equal(back.recipes[0].runs[0].metrics['recall@10'], null);
  assert.equal(back.recipes[0].runs[0].final_loss, null);
});

test('flattenNumeric keeps finite numeric leaves with dotted paths', () => {
  assert.deepEqual(flattenNumeric({ a: 1, b: { c: 2, d: 'x', e: NaN }, f: [1, 2], g: true }), { a: 1, 'b.c': 2 });
  assert.deepEqual(flattenNumeric(undefined), {});
});
