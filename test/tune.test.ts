/**
 * `towerlab tune`: finds a planted better option on synthetic data, writes best-recipe.json / best-options.json
 * that `train` accepts, resumes after a SIGKILL without redoing finished jobs, and never reads the test data
 * before the search is over. Plus the pieces: space validation, Halton points, ASHA promotion.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bestTrial, nextJob, rungEpochs, type TrialRecord } from '../src/tune/asha.ts';
import { parseSpace, radicalInverse, samplePoint } from '../src/tune/space.ts';
import { Rng } from '../src/util/rng.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const dir = mkdtempSync(join(tmpdir(), 'towerlab-tune-'));
const DATA = 'synthetic:users=400,items=200,clusters=8,zipf=1.0,seed=5';

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** A learning rate of 1e-6 leaves the towers at their random init; 0.01 learns the clusters: the planted better option. */
function writeSpace(name: string, schedule = { minEpochs: 1, maxEpochs: 2, eta: 2 }): string {
  const p = join(dir, name);
  writeFileSync(
    p,
    JSON.stringify({
      options: { mlp: 'none', dim: 16, 'batch-size': 256, 'val-users': 400 },
      params: { 'options.lr-sparse': { type: 'choice', values: [1e-6, 0.01] }, 'recipe.temperature': { type: 'log', min: 0.05, max: 0.2 } },
      schedule,
    }),
  );
  return p;
}

test('space.json is validated: unknown parameter roots, bad ranges and unknown options fail with one line', () => {
  assert.throws(() => parseSpace({ params: { 'model.dim': { type: 'int', min: 1, max: 4 } } }, 's.json'), /s\.json: field 'params\.model\.dim'/);
  assert.throws(() => parseSpace({ params: { 'options.dim': { type: 'log', min: 0, max: 4 } } }, 's.json'), /log range needs min > 0/);
  assert.throws(() => parseSpace({ params: { 'options.dim': { type: 'int', min: 8, max: 4 } } }, 's.json'), /max must be >= min/);
  assert.throws(() => parseSpace({ params: {} }, 's.json'), /at least one parameter/);
  const bad = join(dir, 'bad-option.json');
  writeFileSync(bad, JSON.stringify({ params: { 'options.dimm': { type: 'choice', values: [8] } } }));
  const r = cli(['tune', '--data', DATA, '--space', bad, '--budget', '1trials', '--out', join(dir, 'bad-out')]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /unknown option 'dimm'/);
});

test('Halton points are in range, reproducible per seed, and cover a choice evenly', () => {
  assert.equal(radicalInverse(1, 2), 0.5);
  assert.equal(radicalInverse(3, 2), 0.75);
  assert.ok(Math.abs(radicalInverse(5, 3) - 7 / 9) < 1e-12); // 5 = 12₃ → 0.21₃
  const { space } = parseSpace({ params: { 'options.dim': { type: 'choice', values: [1, 2, 3, 4] }, 'options.lr-sparse': { type: 'log', min: 1e-3, max: 1e-1 }, 'options.epochs': { type: 'int', min: 1, max: 3 } } }, 's');
  const pts = Array.from({ length: 40 }, (_, i) => samplePoint(space, i, 3));
  assert.deepEqual(pts, Array.from({ length: 40 }, (_, i) => samplePoint(space, i, 3)));
  assert.notDeepEqual(pts, Array.from({ length: 40 }, (_, i) => samplePoint(space, i, 4)));
  const counts = [1, 2, 3, 4].map((v) => pts.filter((p) => p['options.dim'] === v).length);
  assert.ok(counts.every((c) => c === 10), `each of 4 choices 10 times in 40 points, got ${counts}`);
  for (const p of pts) {
    const lr = p['options.lr-sparse'] as number;
    assert.ok(lr >= 1e-3 && lr <= 1e-1);
    assert.ok([1, 2, 3].includes(p['options.epochs'] as number));
  }
});

test('ASHA promotes the top 1/eta of a rung before starting new trials, and the winner is at the highest rung', () => {
  const s = { minEpochs: 1, maxEpochs: 9, eta: 3 };
  assert.deepEqual(rungEpochs(s), [1, 3, 9]);
  const trials: TrialRecord[] = [];
  const add = (metric: number) => trials.push({ id: trials.length, params: {}, rungs: [metric], epochs: 1, bestEpoch: 1, terminal: false, seconds: 0 });
  add(0.1);
  add(0.3);
  assert.deepEqual(nextJob(trials, s, true), { trial: 2, rung: 0, fresh: true }, 'two finished: floor(2/3) = 0 promotions');
  add(0.2);
  assert.deepEqual(nextJob(trials, s, true), { trial: 1, rung: 1, fresh: false }, 'three finished: the best goes on');
  trials[1].rungs.push(0.35);
  assert.deepEqual(nextJob(trials, s, true), { trial: 3, rung: 0, fresh: true });
  assert.equal(nextJob(trials, s, false), null, 'no budget and nothing promotable: done');
  assert.equal(bestTrial(trials)!.id, 1);
  // A trial that stopped early keeps its place but is not trained on.
  trials[1].terminal = true;
  add(0.05);
  add(0.01);
  assert.equal(nextJob(trials, s, false), null);
  // Sorting is by metric, not by id: a flipped comparison would promote trial 0.
  const t2: TrialRecord[] = [0.9, 0.1, 0.2].map((m, id) => ({ id, params: {}, rungs: [m], epochs: 1, bestEpoch: 1, terminal: false, seconds: 0 }));
  assert.equal(nextJob(t2, s, false)!.trial, 0);
});

