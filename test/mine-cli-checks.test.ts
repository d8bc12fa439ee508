/**
 * `towerlab mine` guards and summaries: models trained on other splits (or saved without a data fingerprint)
 * are refused unless --allow-mixed; short groups are counted with their reason in one line, and
 * --min-negatives drops groups below N.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const DATA = 'synthetic:users=200,items=150,clusters=4,zipf=1.0,seed=3';

test('mine: mixed splits and unknown models are refused unless --allow-mixed; short groups explained; --min-negatives drops', () => {
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-mine-checks-'));
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  try {
    for (const [name, splitSeed] of [['a', '42'], ['b', '42'], ['c', '7']]) {
      const r = cli(['train', '--data', DATA, '--epochs', '1', '--batch-size', '128', '--no-progress', '--split-seed', splitSeed, '--out', name]);
      assert.equal(r.status, 0, r.stderr);
    }
    assert.equal(cli(['mine', '--model', 'a', '--model', 'b', '--n', '3', '--out', 'ok.jsonl']).status, 0, 'same data and split: allowed');
    const mixed = cli(['mine', '--model', 'a', '--model', 'c', '--n', '3', '--out', 'x.jsonl']);
    assert.equal(mixed.status, 2, mixed.stderr);
    assert.match(mixed.stderr, /^towerlab: error: --model c: trained on another split .*--allow-mixed/);
    assert.equal(cli(['mine', '--model', 'a', '--model', 'c', '--n', '3', '--out', 'x.jsonl', '--allow-mixed']).status, 0);
    const other = cli(['mine', '--model', 'a', '--data', 'synthetic:users=200,items=150,clusters=4,zipf=1.0,seed=4', '--n', '3', '--out', 'x.jsonl']);
    assert.equal(other.status, 2);
    assert.match(other.stderr, /trained on other data than the data being mined/);

    // A model saved before fingerprints existed: unknown, so an ensemble with it is refused.
    cpSync(realpathSync(join(dir, 'b', 'model')), join(dir, 'old'), { recursive: true });
    const mf = JSON.parse(readFileSync(join(dir, 'old', 'manifest.json'), 'utf8'));
    delete mf.fingerprint;
    writeFileSync(join(dir, 'old', 'manifest.json'), JSON.stringify(mf));
    const old = cli(['mine', '--model', 'a', '--model', 'old', '--n', '3', '--out', 'x.jsonl']);
    assert.equal(old.status, 2);
    assert.match(old.stderr, /--model old: records no data fingerprint.*--allow-mixed/);
    assert.equal(cli(['mine', '--model', 'old', '--n', '3', '--out', 'x.jsonl']).status, 0, 'one model alone needs no check');

    // A strict margin leaves groups short: one summary line with the reason; --min-negatives drops them.
    const loose = cli(['mine', '--model', 'a', '--n', '8', '--range', '0:30', '--margin', '0.05', '--out', 'm.jsonl', '--json']);
    assert.equal(loose.status, 0, loose.stderr);
    const j = JSON.parse(loose.stdout.trim().split('\n').at(-1)!);
    assert.ok(j.short_groups > 0 && j.short_by.margin > 0, JSON.stringify(j));
    assert.equal(j.short_groups, j.short_by.margin + j.short_by.max_score + j.short_by.range);
    const notes = loose.stderr.split('\n').filter((l) => l.startsWith('note:'));
    assert.equal(notes.length, 1, loose.stderr);
    assert.match(notes[0], new RegExp(`${j.short_groups} of ${j.groups} groups have fewer than 8 negatives \\(${j.empty_groups} empty\\): ${j.short_by.margin} by --margin 0\\.05`));
    const strict = cli(['mine', '--model', 'a', '--n', '8', '--range', '0:30', '--margin', '0.05', '--min-negatives', '8', '--out', 's.jsonl', '--json']);
    assert.equal(strict.status, 0, strict.stderr);
    const s = JSON.parse(strict.stdout.trim().split('\n').at(-1)!);
    assert.equal(s.dropped_groups, j.short_groups);
    assert.equal(s.groups, j.groups - j.short_groups);
    const lines = readFileSync(join(dir, 's.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, s.groups);
    for (const l of lines) assert.equal(JSON.parse(l).negatives.length, 8);
    // A window narrower than n: every group short by the range.
    const narrow = cli(['mine', '--model', 'a', '--n', '8', '--range', '0:4', '--out', 'r.jsonl', '--json']);
    const rj = JSON.parse(narrow.stdout.trim().split('\n').at(-1)!);
    assert.equal(rj.short_by.range, rj.groups);
    assert.match(narrow.stderr, /because rank window 0:4 held fewer than 8 unseen candidates/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
