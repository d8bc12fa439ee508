/** Negative-sampling diagnostics on data with known answers. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { buildModel, defaultModelOptions } from '../src/model/build.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { computeDiagnostics } from '../src/train/diagnostics.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';

const data = generateSynthetic({ users: 200, items: 300, clusters: 4, zipf: 1.2, seed: 5, perUser: 30 });
const numItems = data.itemVocab.size;
const seen = csrFromPairs(data.userVocab.size, data.users, data.items, true);
const itemCounts = new Float64Array(numItems);
for (const i of data.items) itemCounts[i]++;

async function diagnose(rawRecipe: object) {
  const backend = await createJsBackend({ wasm: false });
  const recipe = parseRecipe(rawRecipe);
  const model = buildModel({ ...defaultModelOptions, dim: 16, mlp: [], useFeatures: false }, data.userVocab.size, numItems, [], []);
  const step = new TrainStep(backend, model, recipe, buildSources(recipe, { numItems, trainItems: data.items, dim: 16 }));
  step.columnCounts = new Float64Array(numItems);
  const rng = new Rng(1);
  for (let s = 0; s < 20; s++) {
    const rows = Int32Array.from({ length: 128 }, () => rng.int(data.users.length));
    step.run(rows.map((r) => data.users[r]), rows.map((r) => data.items[r]), rng);
  }
  return computeDiagnostics({ backend, step, trainUsers: data.users, trainItems: data.items, seen, itemCounts, columnCounts: step.columnCounts, batchSize: 128, batches: 3, seed: 2 });
}

test('same-user masking lowers the false-negative rate; in-batch negatives follow popularity, uniform ones do not', async () => {
  const noMask = await diagnose({ corrections: { maskSameItem: false, maskSameUser: false } });
  const masked = await diagnose({ corrections: { maskSameItem: true, maskSameUser: true } });
  assert.ok(noMask.fnRate > 0, `false negatives exist without masks (${noMask.fnRate})`);
  assert.ok(masked.fnRate < noMask.fnRate, `masking lowers the FN rate: ${masked.fnRate} vs ${noMask.fnRate}`);
  assert.ok(masked.maskedPerRow > 0);
  assert.ok(noMask.negPopCorr > 0.5, `in-batch columns correlate with popularity (${noMask.negPopCorr})`);
  const uniform = await diagnose({ sources: [{ type: 'uniform', n: 128 }] });
  assert.ok(Math.abs(uniform.negPopCorr) < noMask.negPopCorr, `uniform columns less popularity-driven (${uniform.negPopCorr})`);
  for (const d of [noMask, masked, uniform]) {
    assert.ok(d.effectiveNegatives >= 1 && d.effectiveNegatives <= 128 + 128, `effective negatives ${d.effectiveNegatives}`);
    assert.ok(d.negSimMax >= d.negSimMean && d.negSimMax <= 1 + 1e-5);
  }
});
