/**
 * The loss chain as the training step assembles it (columns → scale → logQ → masks → loss), for every
 * recipe feature, against an independent float64 reference on every backend; finite differences; and tests
 * that fail when a correction or a source is a no-op.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import type { Backend, ContrastiveArgs } from '../src/compute/backend.ts';
import { DebiasedLoss } from '../src/loss/debiased.ts';
import { applyLogQ, logits, logitsBackward, softmaxCrossEntropy } from './helpers/loss-reference.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { parseRecipe, type Recipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';
import { QueueSource } from '../src/sampling/queue.ts';
import { testBackends } from './helpers/backends.ts';

const backends = () => testBackends({ wasm: true });

const NUM_USERS = 10;
const NUM_ITEMS = 20;
// A batch with planted collisions: item 3 twice, user 1 three times.
const users = Int32Array.from([0, 1, 1, 2, 1, 4, 5, 6]);
const items = Int32Array.from([3, 7, 8, 3, 9, 10, 11, 12]);
const trainItems = Int32Array.from([3, 3, 3, 3, 7, 8, 9, 10, 11, 12, 3, 7]);

function makeStep(backend: Backend, recipe: Recipe, seed = 1) {
  const model = new TwoTowerModel({
    user: { vocabSize: NUM_USERS, idDim: 6, features: [], mlp: [] },
    item: { vocabSize: NUM_ITEMS, idDim: 6, features: [], mlp: [] },
    sparseOptimizer: 'adagrad',
    sparseLr: 0.1,
    denseLr: 0.01,
    seed,
  });
  model.init();
  // Larger init so similarities spread out (the FN threshold then has something to cut).
  for (const t of [model.user.idTable, model.item.idTable]) for (let i = 0; i < t.data.length; i++) t.data[i] *= 20;
  const itemFeatures = [{ name: 'cat', vocab: { size: 3 } as any, values: Int32Array.from({ length: NUM_ITEMS }, (_, j) => j % 3) }];
  const set = buildSources(recipe, { numItems: NUM_ITEMS, trainItems, itemFeatures, dim: 6 });
  return { step: new TrainStep(backend, model, recipe, set), set, model };
}

/** Independent float64 reference of the user→item chain from the raw batch facts. */
function reference(r: Recipe, a: ContrastiveArgs, colIds: Int32Array, colUsers: Int32Array, nItemCols: number, logq: Float32Array, debiasedTau: number | null) {
  const { B, N, d } = a;
  const inBatch = r.sources.some((s) => s.type === 'in-batch');
  const same = r.sources.some((s) => s.type === 'same-tower');
  const scale = 1 / r.temperature;
  let z = logits(a.q, a.c, B, N, d, scale);
  const sim = logits(a.q, a.c, B, N, d, 1);
  if (r.corrections.logQ) z = applyLogQ(z, B, N, Float64Array.from({ length: N }, (_, j) => (j < nItemCols ? logq[j] : 0)));
  const fn = r.corrections.fnMask;
  for (let i = 0; i < B; i++)
    for (let j = 0; j < N; j++) {
      if (j === i) continue;
      let off = false;
      if (j < nItemCols) {
        if (r.corrections.maskSameItem && colIds[j] === items[i]) off = true;
        if (!inBatch && j < B) off = true;
        else if (inBatch && r.corrections.maskSameUser && colUsers[j] >= 0 && colUsers[j] === users[i]) off = true;
      } else if (same) {
        const k = j - nItemCols;
        if (k === i || items[k] === items[i] || (r.corrections.maskSameUser && inBatch && users[k] === users[i])) off = true;
      }
      if (fn && fn.threshold !== undefined && sim[i * N + j] > fn.threshold) off = true;
      if (fn && fn.margin !== undefined && sim[i * N + j] > sim[i * N + i] - fn.margin) off = true;
      if (off) z[i * N + j] = -Infinity;
    }
  const pos = Array.from({ length: B }, (_, i) => i);
  if (debiasedTau === null) {
    const ce = softmaxCrossEntropy(z, B, N, pos);
    return { loss: ce.loss, ...logitsBackward(ce.dz, a.q, a.c, B, N, d, scale) };
  }
  // Debiased (Chuang et al. 2020), float64, straight from the formula.
  const dz = new Float64Array(B * N);
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const P = Math.exp(z[i * N + i]);
    let S = 0;
    let M = 0;
    for (let j = 0; j < N; j++) if (j !== i && z[i * N + j] !== -Infinity) (S += Math.exp(z[i * N + j])), M++;
    const raw = (S - debiasedTau * M * P) / (1 - debiasedTau);
    const floor = M * Math.exp(-scale);
    const Ng = Math.max(raw, floor);
    loss += -Math.log(P / (P + Ng)) / B;
    if (raw >= floor) {
      dz[i * N + i] = (-1 + (P - (debiasedTau * M * P) / (1 - debiasedTau)) / (P + Ng)) / B;
      for (let j = 0; j < N; j++) if (j !== i && z[i * N + j] !== -Infinity) dz[i * N + j] = Math.exp(z[i * N + j]) / ((1 - debiasedTau) * (P + Ng)) / B;
    } else dz[i * N + i] = (-1 + P / (P + Ng)) / B;
  }
  return { loss, ...logitsBackward(dz, a.q, a.c, B, N, d, scale) };
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

