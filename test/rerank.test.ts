/** LCE reranker: group loss and gradients against a float64 reference, and a planted signal it must find. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import { getBackend } from '../src/compute/index.ts';
import { loadNativeBackend } from '../src/compute/native.ts';
import { skipWithoutNative } from './helpers/native-required.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { ModelRetriever } from '../src/mine/model-retriever.ts';
import { buildModel, defaultModelOptions } from '../src/model/build.ts';
import { featureDim, pairFeatures } from '../src/rerank/features.ts';
import { LceReranker, lceLoss } from '../src/rerank/lce.ts';
import { drawGroups, evaluateStages, stageContext, trainReranker } from '../src/rerank/pipeline.ts';
import { Rng } from '../src/util/rng.ts';

/** Float64 forward of the same MLP (ReLU hidden layers, linear output) and the LCE group loss. */
function reference(layers: Array<{ w: Float64Array; b: Float64Array; inDim: number; outDim: number; relu: boolean }>, x: Float64Array, rows: number, Q: number, G: number, tau: number): number {
  let h = x;
  for (const l of layers) {
    const y = new Float64Array(rows * l.outDim);
    for (let r = 0; r < rows; r++)
      for (let o = 0; o < l.outDim; o++) {
        let s = l.b[o];
        for (let i = 0; i < l.inDim; i++) s += h[r * l.inDim + i] * l.w[i * l.outDim + o];
        y[r * l.outDim + o] = l.relu ? Math.max(0, s) : s;
      }
    h = y;
  }
  let loss = 0;
  for (let q = 0; q < Q; q++) {
    let z = 0;
    for (let g = 0; g < G; g++) z += Math.exp(h[q * G + g] / tau);
    loss += Math.log(z) - h[q * G] / tau;
  }
  return loss / Q;
}

for (const kind of ['js', 'native'] as const) {
  test(`LCE loss and gradients match a float64 reference by finite differences (${kind} backend)`, async (t) => {
    if (kind === 'native' && skipWithoutNative(t, loadNativeBackend() !== null)) return;
    const backend = kind === 'js' ? await createJsBackend({ wasm: false }) : await getBackend('native');
    const inDim = 7;
    const Q = 3;
    const G = 4;
    const tau = 0.5;
    const rer = new LceReranker(backend, { inDim, hidden: [6, 5], temperature: tau, lr: 0.01, seed: 3 });
    const rng = new Rng(11);
    const x = Float32Array.from({ length: Q * G * inDim }, () => rng.normal());
    const s = rer.forward(x, Q * G);
    const ds = new Float32Array(Q * G);
    const loss = lceLoss(s, Q, G, tau, ds);
    rer.zeroGrad();
    rer.backward(x, ds, Q * G);
    const ref = () => rer.layers.map((l) => ({ w: Float64Array.from(l.w), b: Float64Array.from(l.b), inDim: l.inDim, outDim: l.outDim, relu: l.relu }));
    const x64 = Float64Array.from(x);
    const base = ref();
    assert.ok(Math.abs(loss - reference(base, x64, Q * G, Q, G, tau)) < 1e-5, 'loss value');
    const eps = 1e-6;
    let checked = 0;
    base.forEach((l, li) => {
      for (const [name, arr, grad] of [['w', l.w, rer.layers[li].dw], ['b', l.b, rer.layers[li].db]] as const) {
        for (let i = 0; i < arr.length; i += Math.max(1, Math.floor(arr.length / 9))) {
          const keep = arr[i];
          arr[i] = keep + eps;
          const up = reference(base, x64, Q * G, Q, G, tau);
          arr[i] = keep - eps;
          const down = reference(base, x64, Q * G, Q, G, tau);
          arr[i] = keep;
          const fd = (up - down) / (2 * eps);
          assert.ok(Math.abs(fd - grad[i]) < 1e-4 + 1e-3 * Math.abs(fd), `layer ${li} ${name}[${i}]: analytic ${grad[i]} vs finite difference ${fd}`);
          checked++;
        }
      }
    });
    assert.ok(checked > 30);
  });
}