test('tune finds the planted better option and writes files train accepts', () => {
  const out = join(dir, 'planted');
  const r = cli(['tune', '--data', DATA, '--space', writeSpace('planted.json'), '--budget', '4trials', '--out', out, '--json']);
  assert.equal(r.code, 0, r.err);
  const res = JSON.parse(r.out.trim().split('\n').at(-1)!);
  assert.equal(res.trials.length, 4);
  assert.equal(res.best.params['options.lr-sparse'], 0.01, JSON.stringify(res.best));
  const lrs = res.trials.map((t: any) => t.params['options.lr-sparse']);
  assert.ok(lrs.includes(1e-6) && lrs.includes(0.01), 'both options were tried');
  // Every trial that cannot learn is worse at rung 0 than every trial that can.
  const r0 = (lr: number) => res.trials.filter((t: any) => t.params['options.lr-sparse'] === lr).map((t: any) => t.rungs[0]);
  assert.ok(Math.max(...r0(1e-6)) < Math.min(...r0(0.01)), `lr 1e-6 ${r0(1e-6)} vs lr 0.01 ${r0(0.01)}`);
  assert.ok(res.final.metrics['recall@20'] > res.final.popularity['recall@20'], 'the final test run beats popularity');
  const opts = JSON.parse(readFileSync(join(out, 'best-options.json'), 'utf8'));
  assert.equal(opts['lr-sparse'], 0.01);
  assert.ok(existsSync(join(out, 'index.html')) && readFileSync(join(out, 'index.html'), 'utf8').includes('<svg'), 'the report has charts');
  const t = cli(['train', '--data', DATA, '--recipe', join(out, 'best-recipe.json'), '--options', join(out, 'best-options.json'), '--no-progress', '--json']);
  assert.equal(t.code, 0, t.err);
  const tj = JSON.parse(t.out.trim().split('\n').at(-1)!);
  assert.equal(tj.metrics['recall@20'], res.final.metrics['recall@20'], 'train with the best files reproduces the final run');
});

test('a killed search resumes without redoing finished jobs', async () => {
  const out = join(dir, 'killed');
  const space = writeSpace('killed.json', { minEpochs: 1, maxEpochs: 4, eta: 2 });
  const args = ['tune', '--data', DATA, '--space', space, '--budget', '6trials', '--out', out, '--skip-test'];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: 'ignore' });
  const statePath = join(out, 'tune-state.json');
  // Wait for the event "two jobs finished" (the state is rewritten after each), then kill without warning.
  const before = await new Promise<any>((resolve, reject) => {
    const poll = setInterval(() => {
      try {
        const s = JSON.parse(readFileSync(statePath, 'utf8'));
        if (s.jobs >= 2) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve(s);
        }
      } catch {
        /* not written yet */
      }
    }, 50);
    child.on('exit', () => {
      clearInterval(poll);
      reject(new Error('tune exited before it could be killed'));
    });
  });
  await new Promise((r) => child.once('exit', r));
  const killedAt = JSON.parse(readFileSync(statePath, 'utf8'));
  assert.ok(killedAt.jobs >= before.jobs);
  const r = cli([...args, '--resume']);
  assert.equal(r.code, 0, r.err);
  const after = JSON.parse(readFileSync(statePath, 'utf8'));
  assert.equal(after.trials.length, 6);
  // Every rung finished before the kill has the same value afterwards (not retrained) ...
  for (const t of killedAt.trials) {
    t.rungs.forEach((v: number, k: number) => assert.equal(after.trials[t.id].rungs[k], v, `trial ${t.id} rung ${k}`));
  }
  // ... and the resumed run's job log starts after the jobs already done.
  const jobs = [...r.err.matchAll(/job (\d+): trial (\d+) rung (\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
  assert.equal(jobs[0][0], killedAt.jobs + 1);
  for (const [, trial, rung] of jobs) assert.equal(killedAt.trials[trial]?.rungs[rung], undefined, `trial ${trial} rung ${rung} was redone`);
  assert.equal(after.jobs, killedAt.jobs + jobs.length);
  const again = cli(args);
  assert.equal(again.code, 2);
  assert.match(again.err, /holds a search already/);
});

test('the test file is not read until the search is over', () => {
  const rng = new Rng(9);
  const train = join(dir, 'files-train.csv');
  const rows: string[] = [];
  for (let u = 0; u < 200; u++) for (let k = 0; k < 10; k++) rows.push(`u${u},i${(u % 5) * 20 + rng.int(20)}`);
  writeFileSync(train, 'user_id,item_id\n' + rows.join('\n') + '\n');
  const missing = join(dir, 'no-such-test.csv');
  const out = join(dir, 'files');
  // A test file that does not exist: the whole search runs, and only the final evaluation trips over it.
  const r = cli(['tune', '--train-file', train, '--test-file', missing, '--space', writeSpace('files.json'), '--budget', '3trials', '--out', out]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /no-such-test\.csv: file not found/);
  const state = JSON.parse(readFileSync(join(out, 'tune-state.json'), 'utf8'));
  assert.equal(state.trials.length, 3, 'all trials finished before the test file was opened');
  assert.ok(existsSync(join(out, 'best-options.json')));
});
