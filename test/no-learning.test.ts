/**
 * "Never learned" detection (src/train/no-learning.ts): the rule on hand-made histories — fires on flat,
 * below-popularity, all-zero and non-finite ones, not on a healthy rising run, a run that learns in its first epoch
 * and plateaus, or a collapse (which collapse.ts reports, in one line) — and end to end through the CLI: `train`
 * `seq` and `text` with a learning rate far too low on small planted data say so in the JSON and in one stderr
 * line, the same commands at sane rates do not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectCollapse } from '../src/train/collapse.ts';
import { detectNoLearning, noLearningJson, noLearningLine, trainingWarningLine, NO_LEARNING_MIN_GAIN } from '../src/train/no-learning.ts';
import { synonymSet } from './helpers/beir-synthetic.ts';
import { writeChainFile } from './helpers/seq-chains.ts';

/** Validations at epochs 1…n with these values and (mean epoch) losses. */
const hist = (vals: number[], losses?: number[]) => vals.map((val, i) => ({ epoch: i + 1, val, loss: losses ? losses[i] : 5 - 0.3 * i }));

// A healthy run recorded by bench:sequential (SASRec+, Beauty, seed 1: validation NDCG@10 and epoch loss).
const HEALTHY = hist([0.0117, 0.0198, 0.0271, 0.0327, 0.0411, 0.0496, 0.0525, 0.0579, 0.062], [8.87, 8.36, 8.0, 7.73, 7.5, 7.29, 7.1, 6.93, 6.76]);

test('a healthy rising run learned (with and without a popularity baseline)', () => {
  for (const baseline of [undefined, 0.0055]) {
    const c = detectNoLearning({ history: HEALTHY, initialLoss: 9.4, baseline });
    assert.equal(c.learned, true);
    assert.equal(c.reason, null);
    assert.equal(c.best, 0.062);
    assert.equal(c.bestEpoch, 9);
  }
});

test('flat: validation stuck at its first value while the loss does not move fires; either half alone does not', () => {
  const flat = detectNoLearning({ history: hist([0.0390, 0.0390, 0.0390, 0.0390], [9.35, 9.15, 8.92, 9.85]), initialLoss: 9.35 });
  assert.equal(flat.learned, false);
  assert.equal(flat.reason, 'flat');
  assert.match(flat.detail!, /never rose 5% above its first \(0\.0390 at epoch 1/);
  // Learnt everything in epoch 1 (the loss fell far below its start), then plateaued: learned.
  assert.equal(detectNoLearning({ history: hist([0.3, 0.3, 0.299, 0.301], [2.0, 1.95, 1.93, 1.9]), initialLoss: 5.9 }).learned, true);
  // Validation rises while the loss stays up (harder negatives over time): learned.
  assert.equal(detectNoLearning({ history: hist([0.02, 0.03, 0.04], [5, 5.1, 5.2]), initialLoss: 5 }).learned, true);
  // Without the loss at the start the first validation's stands in.
  assert.equal(detectNoLearning({ history: hist([0.05, 0.05, 0.0501], [4, 4.01, 3.99]) }).reason, 'flat');
  // One validation says nothing about flatness.
  assert.equal(detectNoLearning({ history: hist([0.05], [4]), initialLoss: 4 }).learned, true);
  // The thresholds cut where documented: a 6 % rise, or a loss 11 % below its start, is learning.
  assert.equal(detectNoLearning({ history: hist([0.05, 0.053], [4, 4]), initialLoss: 4 }).learned, true);
  assert.equal(detectNoLearning({ history: hist([0.05, 0.0515], [4, 4]), initialLoss: 4 }).learned, false);
  assert.equal(detectNoLearning({ history: hist([0.05, 0.05], [4, 3.56]), initialLoss: 4 }).learned, true);
  assert.equal(detectNoLearning({ history: hist([0.05, 0.05], [4, 3.7]), initialLoss: 4 }).learned, false);
});

test('below-baseline: a best validation not 5 % above popularity on the same users fires; a clear win does not', () => {
  const b = 0.1;
  const under = detectNoLearning({ history: hist([0.06, 0.08, 0.09]), initialLoss: 6, baseline: b });
  assert.equal(under.learned, false);
  assert.equal(under.reason, 'below-baseline');
  assert.equal(under.baseline, b);
  assert.match(under.detail!, /0\.0900 at epoch 3.*popularity baseline on the same users \(0\.1000\)/);
  // At popularity (within the margin) is not learning; just past the margin is.
  assert.equal(detectNoLearning({ history: hist([0.09, (1 + NO_LEARNING_MIN_GAIN) * b * 0.999]), initialLoss: 6, baseline: b }).learned, false);
  assert.equal(detectNoLearning({ history: hist([0.09, (1 + NO_LEARNING_MIN_GAIN) * b * 1.01]), initialLoss: 6, baseline: b }).learned, true);
  assert.equal(detectNoLearning({ history: hist([0.1, 0.2, 0.3]), initialLoss: 6, baseline: b }).learned, true);
});

test('non-finite losses or metrics and all-zero validations fire; no validation at all is undecided', () => {
  assert.equal(detectNoLearning({ history: hist([0.1, 0.2], [4, Number.NaN]) }).reason, 'non-finite');
  assert.equal(detectNoLearning({ history: hist([0.1, 0.2]), epochLosses: [4, Number.POSITIVE_INFINITY] }).reason, 'non-finite');
  assert.equal(detectNoLearning({ history: hist([0.1, Number.NaN]) }).reason, 'non-finite');
  assert.equal(detectNoLearning({ history: [], epochLosses: [4, Number.NaN] }).learned, false);
  assert.equal(detectNoLearning({ history: hist([0, 0, 0]) }).reason, 'zero');
  const none = detectNoLearning({ history: [], epochLosses: [4, 3] });
  assert.equal(none.learned, null);
  assert.deepEqual(noLearningJson(none), { learned: null, no_learning: null });
});

test('a collapse is reported once, as a collapse, not also as "did not learn"', () => {
  // Peaks at epoch 1 well above popularity, then falls for 3 validations while the loss falls a little.
  const h = hist([0.05, 0.04, 0.03, 0.02], [6, 5.9, 5.8, 5.7]);
  const c = detectCollapse(h, 3);
  assert.equal(c.collapsed, true);
  const n = detectNoLearning({ history: h, initialLoss: 6, baseline: 0.01, collapsed: c.collapsed });
  assert.equal(n.learned, true);
  const line = trainingWarningLine(c, n, 'ndcg@10', 3)!;
  assert.match(line, /training collapsed/);
  assert.equal(line.split('\n').length, 1);
  // A run that never learned says that, in one line, even when its validation also fell.
  const never = detectNoLearning({ history: h, initialLoss: 6, baseline: 0.06, collapsed: true });
  assert.equal(never.reason, 'below-baseline');
  const line2 = trainingWarningLine(c, never, 'ndcg@10', 3)!;
  assert.equal(line2, noLearningLine(never, 'ndcg@10'));
  assert.match(line2, /^warning: training did not learn \(below-baseline\): validation ndcg@10: /);
  assert.equal(trainingWarningLine({ collapsed: false, peakEpoch: 3, peak: 0.1 }, detectNoLearning({ history: HEALTHY }), 'ndcg@10', 3), null);
});

// ---------------------------------------------------------------- end to end, through the CLI

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'towerlab-nolearn-'));
function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  return { json: JSON.parse(lines[lines.length - 1]), warnings: r.stderr.split('\n').filter((l) => l.startsWith('warning:')) };
}

