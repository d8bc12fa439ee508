/** Frequency estimators for logQ, negative sources, and recipe validation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StreamingFrequency, TrainFrequency } from '../src/sampling/frequency.ts';
import { UniformSource } from '../src/sampling/uniform.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { Rng } from '../src/util/rng.ts';

test('streaming estimator (Yi et al. 2019) converges to the per-batch occurrence probability', () => {
  // Item k appears in a batch with probability p_k; the estimate 1/B[h] must approach p_k.
  const p = [0.9, 0.5, 0.2, 0.05];
  const est = new StreamingFrequency(4, 0.01);
  const rng = new Rng(1);
  for (let t = 1; t <= 20000; t++) {
    const items: number[] = [];
    p.forEach((pk, k) => rng.next() < pk && items.push(k));
    est.observe(Int32Array.from(items), t);
  }
  p.forEach((pk, k) => assert.ok(Math.abs(est.estimate(k) - pk) / pk < 0.2, `item ${k}: ${est.estimate(k)} vs ${pk}`));
  const out = new Float32Array(2);
  est.logExpectedCount(Int32Array.from([0, 3]), 10, out);
  assert.ok(out[0] > out[1], 'frequent item has the larger log Q');
});

test('streaming estimator with a small hash table still ranks frequent above rare (collisions tolerated)', () => {
  const est = new StreamingFrequency(1000, 0.05, 64);
  for (let t = 1; t <= 3000; t++) est.observe(Int32Array.from([7, 100 + (t % 900)]), t);
  assert.ok(est.estimate(7) > 0.5, `frequent item estimate ${est.estimate(7)}`);
});

test('train frequency: log(B·p) with add-one smoothing', () => {
  const f = new TrainFrequency(Int32Array.from([0, 0, 0, 1]), 3);
  const out = new Float32Array(3);
  f.logExpectedCount(Int32Array.from([0, 1, 2]), 10, out);
  const total = 4 + 3;
  assert.ok(Math.abs(out[0] - Math.log((10 * 4) / total)) < 1e-6);
  assert.ok(Math.abs(out[2] - Math.log((10 * 1) / total)) < 1e-6);
});

test('uniform source draws every item and reports log(n/N)', () => {
  const s = new UniformSource(10, 5);
  const seen = new Set<number>();
  const rng = new Rng(2);
  for (let i = 0; i < 50; i++) for (const id of s.sample({ users: new Int32Array(1), items: new Int32Array(1), step: i + 1, rng }).ids) seen.add(id);
  assert.equal(seen.size, 10);
  const c = s.sample({ users: new Int32Array(1), items: new Int32Array(1), step: 1, rng });
  assert.ok(Math.abs(c.logq[0] - Math.log(0.5)) < 1e-6);
});

test('recipe: defaults, composition, and errors naming the field', () => {
  const r = parseRecipe({ corrections: { logQ: { estimator: 'streaming' } }, sources: [{ type: 'in-batch' }, { type: 'uniform', n: 32 }] });
  const set = buildSources(r, { numItems: 100, trainItems: new Int32Array([1, 2, 3]) });
  assert.deepEqual(set.sources.map((s) => s.name), ['in-batch', 'uniform']);
  assert.ok(set.freq instanceof StreamingFrequency);
  assert.throws(() => parseRecipe({ temprature: 0.1 }), /temprature/);
  assert.throws(() => parseRecipe({ sources: [{ type: 'uniform', n: -1 }] }), /sources\.0\.n/);
  assert.throws(() => parseRecipe({ sources: [{ type: 'bogus' }] }), /sources\.0/);
});

test('every recipe shipped in recipes/ is valid', async () => {
  const { readdirSync } = await import('node:fs');
  const { loadRecipe } = await import('../src/recipe/schema.ts');
  const files = readdirSync(new URL('../recipes/', import.meta.url)).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 5);
  for (const f of files) assert.ok(loadRecipe(new URL(`../recipes/${f}`, import.meta.url).pathname).name, f);
});
