/** `towerlab text --bm25-only` (and --epochs 0 without pre-training): BM25 alone, no untrained dual-encoder row. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { synonymSet } from './helpers/beir-synthetic.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const text = (args: string[]) => spawnSync(process.execPath, [BIN, 'text', ...args], { encoding: 'utf8', env: { ...process.env, TOWERLAB_DEBUG: '' } });

test('text --bm25-only and --epochs 0: a BM25 row only, JSON without dense metrics', () => {
  const dir = synonymSet(20, 5);
  for (const flags of [['--bm25-only'], ['--epochs', '0']]) {
    const r = text(['--beir', dir, ...flags, '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^BM25 +\d\.\d{4}/m);
    assert.doesNotMatch(r.stdout, /dual encoder +\d|ensemble/, `${flags.join(' ')}: an untrained dual encoder row was printed`);
    const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
    assert.equal(j.metrics.bm25.queries, 20);
    assert.equal(j.metrics.dense, undefined);
    assert.equal(j.bm25Only, true);
  }
  const bad = text(['--beir', dir, '--bm25-only', '--rerank']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--rerank needs a dual encoder/);
});