const RECIPES: Record<string, unknown> = {
  'plain in-batch': { corrections: { maskSameItem: false, maskSameUser: false } },
  'masks': {},
  'masks + logQ': { corrections: { logQ: {} } },
  'mixed uniform + popularity + logQ': { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 5 }, { type: 'popularity', n: 4, alpha: 0.75 }], corrections: { logQ: {} } },
  'uniform only (no in-batch)': { sources: [{ type: 'uniform', n: 6 }], corrections: { logQ: {} } },
  'stratified + logQ': { sources: [{ type: 'in-batch' }, { type: 'stratified', n: 2, column: 'cat' }], corrections: { logQ: {} } },
  'same-tower': { sources: [{ type: 'in-batch' }, { type: 'same-tower' }] },
  'FN threshold + margin': { corrections: { fnMask: { threshold: 0.5, margin: 0.1 } } },
  'debiased': { loss: { type: 'debiased', tauPlus: 0.1 } },
  'debiased + logQ + same-tower': { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], corrections: { logQ: {} }, loss: { type: 'debiased', tauPlus: 0.05 } },
};

for (const [name, raw] of Object.entries(RECIPES)) {
  test(`loss chain as the step assembles it matches the float64 reference: ${name}`, async () => {
    const r = parseRecipe({ temperature: 0.5, ...(raw as object) });
    for (const b of await backends()) {
      const { step } = makeStep(b, r);
      const { args, cols } = step.inspect(users, items, new Rng(4));
      const ref = reference(r, args, cols.ids, cols.userKey, cols.N, cols.logq, r.loss.type === 'debiased' ? r.loss.tauPlus : null);
      const dq = new Float32Array(args.B * args.d);
      const dc = new Float32Array(args.N * args.d);
      const run = { ...args, dq, dc };
      const got = r.loss.type === 'debiased' ? new DebiasedLoss(r.loss.tauPlus).run(b, run) : b.contrastive(run);
      assert.ok(Math.abs(got - ref.loss) < 1e-4 * (1 + ref.loss), `${b.name}: loss ${got} vs ${ref.loss}`);
      assertClose(dq, ref.dq, 3e-4, `${b.name} dq`);
      assertClose(dc, ref.dc, 3e-4, `${b.name} dc`);
    }
  });
}

/** Loss of the first training step from identical initial weights, under a recipe. */
async function firstLoss(raw: object, seed = 1): Promise<number> {
  const b = await createJsBackend({ wasm: false });
  const { step } = makeStep(b, parseRecipe({ temperature: 0.5, ...raw }), seed);
  return step.run(users, items, new Rng(9)).loss;
}

