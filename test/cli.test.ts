/**
 * The command line end to end on small synthetic data with planted clusters: train (must beat popularity
 * by a wide margin, so a broken learner fails), eval, recommend, resume, --json, and one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const DATA = 'synthetic:users=600,items=400,clusters=8,zipf=1.0,seed=3';
const dir = mkdtempSync(join(tmpdir(), 'towerlab-cli-'));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function lastJson(out: string): any {
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function assertOneLineError(r: { code: number | null; err: string }, pattern: RegExp) {
  assert.equal(r.code, 2, `exit code 2 expected, got ${r.code}: ${r.err}`);
  assert.match(r.err, pattern);
  assert.doesNotMatch(r.err, /^\s+at /m, 'no stack trace');
}

const recipe = join(dir, 'logq.json');
writeFileSync(recipe, JSON.stringify({ corrections: { logQ: { estimator: 'train-frequency' } } }));
const TRAIN = ['train', '--data', DATA, '--recipe', recipe, '--batch-size', '256', '--no-progress', '--json', '--patience', '0'];

test('train --json: beats popularity by a wide margin, and the last stdout line is the result', () => {
  const r = cli([...TRAIN, '--epochs', '6', '--out', 'run']);
  assert.equal(r.code, 0, r.err);
  const j = lastJson(r.out);
  for (const k of ['recall@20', 'ndcg@20', 'hr@20', 'mrr@20', 'coverage@20']) assert.equal(typeof j.metrics[k], 'number', k);
  assert.equal(typeof j.baselines.popularity['recall@20'], 'number');
  assert.ok(j.examples_per_s > 0);
  assert.ok(j.metrics['recall@20'] > 1.5 * j.baselines.popularity['recall@20'], `model ${j.metrics['recall@20']} vs popularity ${j.baselines.popularity['recall@20']}`);
  const log = readFileSync(join(dir, 'run', 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(log.some((e) => e.event === 'validation'), 'validation logged');

  const ev = cli(['eval', '--model', 'run', '--json']);
  assert.equal(ev.code, 0, ev.err);
  const e = lastJson(ev.out);
  assert.ok(Math.abs(e.metrics['recall@20'] - j.metrics['recall@20']) < 1e-6, 'eval reproduces the test metrics of train');
  assert.ok(Math.abs(e.baselines.popularity['recall@20'] - j.baselines.popularity['recall@20']) < 1e-9);
  assert.ok(e.examples_per_s > 0, 'eval --json carries the training throughput');

  const rec = cli(['recommend', '--model', 'run', '--user', 'u5', '--k', '7', '--json']);
  assert.equal(rec.code, 0, rec.err);
  const rj = lastJson(rec.out);
  assert.equal(rj.items.length, 7);
  for (let i = 1; i < 7; i++) assert.ok(rj.items[i - 1].score >= rj.items[i].score, 'sorted by score');
});

test('resume continues from the checkpoint to the requested epochs', () => {
  const a = cli([...TRAIN, '--epochs', '2', '--out', 'res']);
  assert.equal(a.code, 0, a.err);
  const b = cli([...TRAIN, '--epochs', '3', '--out', 'res', '--resume']);
  assert.equal(b.code, 0, b.err);
  assert.equal(lastJson(b.out).train.epochs, 3);
  const log = readFileSync(join(dir, 'res', 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const starts = log.filter((e) => e.event === 'start');
  assert.equal(starts[starts.length - 1].resumedAt, 2);
  assert.equal(log.filter((e) => e.event === 'epoch').length, 3, 'epochs 1, 2 then 3 only');
});

test('errors are one line naming what is wrong, with exit code 2', () => {
  assertOneLineError(cli(['recommend', '--model', 'run', '--user', 'nobody']), /unknown user 'nobody'/);
  assertOneLineError(cli(['recommend', '--model', 'no-such-dir', '--user', 'u1']), /no-such-dir/);
  const bad = join(dir, 'bad-recipe.json');
  writeFileSync(bad, JSON.stringify({ temperature: 'hot' }));
  assertOneLineError(cli(['train', '--data', DATA, '--recipe', bad]), /bad-recipe\.json: field 'temperature'/);
  const csv = join(dir, 'ratings.csv');
  writeFileSync(csv, 'userId,movieId,rating\n1,10,4\n2,11,5\n');
  assertOneLineError(cli(['train', '--data', csv, '--user-col', 'user', '--item-col', 'movieId']), /ratings\.csv.*user/);
  assertOneLineError(cli(['train', '--data', DATA, '--epochs', 'many']), /--epochs/);
});

test('train from a CSV with column mapping, ratings, features and a temporal split; then eval and recommend', async () => {
  const { generateSynthetic } = await import('../src/data/synthetic.ts');
  const d = generateSynthetic({ users: 300, items: 200, clusters: 5, zipf: 1, seed: 11 });
  const lines = ['uid,movie,ts,stars,segment,genre'];
  for (let r = 0; r < d.users.length; r++) {
    const u = d.users[r];
    const i = d.items[r];
    // Every 7th row has a low rating: --min-rating must drop it.
    lines.push(`${d.userVocab.ids[u]},${d.itemVocab.ids[i]},${d.times![r]},${r % 7 === 0 ? 1 : 4},${d.userFeatures[0].vocab.ids[d.userFeatures[0].values[u]]},${d.itemFeatures[0].vocab.ids[d.itemFeatures[0].values[i]]}`);
  }
  const csv = join(dir, 'log.csv');
  writeFileSync(csv, lines.join('\n') + '\n');
  const args = ['--data', csv, '--user-col', 'uid', '--item-col', 'movie', '--time-col', 'ts', '--rating-col', 'stars', '--min-rating', '3', '--user-features', 'segment', '--item-features', 'genre', '--split', 'temporal'];
  const r = cli(['train', ...args, '--recipe', recipe, '--epochs', '4', '--batch-size', '256', '--no-progress', '--json', '--out', 'csvrun']);
  assert.equal(r.code, 0, r.err);
  const j = lastJson(r.out);
  const kept = d.users.length - Math.ceil(d.users.length / 7);
  assert.equal(j.data.interactions, kept, '--min-rating dropped the low ratings');
  assert.match(j.data.split, /temporal/);
  assert.ok(j.metrics['recall@20'] > j.baselines.popularity['recall@20'], `model ${j.metrics['recall@20']} vs popularity ${j.baselines.popularity['recall@20']}`);
  const ev = cli(['eval', '--model', 'csvrun', '--json']);
  assert.equal(ev.code, 0, ev.err);
  assert.ok(Math.abs(lastJson(ev.out).metrics['recall@20'] - j.metrics['recall@20']) < 1e-6);
  const rec = cli(['recommend', '--model', 'csvrun', '--user', d.userVocab.ids[0], '--k', '3']);
  assert.equal(rec.code, 0, rec.err);
  assert.match(rec.out, /top 3 for user/);
});
