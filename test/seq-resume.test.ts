/**
 * Checkpoints and resume for sequence towers go through the one training loop (src/train/loop.ts): a run
 * stopped after epoch 1 and resumed to epoch 3 ends with exactly the weights, optimiser state and sources'
 * state (queue with its momentum copy) of an uninterrupted 3-epoch run; a missing checkpoint is one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '../src/compute/js.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildTower, defaultSeqModel, loadSeqData } from '../src/seq/experiment.ts';
import { buildObjective } from '../src/seq/objectives.ts';
import { trainSequential, type SeqTrainConfig } from '../src/seq/trainer.ts';
import { readTensorDir } from '../src/model/tensor-file.ts';
import { SEQ_CHECKPOINT_FORMAT } from '../src/seq/trainer.ts';
import { UserError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';

const dir = mkdtempSync(join(tmpdir(), 'towerlab-seq-resume-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('sequence training: stop after epoch 1, resume to 3 = an uninterrupted 3-epoch run (weights, optimiser, queue + momentum)', async () => {
  const rng = new Rng(4);
  const lines = Array.from({ length: 60 }, (_, u) => `u${u} ${Array.from({ length: 5 + rng.int(5) }, (_, k) => ((u % 5) * 6 + k) % 30 + 1).join(' ')}`);
  const path = join(dir, 'log.txt');
  writeFileSync(path, lines.join('\n') + '\n');
  const { data } = await loadSeqData({ path });
  const b = await createJsBackend({ wasm: false });
  const recipe = parseRecipe({ temperature: 0.2, sources: [{ type: 'in-batch' }, { type: 'queue', size: 32, momentum: 0.9 }, { type: 'same-tower' }], loss: { symmetric: true } });
  const base: SeqTrainConfig = { epochs: 3, batchSize: 16, seed: 5, evalEvery: 0, patience: 0, valMetric: 'ndcg@10', valUsers: 50, progress: 'none' };
  const run = (cfg: Partial<SeqTrainConfig>, tower = buildTower({ ...defaultSeqModel, dim: 8, maxLen: 6, blocks: 1, dropout: 0.2, seed: 2 }, data.numItems)) => {
    const objective = buildObjective({ kind: 'softmax', score: 'cosine', recipe }, data, 8);
    const summary = trainSequential({ backend: b, tower, objective, data, score: 'cosine', excludeHistory: false }, { ...base, ...cfg });
    return { tower, summary };
  };
  const full = run({ checkpointDir: join(dir, 'full') });
  run({ epochs: 1, checkpointDir: join(dir, 'split') });
  const resumed = run({ checkpointDir: join(dir, 'split'), resume: true });
  assert.equal(resumed.summary.epochs, 3);
  assert.equal(resumed.summary.steps, full.summary.steps);
  const a = readTensorDir(join(dir, 'full'), SEQ_CHECKPOINT_FORMAT, 1).arrays;
  const c = readTensorDir(join(dir, 'split'), SEQ_CHECKPOINT_FORMAT, 1).arrays;
  assert.deepEqual([...a.keys()].sort(), [...c.keys()].sort());
  for (const name of ['item.emb', 'opt.item.emb.s1', 'opt.steps', 'train.queue.emb', 'train.queue.ids', 'train.momentum.table0']) assert.ok(a.has(name), `checkpoint holds ${name}`);
  for (const [name, x] of a) assert.deepEqual(Array.from(c.get(name)!), Array.from(x), `'${name}' differs after resume`);
  full.tower.tensors().forEach(([name, x], i) => assert.deepEqual(Array.from(resumed.tower.tensors()[i][1]), Array.from(x), `tower '${name}'`));
  assert.throws(
    () => run({ checkpointDir: join(dir, 'none'), resume: true }),
    (e: unknown) => e instanceof UserError && /--resume: no checkpoint found/.test(e.message),
  );
});