test('every correction and source changes the loss (none is a no-op)', async () => {
  const base = await firstLoss({ corrections: { maskSameItem: false, maskSameUser: false } });
  const variants: Record<string, object> = {
    maskSameItem: { corrections: { maskSameItem: true, maskSameUser: false } },
    maskSameUser: { corrections: { maskSameItem: false, maskSameUser: true } },
    logQ: { corrections: { maskSameItem: false, maskSameUser: false, logQ: {} } },
    fnMask: { corrections: { maskSameItem: false, maskSameUser: false, fnMask: { threshold: 0.3 } } },
    uniform: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 8 }], corrections: { maskSameItem: false, maskSameUser: false } },
    popularity: { sources: [{ type: 'in-batch' }, { type: 'popularity', n: 8 }], corrections: { maskSameItem: false, maskSameUser: false } },
    stratified: { sources: [{ type: 'in-batch' }, { type: 'stratified', n: 2, column: 'cat' }], corrections: { maskSameItem: false, maskSameUser: false } },
    'same-tower': { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], corrections: { maskSameItem: false, maskSameUser: false } },
    debiased: { loss: { type: 'debiased', tauPlus: 0.1 }, corrections: { maskSameItem: false, maskSameUser: false } },
    symmetric: { loss: { symmetric: true }, corrections: { maskSameItem: false, maskSameUser: false } },
  };
  for (const [name, v] of Object.entries(variants)) {
    const l = await firstLoss(v);
    assert.ok(Number.isFinite(l) && Math.abs(l - base) > 1e-4, `${name}: loss ${l} equals the plain loss ${base}`);
  }
});

test('queue: negatives come from past batches, with momentum they lag the online tower', async () => {
  const b = await createJsBackend({ wasm: false });
  const r = parseRecipe({ temperature: 0.5, sources: [{ type: 'in-batch' }, { type: 'queue', size: 12 }] });
  const { step, set } = makeStep(b, r);
  const first = step.inspect(users, items, new Rng(1));
  assert.equal(first.cols.N, users.length, 'queue empty before the first step');
  step.run(users, items, new Rng(2));
  step.run(users, items, new Rng(3));
  const later = step.inspect(users, items, new Rng(1));
  assert.equal(later.cols.N, users.length + 12, 'queue full after 16 positives');
  assert.equal(later.cols.Nt, users.length, 'queue columns are fixed embeddings');
  assert.ok(set.sources.some((s) => s instanceof QueueSource));
  // Same-user masking reaches the queue: user 1's queued rows are masked for user 1's rows.
  const masks = later.args.masks.find((m) => m.rowKey === users)!;
  assert.ok([...masks.colKey.subarray(users.length)].includes(1));

  const rm = parseRecipe({ temperature: 0.5, sources: [{ type: 'in-batch' }, { type: 'queue', size: 8, momentum: 0.9 }] });
  const withM = makeStep(b, rm);
  for (let k = 0; k < 5; k++) withM.step.run(users, items, new Rng(k));
  const qm = (withM.set.sources.find((s) => s instanceof QueueSource) as QueueSource).sample({ users, items, step: 1, rng: new Rng(0) });
  const online = new Float32Array(items.length * 6);
  withM.model.item.embed(b, items, online);
  let diff = 0;
  for (let k = 0; k < online.length; k++) diff += Math.abs(online[k] - qm.embeddings![k]);
  assert.ok(diff > 1e-3, 'momentum embeddings differ from the online tower');
});

test('finite differences through the same-tower loss (queries as rows and as columns)', async () => {
  const b = await createJsBackend({ wasm: false });
  const r = parseRecipe({ temperature: 0.5, sources: [{ type: 'in-batch' }, { type: 'same-tower' }], corrections: { logQ: {} } });
  const { step, model } = makeStep(b, r);
  const { args } = step.inspect(users, items, new Rng(4));
  const dq = new Float32Array(args.B * args.d);
  const dc = new Float32Array(args.N * args.d);
  b.contrastive({ ...args, dq, dc });
  const h = 1e-3;
  // q appears as rows and (same-tower) as columns N..N+B: total gradient = dq + dc[block].
  const N = args.N - args.B;
  for (const idx of [0, 7, 20]) {
    const analytic = dq[idx] + dc[N * args.d + idx];
    const f = (delta: number) => {
      const q = args.q.slice();
      q[idx] += delta;
      const c = args.c.slice();
      c[N * args.d + idx] += delta;
      return b.contrastive({ ...args, q, c, dq: null, dc: null });
    };
    const fd = (f(h) - f(-h)) / (2 * h);
    assert.ok(Math.abs(fd - analytic) < 2e-3 * (1 + Math.abs(fd)), `q[${idx}]: ${analytic} vs fd ${fd}`);
  }
  void model;
});
