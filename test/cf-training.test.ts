/**
 * What collaborative filtering adds to the two-tower step: the full-catalogue softmax source (loss against a
 * float64 reference from the towers' outputs; training lowers it), the L2 penalty (shrinks, never grows, the
 * rows a step uses), and learning-rate schedules (values from their definitions).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EmbeddingTable } from '../src/model/embedding-table.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { lrFactor } from '../src/train/lr-schedule.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';
import { testBackends } from './helpers/backends.ts';

const backends = () => testBackends();

const U = 12;
const I = 30;
const D = 5;

function model(mlp: number[] = []) {
  const m = new TwoTowerModel({
    user: { vocabSize: U, idDim: D, features: [], mlp },
    item: { vocabSize: I, idDim: D, features: [], mlp },
    sparseOptimizer: 'adagrad',
    sparseLr: 0.2,
    denseLr: 0.01,
    seed: 3,
  });
  m.init();
  return m;
}

/** float64: mean over rows of log Σ_j exp(s_ij / T) − s_i,target / T, with s the cosine of the raw embeddings. */
function referenceLoss(m: TwoTowerModel, users: Int32Array, items: Int32Array, T: number): number {
  const norm = (t: Float32Array, r: number) => {
    const v = Array.from(t.subarray(r * D, r * D + D), Number);
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / n);
  };
  let total = 0;
  for (let i = 0; i < users.length; i++) {
    const q = norm(m.user.idTable.data, users[i]);
    const z = Array.from({ length: I }, (_, j) => norm(m.item.idTable.data, j).reduce((s, x, k) => s + x * q[k], 0) / T);
    const mx = Math.max(...z);
    total += mx + Math.log(z.reduce((s, x) => s + Math.exp(x - mx), 0)) - z[items[i]];
  }
  return total / users.length;
}

test("full-catalogue source: the recipe's precision reaches the kernel (fp32 by default, bf16 when asked)", async () => {
  const users = Int32Array.from([0, 1, 2, 2, 5, 7]);
  const items = Int32Array.from([3, 3, 10, 29, 0, 17]);
  for (const b of await backends()) {
    for (const precision of [undefined, 'fp32', 'bf16'] as const) {
      const recipe = parseRecipe({ temperature: 0.2, sources: [{ type: 'full-catalogue', ...(precision ? { precision } : {}) }] });
      const seen: Array<string | undefined> = [];
      const spy = { ...b, fullSoftmax: (args: Parameters<typeof b.fullSoftmax>[0]) => (seen.push(args.precision), b.fullSoftmax(args)) };
      new TrainStep(spy, model(), recipe, buildSources(recipe, { numItems: I, trainItems: items })).run(users, items, new Rng(1));
      assert.deepEqual(seen, [precision ?? 'fp32'], `${b.name}: precision ${precision}`);
    }
  }
  assert.throws(() => parseRecipe({ sources: [{ type: 'full-catalogue', precision: 'fp16' }] }), /precision/);
});

test('full-catalogue source: the step’s loss is the exact softmax over every item, and training lowers it', async () => {
  const recipe = parseRecipe({ temperature: 0.2, sources: [{ type: 'full-catalogue' }] });
  const users = Int32Array.from([0, 1, 2, 2, 5, 7]);
  const items = Int32Array.from([3, 3, 10, 29, 0, 17]);
  for (const b of await backends()) {
    const m = model();
    const set = buildSources(recipe, { numItems: I, trainItems: items });
    assert.equal(set.fullCatalogue, true);
    const step = new TrainStep(b, m, recipe, set);
    const expected = referenceLoss(m, users, items, 0.2);
    const r = step.run(users, items, new Rng(1));
    assert.equal(r.columns, I, 'every item is a column');
    assert.ok(Math.abs(r.loss - expected) < 1e-4, `${b.name}: loss ${r.loss} vs float64 ${expected}`);
    const after = referenceLoss(m, users, items, 0.2);
    assert.ok(after < expected - 1e-3, `${b.name}: one step lowers the loss (${expected} → ${after}); a no-op or a flipped gradient would not`);
    // Items that are no row's target still move: they are negatives of every row.
    const m2 = model();
    const before = m2.item.idTable.data.slice(20 * D, 21 * D);
    new TrainStep(b, m2, recipe, buildSources(recipe, { numItems: I, trainItems: items })).run(users, items, new Rng(1));
    assert.notDeepEqual(Array.from(m2.item.idTable.data.subarray(20 * D, 21 * D)), Array.from(before));
  }
});