test('the softmax over a group: the gradient sums to zero per group and is negative only at the positive', () => {
  const s = Float32Array.of(1, 2, 0.5, -1, 0, 0);
  const ds = new Float32Array(6);
  const loss = lceLoss(s, 2, 3, 1, ds);
  const l0 = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(0.5)) - 1;
  const l1 = Math.log(Math.exp(-1) + 2) + 1;
  assert.ok(Math.abs(loss - (l0 + l1) / 2) < 1e-6);
  assert.ok(Math.abs(ds[0] + ds[1] + ds[2]) < 1e-7 && ds[0] < 0 && ds[1] > 0 && ds[2] > 0);
});

test('retrieve → rerank: LCE learns a planted signal the retriever cannot see (popular items are the positives)', async () => {
  const backend = await createJsBackend({ wasm: false });
  const users = 150;
  const items = 300;
  const model = buildModel({ ...defaultModelOptions, dim: 16, mlp: [], useFeatures: false, seed: 5 }, users, items, [], []);
  const none = csrFromPairs(users, new Int32Array(0), new Int32Array(0));
  const ret = new ModelRetriever(backend, model, { exclude: none });
  // Planted: one item in five is "good" (high count); a user's positives = the good items of its top-50.
  const rng = new Rng(2);
  const counts = Float32Array.from({ length: items }, (_, i) => (i % 5 === 0 ? 50 + rng.int(50) : rng.int(5)));
  const all = Int32Array.from({ length: users }, (_, u) => u);
  const ctx = stageContext([ret], all, 50, counts);
  const pu: number[] = [];
  const pi: number[] = [];
  for (let u = 0; u < users; u++) for (let i = 0; i < 50; i++) {
    const id = ctx.lists.ids[u * 50 + i];
    if (id % 5 === 0) (pu.push(u), pi.push(id));
  }
  const truth = csrFromPairs(users, Int32Array.from(pu), Int32Array.from(pi), true);
  // Train on the first 100 users' pairs, evaluate on the last 50.
  const trainN = pu.findIndex((u) => u >= 100);
  const groups = drawGroups(ctx, Int32Array.from(pu.slice(0, trainN)), Int32Array.from(pi.slice(0, trainN)), truth, 6, new Rng(1));
  assert.ok(groups.Q > 100);
  for (let q = 0; q < groups.Q; q++) for (let g = 1; g < 6; g++) assert.ok(groups.items[q * 6 + g] % 5 !== 0, 'negatives are never known positives');
  const rer = new LceReranker(backend, { inDim: featureDim(16, 1), hidden: [32], temperature: 1, lr: 0.01, seed: 1 });
  const losses = trainReranker(rer, ctx, Int32Array.from(pu.slice(0, trainN)), Int32Array.from(pi.slice(0, trainN)), truth, { epochs: 4, batch: 32, G: 6, rng: new Rng(3) });
  assert.ok(losses[losses.length - 1] < losses[0], `loss falls: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  const testCtx = { ...ctx };
  const heldOut = csrFromPairs(users, Int32Array.from(pu.slice(trainN)), Int32Array.from(pi.slice(trainN)), true);
  const m = evaluateStages(rer, testCtx, heldOut, [10]);
  assert.equal(m.users, 50);
  assert.ok(m.rerank['ndcg@10'] > m.retrieve['ndcg@10'] + 0.2, `rerank ${m.rerank['ndcg@10']} vs retrieve ${m.retrieve['ndcg@10']}`);
  // Features are what the reranker sees: the popularity column carries the signal.
  const x = new Float32Array(2 * featureDim(16, 1));
  pairFeatures(ctx.features, Int32Array.of(0, 0), Int32Array.of(0, 1), Int32Array.of(0, 1), x);
  assert.ok(x[featureDim(16, 1) - 1] > x[2 * featureDim(16, 1) - 1]);
});