test('towerlab train: a learning rate far too low is flagged (JSON + one stderr line); the default rates are not', () => {
  const base = ['train', '--data', 'synthetic:users=600,items=400,clusters=8,zipf=1.0,seed=3', '--batch-size', '256', '--epochs', '3', '--patience', '0', '--no-progress', '--json'];
  const bad = cli([...base, '--lr-sparse', '1e-9', '--lr-dense', '1e-9']);
  assert.equal(bad.json.learned, false);
  // Random item embeddings rank far below popularity on this Zipf data: rule 3 fires.
  assert.equal(bad.json.no_learning.reason, 'below-baseline');
  assert.equal(typeof bad.json.val_popularity, 'number');
  assert.equal(bad.warnings.length, 1, bad.warnings.join('\n'));
  assert.match(bad.warnings[0], /^warning: training did not learn \(/);
  const good = cli(base);
  assert.equal(good.json.learned, true);
  assert.equal(good.json.no_learning, null);
  assert.deepEqual(good.warnings, []);
  // The sane run is far above the popularity floor the bad one could not clear.
  assert.ok(good.json.no_learning === null && good.json.train.validation.at(-1).metrics['recall@20'] > 2 * good.json.val_popularity);
});

const chainFile = (users: number, seed: number): string => writeChainFile(dir, users, seed);

test('towerlab seq: a learning rate far too low is flagged against popularity on the validation users; a sane one is not', () => {
  const base = ['seq', '--data', chainFile(300, 5), '--tower', 'meanpool', '--dim', '16', '--batch-size', '32', '--epochs', '4', '--patience', '0', '--no-progress', '--json'];
  const bad = cli([...base, '--lr', '1e-9']);
  assert.equal(bad.json.learned, false);
  // On chains random embeddings already beat popularity (which knows no order): the flat rule fires.
  assert.equal(bad.json.no_learning.reason, 'flat');
  assert.equal(bad.warnings.length, 1, bad.warnings.join('\n'));
  assert.match(bad.warnings[0], /^warning: training did not learn \(/);
  const good = cli([...base, '--lr', '0.01']);
  assert.equal(good.json.learned, true, JSON.stringify(good.json.no_learning));
  assert.deepEqual(good.warnings, []);
  assert.ok(good.json.train.history.at(-1).val['ndcg@10'] > 1.5 * good.json.val_popularity);
});

test('towerlab text: without a popularity baseline, a validation flat at a learning rate of 1e-9 is flagged; the default is not', () => {
  const base = ['text', '--beir', synonymSet(60, 1), '--epochs', '4', '--dim', '16', '--batch-size', '8', '--val-holdout', '0.3', '--eval-every', '1', '--no-progress', '--json'];
  const bad = cli([...base, '--lr-sparse', '1e-9', '--lr-dense', '1e-9']);
  assert.equal(bad.json.learned, false);
  assert.equal(bad.json.no_learning.reason, 'flat');
  assert.equal(bad.json.no_learning.baseline, null);
  assert.equal(bad.warnings.length, 1, bad.warnings.join('\n'));
  assert.match(bad.warnings[0], /^warning: training did not learn \(flat\): validation ndcg@10: /);
  const good = cli(base);
  assert.equal(good.json.learned, true, JSON.stringify(good.json.no_learning));
  assert.deepEqual(good.warnings, []);
});
