/**
 * Resuming a run restores all learned state — the streaming logQ estimate (Yi et al. 2019), the memory queue's
 * contents and the momentum tower, and BatchSampler's graphs are rebuilt as they were — so the resumed run ends bit-identical to an uninterrupted one (without them
 * the estimate restarts from its prior, the queue from empty, and the weights differ).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { defaultModelOptions } from '../src/model/build.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { StreamingFrequency } from '../src/sampling/frequency.ts';
import { runExperiment } from '../src/train/experiment.ts';

test('streaming frequency state round-trips through snapshot/restore', () => {
  const a = new StreamingFrequency(50, 0.1);
  for (let t = 1; t <= 20; t++) a.observe(Int32Array.from([t % 7, (t * 3) % 50, 1]), t);
  const b = new StreamingFrequency(50, 0.1);
  b.restore(a.snapshot());
  const ids = Int32Array.from({ length: 50 }, (_, i) => i);
  const oa = new Float32Array(50);
  const ob = new Float32Array(50);
  a.logExpectedCount(ids, 8, oa);
  b.logExpectedCount(ids, 8, ob);
  assert.deepEqual(ob, oa);
  assert.throws(() => new StreamingFrequency(40, 0.1).restore(a.snapshot()), /50 slots/);
});

const RESUMABLE: Array<[string, object]> = [
  ['streaming logQ', { sources: [{ type: 'in-batch' }], corrections: { logQ: { estimator: 'streaming', alpha: 0.05 } } }],
  ['a momentum queue', { sources: [{ type: 'in-batch' }, { type: 'queue', size: 256, momentum: 0.9 }], corrections: { logQ: {} } }],
  ['BatchSampler rwr batches', { sources: [{ type: 'in-batch' }], batchSampler: { type: 'rwr', candidates: 64, neighbours: 8, refreshEvery: 5, warmupEpochs: 1 } }],
];

for (const [what, spec] of RESUMABLE) {
  test(`a resumed run with ${what} matches the uninterrupted run exactly`, async () => {
    const data = generateSynthetic({ users: 300, items: 200, clusters: 6, zipf: 1, seed: 4 });
    const recipe = parseRecipe(spec);
    const dir = mkdtempSync(join(tmpdir(), 'towerlab-resume-'));
    try {
      const run = (epochs: number, out: string, resume: boolean) =>
        runExperiment({
          data: { path: 'synthetic' },
          loaded: data,
          split: { kind: 'random', val: 0.1, test: 0.1, seed: 1 },
          recipe,
          model: { ...defaultModelOptions, dim: 16, mlp: [16], seed: 1 },
          train: { epochs, batchSize: 128, seed: 2, evalEvery: 0, patience: 0, valMetric: 'recall@20', valMaxUsers: 100, resume, progress: 'none', logEvery: 0 },
          ks: [20],
          out,
        });
      const full = await run(3, join(dir, 'a'), false);
      await run(2, join(dir, 'b'), false);
      const resumed = await run(3, join(dir, 'b'), true);
      const ta = full.model.tensors(false);
      const tb = resumed.model.tensors(false);
      for (let i = 0; i < ta.length; i++) assert.deepEqual(tb[i][1], ta[i][1], `tensor ${ta[i][0]} differs after resume`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