test('the two-tower step refuses full-catalogue options it would otherwise ignore', async () => {
  const b = (await backends())[0];
  for (const [r, re] of [
    [{ sources: [{ type: 'full-catalogue' }], loss: { symmetric: true } }, /loss\.symmetric/],
    [{ sources: [{ type: 'full-catalogue' }], corrections: { fnMask: { threshold: 0.9 } } }, /fnMask/],
  ] as const) {
    const recipe = parseRecipe(r);
    assert.throws(() => new TrainStep(b, model(), recipe, buildSources(recipe, { numItems: I, trainItems: Int32Array.from([1]) })), re);
  }
});

test('L2 penalty: with a zero data gradient the used rows shrink by exactly the optimizer step; untouched rows stay', async () => {
  const b = (await backends())[0];
  const mk = (l2: number) => {
    const t = new EmbeddingTable('t', 4, 3, { kind: 'lazyadam', lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-12, l2 });
    t.data.set([0.5, -0.2, 0.1, 1, 1, 1, -0.3, 0.4, -0.6, 2, 2, 2]);
    return t;
  };
  const ids = Int32Array.from([0, 2]);
  const zeros = new Float32Array(6);
  const t = mk(0.1);
  const before = t.data.slice();
  t.applyGradients(b, ids, zeros);
  // Lazy Adam's first step moves each coordinate by lr · g/|g| = lr · sign(row) against the penalty's gradient 2λ·row.
  for (const r of [0, 2]) for (let j = 0; j < 3; j++) {
    const x = before[r * 3 + j];
    assert.ok(Math.abs(t.data[r * 3 + j] - (x - 0.01 * Math.sign(x))) < 1e-6, `row ${r} col ${j}`);
  }
  assert.deepEqual(Array.from(t.data.subarray(3, 6)), [1, 1, 1], 'an unused row is not penalised');
  const off = mk(0);
  off.applyGradients(b, ids, zeros);
  assert.deepEqual(Array.from(off.data), Array.from(before), 'l2 = 0 changes nothing');
});

test('learning-rate schedules follow their definitions', () => {
  const total = 100;
  assert.equal(lrFactor({ kind: 'constant', warmup: 0 }, 50, total), 1);
  // Cosine: 0.5(1 + cos(π t)), t = (step − 1)/total.
  for (const s of [1, 26, 51, 76, 100]) assert.ok(Math.abs(lrFactor({ kind: 'cosine', warmup: 0 }, s, total) - 0.5 * (1 + Math.cos((Math.PI * (s - 1)) / total))) < 1e-12);
  assert.ok(lrFactor({ kind: 'cosine', warmup: 0 }, 100, total) < 0.001);
  // Warm-up: linear to 1 over the first 10 % of steps, then the schedule over the rest.
  assert.ok(Math.abs(lrFactor({ kind: 'cosine', warmup: 0.1 }, 5, total) - 0.5) < 1e-12);
  assert.ok(Math.abs(lrFactor({ kind: 'constant', warmup: 0.1 }, 10, total) - 1) < 1e-12);
  assert.ok(lrFactor({ kind: 'cosine', warmup: 0.1 }, 12, total) > 0.99);
  assert.equal(lrFactor({ kind: 'step', warmup: 0 }, 40, total), 1);
  assert.equal(lrFactor({ kind: 'step', warmup: 0 }, 60, total), 0.1);
  assert.equal(lrFactor({ kind: 'step', warmup: 0 }, 90, total), 0.01);
});
