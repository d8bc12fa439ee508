/**
 * Predefined splits given as files (--train-file/--val-file/--test-file): one vocabulary across the files, the
 * seeded validation carve-out, the 'user item item …' format of ML-1M's train.txt, one-line errors when the
 * files disagree, and test users without training rows counted (stderr + JSON), never dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSplit } from '../src/data/split-files.ts';
import { prepare } from '../src/data/prepare.ts';
import { coldTestUsers } from '../src/data/split-files.ts';
import { Rng } from '../src/util/rng.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'towerlab-split-files-'));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Planted clusters: user u likes items of cluster u % C. Returns per-user item lists (ids as text). */
function plantedHistories(users: number, items: number, clusters: number, perUser: number, seed: number): string[][] {
  const rng = new Rng(seed);
  const per = items / clusters;
  return Array.from({ length: users }, (_, u) => {
    const c = u % clusters;
    const set = new Set<number>();
    while (set.size < perUser) set.add(c * per + rng.int(per));
    return [...set].map((i) => `i${i}`);
  });
}

test('train and test files share one vocabulary; the ids of the test file map to the train file’s indices', async () => {
  const train = join(dir, 'a-train.csv');
  const test = join(dir, 'a-test.csv');
  writeFileSync(train, 'user_id,item_id\nu1,x\nu1,y\nu2,y\nu2,z\n');
  // u3 has no training rows; item w appears only in the test file.
  writeFileSync(test, 'user_id,item_id\nu2,x\nu1,z\nu3,y\nu3,w\n');
  const { data, split } = await loadSplit({ path: train }, { kind: 'files', train, val: null, test, valFraction: 0, seed: 1 });
  assert.deepEqual(data.userVocab.ids, ['u1', 'u2', 'u3']);
  assert.deepEqual(data.itemVocab.ids, ['x', 'y', 'z', 'w']);
  assert.deepEqual([...split.train], [0, 1, 2, 3]);
  assert.deepEqual([...split.test], [4, 5, 6, 7]);
  // Row 4 is (u2, x): the same indices as in the train file.
  assert.equal(data.userVocab.ids[data.users[4]], 'u2');
  assert.equal(data.items[4], data.items[0]);
  const prep = prepare(data, split);
  assert.equal(coldTestUsers(prep.test, prep.seen), 1, 'u3 is a test user without training rows');
  assert.equal(prep.test.offsets[3] - prep.test.offsets[2], 2, 'u3 keeps both test rows');
});

test('without a validation file a seeded fraction of the train file is held out, disjoint and reproducible', async () => {
  const train = join(dir, 'b-train.txt');
  const test = join(dir, 'b-test.txt');
  const h = plantedHistories(50, 40, 4, 8, 1);
  writeFileSync(train, h.map((items, u) => `${u} ${items.slice(0, 6).join(' ')}`).join('\n') + '\n');
  writeFileSync(test, h.map((items, u) => `${u} ${items.slice(6).join(' ')}`).join('\n') + '\n');
  const spec = { kind: 'files' as const, train, val: null, test, valFraction: 0.2, seed: 7 };
  const a = await loadSplit({ path: train }, spec);
  const b = await loadSplit({ path: train }, spec);
  const c = await loadSplit({ path: train }, { ...spec, seed: 8 });
  assert.equal(a.split.val.length, 60, '20 % of 300 train rows');
  assert.equal(a.split.train.length, 240);
  assert.deepEqual([...a.split.val], [...b.split.val], 'same seed, same carve-out');
  assert.notDeepEqual([...a.split.val], [...c.split.val], 'another seed, another carve-out');
  const all = new Set([...a.split.train, ...a.split.val, ...a.split.test]);
  assert.equal(all.size, 400, 'disjoint and covering');
  assert.ok([...a.split.val].every((r) => r < 300), 'validation rows come from the train file only');
  assert.ok([...a.split.test].every((r) => r >= 300));
});

test("the 'user item item …' format (ML-1M train.txt) loads as a split, and a validation file is used as given", async () => {
  const train = join(dir, 'c-train.txt');
  const val = join(dir, 'c-val.txt');
  const test = join(dir, 'c-test.txt');
  writeFileSync(train, '0 10 11 12\n1 11 13\n');
  writeFileSync(val, '0 13\n');
  writeFileSync(test, '1 10\n0 14\n');
  const { data, split } = await loadSplit({ path: train }, { kind: 'files', train, val, test, valFraction: 0, seed: 1 });
  assert.equal(data.users.length, 8);
  assert.deepEqual([...split.val], [5]);
  assert.deepEqual([...split.test], [6, 7]);
  assert.deepEqual(data.itemVocab.ids, ['10', '11', '12', '13', '14']);
});

test('files with different columns fail with one line naming the file and the difference', () => {
  const train = join(dir, 'd-train.csv');
  const test = join(dir, 'd-test.csv');
  writeFileSync(train, 'user_id,item_id,rating\nu1,x,5\nu2,y,4\n');
  writeFileSync(test, 'user_id,item_id\nu1,y\n');
  const r = cli(['train', '--train-file', train, '--test-file', test, '--epochs', '1', '--no-progress']);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /d-test\.csv: columns differ from the train file .*d-train\.csv: it lacks rating/);
  assert.equal(r.err.trim().split('\n').length, 1);
  const both = cli(['train', '--data', train, '--train-file', train, '--test-file', test]);
  assert.equal(both.code, 2);
  assert.match(both.err, /--data and --train-file: give one/);
  const alone = cli(['train', '--test-file', test]);
  assert.equal(alone.code, 2);
  assert.match(alone.err, /--val-file\/--test-file need --train-file/);
});

test('train on files: learns the planted clusters, and test users with no training rows are reported and counted', () => {
  const h = plantedHistories(300, 120, 6, 12, 2);
  const train = join(dir, 'e-train.csv');
  const test = join(dir, 'e-test.csv');
  // Users 0..289 have train rows; 290..299 appear only in the test file.
  const trainRows = h.slice(0, 290).flatMap((items, u) => items.slice(0, 9).map((i) => `u${u},${i}`));
  const testRows = h.flatMap((items, u) => items.slice(9).map((i) => `u${u},${i}`));
  writeFileSync(train, 'user,item\n' + trainRows.join('\n') + '\n');
  writeFileSync(test, 'user,item\n' + testRows.join('\n') + '\n');
  const r = cli(['train', '--train-file', train, '--test-file', test, '--mlp', 'none', '--dim', '16', '--epochs', '6', '--batch-size', '256', '--no-progress', '--json']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /10 of 300 test users have no training interactions/);
  const j = JSON.parse(r.out.trim().split('\n').at(-1)!);
  assert.equal(j.data.testUsers, 300, 'cold users are kept in the test set');
  assert.equal(j.data.testUsersWithoutTrain, 10);
  assert.equal(j.data.test, 300 * 3);
  assert.ok(j.metrics['recall@20'] > 1.5 * j.baselines.popularity['recall@20'], `model ${j.metrics['recall@20']} vs popularity ${j.baselines.popularity['recall@20']}`);
  // eval with the test file alone reuses the model's vocabulary and reports the same count.
  const model = join(dir, 'e-run');
  const t = cli(['train', '--train-file', train, '--test-file', test, '--mlp', 'none', '--dim', '16', '--epochs', '1', '--no-progress', '--out', model]);
  assert.equal(t.code, 0, t.err);
  const e = cli(['eval', '--model', model, '--test-file', test, '--json']);
  assert.equal(e.code, 0, e.err);
  assert.equal(JSON.parse(e.out.trim().split('\n').at(-1)!).test_users_without_train, 10);
});
