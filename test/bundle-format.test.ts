/**
 * The serving bundle: what export writes (manifest contents, TF.js weights manifest a browser can load),
 * that it reproduces the model exactly, that loading names exactly what is wrong with a damaged bundle, and
 * that a write interrupted at any point (an error, or SIGKILL) leaves the previous bundle intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { getBackend } from '../src/compute/index.ts';
import { QueryTower } from '../src/bundle/query-tower.ts';
import { readBundle } from '../src/bundle/read.ts';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { makeArtifacts, makeBundle, makeModelDir, tmp, ITEMS, USERS } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');

test('export → load reproduces the model: query tower, item embeddings, vocabularies, manifest', async () => {
  const backend = await getBackend();
  const dir = tmp('bundle');
  const a = makeArtifacts(1);
  const draft = createBundle(backend, a, { index: { metric: 'ip', connectivity: 16, expansionAdd: 64, expansionSearch: 64 }, recallQueries: 50, source: 'fixture' });
  writeBundle(join(dir, 'b'), draft);
  const b = await readBundle(join(dir, 'b'));
  const mf = b.manifest;
  assert.equal(mf.format, 'towerlab-bundle');
  assert.equal(mf.version, 2);
  assert.ok(!Number.isNaN(Date.parse(mf.created)));
  assert.deepEqual(mf.recipe, { name: 'fixture' });
  assert.equal(mf.metrics?.['recall@10'], 0.5);
  assert.equal(mf.vocabularies.users.count, USERS);
  assert.match(mf.vocabularies.items.sha256, /^[0-9a-f]{64}$/);
  assert.ok(mf.index && mf.index.recallAt10 >= 0.9, 'index recall measured at build');
  assert.equal(b.id, draft.manifest.id);
  for (const f of Object.keys(mf.files)) assert.ok(existsSync(join(dir, 'b', f)), f);

  const tower = new QueryTower(b.query);
  const got = new Float32Array(tower.dim);
  const want = new Float32Array(tower.dim);
  for (const u of [0, 17, USERS - 1]) {
    tower.embedUser(backend, u, got);
    a.model.user.embed(backend, Int32Array.of(u), want);
    assert.deepEqual(Array.from(got), Array.from(want), `user ${u}`);
  }
  assert.deepEqual(Array.from(b.itemEmb.subarray(0, 64)), Array.from(a.model.embedAllItems(backend).subarray(0, 64)));
  assert.equal(b.itemIds[5], 'i5');
  assert.equal(b.userFeatures[0].name, 'segment');
  assert.equal(b.index?.size, ITEMS);
});

test('the TF.js export loads with tfjs-core and its user tower gives the server embeddings', async () => {
  const backend = await getBackend();
  const dir = join(tmp('tfjs'), 'b');
  await makeBundle(dir, 2);
  const mj = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  assert.ok(Array.isArray(mj.weightsManifest) && mj.weightsManifest.length > 1);
  const load = tf.io.weightsLoaderFactory(async (paths: string[]) => paths.map((p) => {
    const buf = readFileSync(join(dir, p));
    return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  }));
  const W = await load(mj.weightsManifest, '', undefined);
  const uc = mj.modelTopology.user;
  const u = 42;
  const seg = W['user.feature0.values'].dataSync()[u];
  let x = tf.concat([tf.gather(W['user.id.emb'], [u]), tf.gather(W['user.feature0.emb'], [seg])], 1);
  uc.mlp.forEach((_: number, l: number) => {
    x = tf.add(tf.matMul(x, W[`user.mlp${l}.w`]), W[`user.mlp${l}.b`]);
    if (l < uc.mlp.length - 1) x = tf.relu(x);
  });
  const q = tf.div(x, tf.norm(x, 2, 1, true)).dataSync();
  const b = await readBundle(dir);
  const want = new Float32Array(b.manifest.model.dim);
  new QueryTower(b.query).embedUser(backend, u, want);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(q[i] - want[i]) < 1e-5, `dim ${i}: ${q[i]} vs ${want[i]}`);
  assert.deepEqual(W['item.embeddings'].shape, [ITEMS, b.manifest.model.dim]);
});

test('loading a damaged bundle says exactly what is wrong', async () => {
  const root = tmp('corrupt');
  const fresh = async () => {
    const d = join(root, 'b');
    rmSync(d, { recursive: true, force: true });
    await makeBundle(d, 1);
    return d;
  };
  const d = await fresh();
  const f = join(d, 'weights', 'item.embeddings.bin');
  const bytes = readFileSync(f);
  bytes[100] ^= 0x40;
  writeFileSync(f, bytes);
  await assert.rejects(readBundle(d), /weights\/item\.embeddings\.bin: checksum mismatch \(expected [0-9a-f]{12}…, got [0-9a-f]{12}…\)/);

  truncateSync(join(await fresh(), 'data', 'seen.cols.bin'), 10);
  await assert.rejects(readBundle(d), /seen\.cols\.bin: 10 bytes, the manifest says \d+ \(truncated or replaced\)/);

  rmSync(join(await fresh(), 'vocab', 'items.json'));
  await assert.rejects(readBundle(d), /vocab\/items\.json: missing from the bundle/);

  const ix = join(await fresh(), 'index', 'items.usearch');
  const ib = readFileSync(ix);
  ib[ib.length - 3] ^= 1;
  writeFileSync(ix, ib);
  await assert.rejects(readBundle(d), /index\/items\.usearch: checksum mismatch/);

  const m = join(await fresh(), 'manifest.json');
  const mf = JSON.parse(readFileSync(m, 'utf8'));
  writeFileSync(m, JSON.stringify({ ...mf, version: 99 }));
  await assert.rejects(readBundle(d), /bundle format version 99 is newer than this Towerlab reads \(2\); upgrade Towerlab/);
  writeFileSync(m, JSON.stringify({ ...mf, format: 'something' }));
  await assert.rejects(readBundle(d), /format is 'something', expected 'towerlab-bundle'/);
  writeFileSync(m, JSON.stringify({ ...mf, model: { ...mf.model, dim: 'x' } }));
  await assert.rejects(readBundle(d), /field 'model\.dim'/);
  writeFileSync(m, '{"format": "towerlab-bun');
  await assert.rejects(readBundle(d), /manifest\.json: corrupted manifest/);
  rmSync(m);
  await assert.rejects(readBundle(d), /not a bundle \(no manifest\.json\)/);
  await assert.rejects(readBundle(join(root, 'nowhere')), /nowhere: no such bundle directory/);

  const md = join(root, 'model');
  makeModelDir(md, 1);
  await assert.rejects(readBundle(md), /this is a model directory, not a bundle: make one with 'towerlab export'/);
});

test('an interrupted write leaves the previous bundle intact (error mid-write, and SIGKILL mid-write)', async () => {
  const backend = await getBackend();
  const root = tmp('atomic');
  const d = join(root, 'b');
  const first = await makeBundle(d, 1);
  const second = createBundle(backend, makeArtifacts(2), { index: null, recallQueries: 10, source: 'two' });
  assert.throws(() => writeBundle(d, second, (_p, n) => {
    if (n === 3) throw new Error('disk full');
  }), /disk full/);
  assert.equal((await readBundle(d)).id, first.manifest.id, 'old bundle still served');
  assert.deepEqual(readdirSync(root).sort(), ['.b.versions', 'b'], 'no temporary link left behind');
  assert.equal(readdirSync(join(root, '.b.versions')).length, 1, 'no temporary directory left behind, only the current version');

  // A process killed in the middle of writing: the old bundle must still load.
  const script = `
    import { getBackend } from ${JSON.stringify(join(import.meta.dirname, '..', 'src/compute/index.ts'))};
    import { createBundle, writeBundle } from ${JSON.stringify(join(import.meta.dirname, '..', 'src/bundle/write.ts'))};
    import { makeArtifacts } from ${JSON.stringify(join(import.meta.dirname, 'helpers/serve-fixture.ts'))};
    const draft = createBundle(await getBackend(), makeArtifacts(3), { index: null, recallQueries: 10, source: 'three' });
    writeBundle(${JSON.stringify(d)}, draft, (_p, n) => { if (n === 4) process.kill(process.pid, 'SIGKILL'); });
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.equal((await readBundle(d)).id, first.manifest.id, 'old bundle intact after the crash');

  writeBundle(d, second);
  assert.equal((await readBundle(d)).id, second.manifest.id, 'a complete write replaces it');
});

test('towerlab export writes a bundle from a run directory; bad input is a one-line error', () => {
  const root = tmp('export-cli');
  makeModelDir(join(root, 'run', 'model'), 1);
  const r = spawnSync(process.execPath, [BIN, 'export', '--model', join(root, 'run'), '--out', join(root, 'bundle'), '--json', '--recall-queries', '50', '--index-threads', '1'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(j.items, ITEMS);
  assert.ok(j.index.recallAt10 >= 0.9);
  assert.ok(existsSync(join(root, 'bundle', 'model.json')));
  const bad = spawnSync(process.execPath, [BIN, 'export', '--model', join(root, 'missing'), '--out', join(root, 'x')], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^towerlab: error: .*missing: no model found/);
  assert.equal(bad.stderr.trim().split('\n').length, 1, 'one line');
});
