/**
 * `towerlab compare` end to end on tiny synthetic data: two recipes × two seeds × two epochs on one split,
 * then results.json (aggregates consistent with the per-seed runs), the HTML report, progress lines on
 * stderr, the --json last line, and one-line user errors naming the bad file or option.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'towerlab.mjs');
const DATA = 'synthetic:users=300,items=200,clusters=5,zipf=1,seed=1';
const RECIPES = [join(ROOT, 'recipes', 'in-batch.json'), join(ROOT, 'recipes', 'mixed-uniform.json')];
const dir = mkdtempSync(join(tmpdir(), 'towerlab-compare-'));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('compare: every recipe × seed on one split, results.json and a report', () => {
  const r = cli(['compare', '--data', DATA, '--recipes', ...RECIPES, '--epochs', '2', '--seeds', '2', '--seed', '1', '--batch-size', '256', '--out', 'rep', '--json']);
  assert.equal(r.code, 0, r.err);
  for (let i = 1; i <= 4; i++) assert.match(r.err, new RegExp(`^run ${i}/4: `, 'm'), `progress line for run ${i}`);
  assert.match(r.err, /^run 3\/4: in-batch\+uniform\+logQ seed 1$/m);

  const lines = r.out.trim().split('\n');
  const summary = JSON.parse(lines[lines.length - 1]);
  assert.deepEqual(summary.recipes.map((x: any) => [x.name, x.runs]), [['in-batch', 2], ['in-batch+uniform+logQ', 2]]);
  assert.equal(summary.report, join('rep', 'index.html'));
  assert.ok(summary.recipes.every((x: any) => x.examples_per_s.mean > 0 && typeof x.metrics['recall@20'].mean === 'number'));
  assert.equal(typeof summary.popularity['recall@20'], 'number');

  assert.deepEqual(readdirSync(join(dir, 'rep')).sort(), ['index.html', 'results.json'], 'no temporary files left');
  const res = JSON.parse(readFileSync(join(dir, 'rep', 'results.json'), 'utf8'));
  assert.equal(res.complete, true);
  assert.deepEqual(res.config.seeds, [1, 2]);
  assert.equal(res.data.users, 300);
  for (const rec of res.recipes) {
    assert.deepEqual(rec.runs.map((x: any) => x.seed), [1, 2]);
    const vals = rec.runs.map((x: any) => x.metrics['recall@20']);
    const s = rec.metrics['recall@20'];
    assert.deepEqual(s.values, vals);
    assert.ok(Math.abs(s.mean - (vals[0] + vals[1]) / 2) < 1e-12);
    assert.ok(Math.abs(s.std - Math.abs(vals[0] - vals[1]) / Math.SQRT2) < 1e-12);
    assert.deepEqual(rec.curve.points.map((p: any) => p.epoch), [1, 2]);
    assert.equal(rec.calibration.k, 20);
    const shares = rec.calibration.deciles.map((d: any) => d.mean);
    assert.equal(shares.length, 10);
    assert.ok(Math.abs(shares.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-9);
  }
  // Same split for every run: one popularity baseline, identical across the four runs.
  assert.equal(res.popularity['recall@20'].n, 4);
  assert.equal(res.popularity['recall@20'].std, 0);
  assert.equal(res.catalogue.interactionShare.length, 10);
  assert.ok(res.catalogue.interactionShare[0] > res.catalogue.interactionShare[9], 'zipf data: the head decile has the most interactions');

  // Bootstrap over the same test users: a CI per recipe, a paired test of the second against the first.
  const inf = res.inference;
  assert.equal(inf.reference, 'in-batch');
  assert.equal(inf.users, res.data.testUsers);
  for (const rec of inf.recipes) {
    const ci = rec.ci['recall@20'];
    assert.ok(ci.lo <= ci.mean && ci.mean <= ci.hi, JSON.stringify(ci));
    const m = res.recipes.find((x: any) => x.name === rec.name).metrics['recall@20'].mean;
    assert.ok(Math.abs(ci.mean - m) < 1e-9, 'the CI is around the reported mean over seeds');
  }
  assert.equal(inf.recipes[0].vsReference, null);
  const t = inf.recipes[1].vsReference['recall@20'];
  assert.ok(t.p > 0 && t.p <= 1 && t.lo <= t.mean && t.mean <= t.hi, JSON.stringify(t));
  assert.equal(res.topItems.recipes[0].items.length, 10);

  const html = readFileSync(join(dir, 'rep', 'index.html'), 'utf8');
  assert.ok((html.match(/<svg/g) ?? []).length >= 4, 'bars, curves, calibration, cost (+ diagnostics when recorded)');
  assert.match(html, /in-batch\+uniform\+logQ/);
  assert.match(html, /Confidence intervals and paired tests/);
  assert.match(html, /class="warn">Only 2 seeds/);
});

test('compare: user errors are one line naming the file or option', () => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ temperature: -1 }));
  const cases: [string[], RegExp][] = [
    [['--recipes', RECIPES[0], bad], /bad\.json: field 'temperature'/],
    [['--recipes', join(dir, 'missing.json')], /missing\.json: cannot read recipe file/],
    [['--recipes', RECIPES[0], '--seeds', '0'], /--seeds: expected a number of seeds/],
    [['--recipes', RECIPES[0], '--seeds', '1,1'], /--seeds: '1,1' repeats a seed/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(['compare', '--data', DATA, '--out', 'never', ...args]);
    assert.equal(r.code, 2, `exit code 2 expected for ${args.join(' ')}: ${r.err}`);
    assert.match(r.err, pattern);
    assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
  }
  assert.ok(!existsSync(join(dir, 'never')), 'nothing written on a user error');
});
