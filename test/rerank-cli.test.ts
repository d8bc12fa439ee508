/**
 * The recommender reranker's saved format and CLI: save/load round trip (identical scores), checksum and
 * member-identity checks, and `towerlab rerank train | eval` end to end on small synthetic data with
 * planted clusters (the reranked order must differ from the retrieved one, so a no-op stage fails).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '../src/compute/js.ts';
import { featureDim } from '../src/rerank/features.ts';
import { LceReranker } from '../src/rerank/lce.ts';
import { loadReranker, saveReranker } from '../src/rerank/saved-reranker.ts';
import { Rng } from '../src/util/rng.ts';

test('saved reranker: round trip gives identical scores; a corrupted weights file is a one-line UserError', async () => {
  const b = await createJsBackend({ wasm: false });
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-rr-'));
  try {
    const lce = { inDim: featureDim(4, 2), hidden: [8, 4], temperature: 1, lr: 0.01, seed: 3 };
    const m = new LceReranker(b, lce);
    const rng = new Rng(1);
    const x = Float32Array.from({ length: 5 * lce.inDim }, () => rng.normal());
    // Train a little so the weights differ from the seed's initialisation (a load that re-initialises fails).
    for (let i = 0; i < 5; i++) m.trainGroups(x, 1, 5);
    const want = Float32Array.from(m.forward(x, 5));
    const meta = { lce, K: 50, dim: 4, members: [{ dir: '/a', checksum: 'x' }, { dir: '/b', checksum: null }], data: { path: 'd' }, split: { kind: 'loo' }, training: { epochs: 1 } };
    saveReranker(join(dir, 'rr'), m, meta);
    const r = loadReranker(join(dir, 'rr'), b);
    assert.deepEqual(Array.from(r.model.forward(x, 5)), Array.from(want));
    assert.deepEqual(r.meta.members, meta.members);
    assert.equal(r.meta.K, 50);
    const fresh = new LceReranker(b, lce);
    assert.notDeepEqual(Array.from(fresh.forward(x, 5)), Array.from(want), 'training moved the weights');
    const bin = join(dir, 'rr', 'tensors.bin');
    const bytes = readFileSync(bin);
    bytes[0] ^= 1;
    writeFileSync(bin, bytes);
    assert.throws(() => loadReranker(join(dir, 'rr'), b), /checksum mismatch/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: rerank train (ensemble features) → rerank eval prints both stages; retrained members are refused', () => {
  const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-rerank-cli-'));
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, TOWERLAB_DEBUG: '' } });
  const last = (out: string) => JSON.parse(out.trim().split('\n').pop()!);
  try {
    const DATA = 'synthetic:users=200,items=150,clusters=4,zipf=1.0,seed=3';
    const trained: any[] = [];
    for (const s of ['1', '2']) {
      const r = cli(['train', '--data', DATA, '--epochs', '2', '--batch-size', '128', '--no-progress', '--seed', s, '--out', `m${s}`, '--json']);
      assert.equal(r.status, 0, r.stderr);
      trained.push(last(r.stdout));
    }
    const t = cli(['rerank', 'train', '--model', 'm1', '--model', 'm2', '--k', '40', '--epochs', '8', '--batch', '16', '--hidden', '16', '--lr', '0.003', '--out', 'rr', '--json']);
    assert.equal(t.status, 0, t.stderr);
    const tj = last(t.stdout);
    assert.equal(tj.models.length, 2);
    assert.ok(tj.pairs > 50, JSON.stringify(tj));
    assert.ok(tj.losses[tj.losses.length - 1] < tj.losses[0], `loss falls: ${tj.losses}`);
    const manifest = JSON.parse(readFileSync(join(dir, 'rr', 'manifest.json'), 'utf8'));
    assert.equal(manifest.format, 'towerlab-reranker');
    assert.match(manifest.checksums['tensors.bin'], /^[0-9a-f]{64}$/);
    assert.equal(manifest.members.length, 2);
    assert.ok(manifest.members.every((m: any) => /^[0-9a-f]{64}$/.test(m.checksum)));
    assert.ok(!existsSync(join(dir, 'rr.tmp')), 'no temporary left behind');

    const e = cli(['rerank', 'eval', '--reranker', 'rr', '--json']);
    assert.equal(e.status, 0, e.stderr);
    const ej = last(e.stdout);
    assert.ok(ej.users > 50);
    for (const s of ['retrieve', 'rerank']) for (const k of ['ndcg@10', 'recall@10']) assert.ok(ej[s][k] >= 0 && ej[s][k] <= 1, `${s} ${k}`);
    // The retrieve stage is the target's own test ranking (train + validation items excluded): train's metrics.
    assert.ok(Math.abs(ej.retrieve['ndcg@10'] - trained[0].metrics['ndcg@10']) < 1e-6, `${ej.retrieve['ndcg@10']} vs ${trained[0].metrics['ndcg@10']}`);
    assert.ok(Math.abs(ej.retrieve['recall@10'] - trained[0].metrics['recall@10']) < 1e-6);
    assert.ok(ej.rerank['ndcg@10'] > ej.retrieve['ndcg@10'], 'the reranker improves on the weak 2-epoch retriever (planted clusters + popularity)');
    console.log(`rerank CLI: retrieve ndcg@10 ${ej.retrieve['ndcg@10'].toFixed(4)}, rerank ${ej.rerank['ndcg@10'].toFixed(4)}`);
    const human = cli(['rerank', 'eval', '--reranker', 'rr']);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /retrieve\s+\d\.\d{4}\s+\d\.\d{4}\nrerank\s+\d\.\d{4}\s+\d\.\d{4}/);

    // Retraining a member changes its weights: eval must refuse rather than apply stale features.
    const re = cli(['train', '--data', DATA, '--epochs', '1', '--batch-size', '128', '--no-progress', '--seed', '5', '--out', 'm2']);
    assert.equal(re.status, 0, re.stderr);
    const stale = cli(['rerank', 'eval', '--reranker', 'rr']);
    assert.equal(stale.status, 2, stale.stderr);
    assert.match(stale.stderr, /model changed since the reranker was trained/);
    assert.doesNotMatch(stale.stderr, /^\s+at /m);
    const bad = cli(['rerank', 'train', '--model', 'm1', '--k', 'x', '--out', 'rr2']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--k: 'x'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
