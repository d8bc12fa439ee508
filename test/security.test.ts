/**
 * Regression tests for issue #13 ("Trust nothing from disk or network"), one block per numbered failure.
 * Bundles are tampered with as an attacker who knows the format would: sizes, checksums and the content id
 * recomputed (helpers/tamper.ts), so only the structural checks, the containment checks or a signature can
 * tell. Cases that could crash the process without the checks (native HNSW loads) run in a child server, so a
 * signal shows up as a failed assertion rather than killing the runner.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { loadModel, saveModel } from '../src/model/saved-model.ts';
import { checkTextLimits } from '../src/recipe/limits.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { ModelHolder } from '../src/serve/model-holder.ts';
import { buildServer, defaultServerOptions } from '../src/serve/server.ts';
import { UserError } from '../src/util/errors.ts';
import { makeArtifacts, makeBundle, tmp } from './helpers/serve-fixture.ts';
import { reseal, tamperFile, usearchLayout } from './helpers/tamper.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const root = tmp('security');
const TOKEN = 'security-test-admin-token-0123456789';
const children: ChildProcess[] = [];
after(() => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));

let n = 0;
/** A fresh copy of the fixture bundle (seed 1, HNSW index). */
async function bundle(seed = 1): Promise<string> {
  const d = join(root, `b${n++}`);
  await makeBundle(d, seed);
  return d;
}

/** `towerlab serve` in a child: resolves when it listens (with its URL) or exits (with its code and stderr). */
function serve(dir: string, extra: string[] = [], env: Record<string, string> = {}): Promise<{ code: number | null; signal: string | null; err: string; url?: string; p: ChildProcess }> {
  const p = spawn(process.execPath, [BIN, 'serve', '--model', dir, '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TOWERLAB_DEBUG: '', ...env } });
  children.push(p);
  let err = '';
  let out = '';
  p.stderr!.on('data', (d) => (err += d));
  return new Promise((resolve) => {
    p.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve({ code: null, signal: null, err, url: m[1], p });
    });
    p.on('exit', (code, signal) => resolve({ code, signal, err, p }));
  });
}

const assertOneLine = (r: { code: number | null; signal: string | null; err: string }, re: RegExp) => {
  assert.equal(r.signal, null, `killed by ${r.signal}: ${r.err}`);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, re);
  assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
};

/** Every `towerlab-serve-index-<pid>-*` directory in the temp folder. */
const privateDirs = (pid: number) => readdirSync(tmpdir()).filter((e) => e.startsWith(`towerlab-serve-index-${pid}-`));

// 1. A bundle whose checksums match can crash `serve` (SIGSEGV).
test('#13.1 a crafted HNSW index (count, neighbour slots) is a one-line error at start and a rejected reload, never a signal', async () => {
  const count = await bundle();
  tamperFile(count, 'index/items.usearch', (b) => {
    b.writeBigUInt64LE(4_000_000n, usearchLayout(b).countPresent);
  });
  // In one process (no relaunch with a larger young generation, bin/serve-relaunch.mjs), so the private
  // copy would carry the spawned process's pid.
  const r1 = await serve(count, [], { TOWERLAB_SERVE_RELAUNCH: '0' });
  assertOneLine(r1, /index\/items\.usearch: not a valid HNSW index: header counts 4000000 vectors/);
  assert.doesNotMatch(r1.err, /towerlab-serve-index/, 'the user path, not the private copy');
  assert.deepEqual(privateDirs(r1.p.pid!), [], 'no private copy left behind');

  const graphSize = await bundle();
  tamperFile(graphSize, 'index/items.usearch', (b) => {
    b.writeBigUInt64LE(4_000_000n, usearchLayout(b).graph);
  });
  assertOneLine(await serve(graphSize), /not a valid HNSW index: graph holds 4000000 nodes/);

  const slots = await bundle();
  const crafted = (b: Buffer) => {
    const L = usearchLayout(b);
    let written = 0;
    for (const o of L.nodes) {
      const cnt = b.readUInt32LE(o + 10);
      for (let k = 0; k < cnt && written < 200; k++, written++) b.writeUInt32LE(0x7fff0000 + k, o + 14 + 4 * k);
      if (written >= 200) break;
    }
  };
  tamperFile(slots, 'index/items.usearch', crafted);
  assertOneLine(await serve(slots), /not a valid HNSW index: node 0 level 0: neighbour slot \d+ out of range/);

  // The same index through a hot reload: rejected and reported, the old bundle keeps answering.
  const live = join(root, 'live');
  await makeBundle(live, 1);
  const s = await serve(live, [], { TOWERLAB_ADMIN_TOKEN: TOKEN });
  assert.ok(s.url, s.err);
  await makeBundle(live, 2);
  tamperFile(live, 'index/items.usearch', crafted);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const rr = await fetch(`${s.url}/admin/reload`, { method: 'POST', headers: auth });
  assert.equal(rr.status, 422);
  assert.match(((await rr.json()) as any).message, /items\.usearch: not a valid HNSW index: .* still serving [0-9a-f]{12}$/);
  for (let i = 0; i < 3; i++) {
    const rec: Response = await fetch(`${s.url}/recommend`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: `u${i}`, k: 10 }) });
    assert.equal(rec.status, 200);
  }
  const h = (await (await fetch(`${s.url}/health`)).json()) as any;
  assert.equal(h.status, 'degraded');
  assert.match(((await (await fetch(`${s.url}/admin/status`, { headers: auth })).json()) as any).lastReloadError, /not a valid HNSW index/);
  s.p.kill('SIGTERM');
  await new Promise((r) => s.p.once('exit', r));
  assert.equal(s.p.exitCode, 0);
});

// 2. Manifest paths leave the bundle.
test('#13.2 manifest paths stay inside the bundle: no `..`, no absolute path, no symbolic link out, no file contents in errors', async () => {
  const up = await bundle();
  reseal(up, (m) => (m.files['../../../../../../../../etc/passwd'] = { bytes: 0, sha256: '' }));
  await assert.rejects(readBundle(up), /field 'files\.\.\.\/\.\.\/.*leaves the directory/);

  const abs = await bundle();
  const hostname = existsSync('/etc/hostname') ? readFileSync('/etc/hostname', 'utf8').trim() : '';
  reseal(abs, (m) => {
    m.files['/etc/hostname'] = { bytes: 0, sha256: '' };
    m.vocabularies.users.file = '/etc/hostname';
  });
  await assert.rejects(readBundle(abs), (e: Error) => e instanceof UserError && /is absolute/.test(e.message) && (!hostname || !e.message.includes(hostname)));

  // A vocabulary pointing at a file that is not JSON: the error names the position, never the bytes.
  const notJson = await bundle();
  writeFileSync(join(notJson, 'vocab', 'features.json'), 'root:x:0:0:root:/root:/bin/bash\n');
  reseal(notJson);
  await assert.rejects(readBundle(notJson), (e: Error) => e instanceof UserError && /features\.json: unreadable vocabulary \(not valid JSON/.test(e.message) && !e.message.includes('root:x'));

  const link = await bundle();
  const outside = join(root, 'outside-items.json');
  const real = realpathSync(link);
  copyFileSync(join(real, 'vocab', 'items.json'), outside);
  unlinkSync(join(real, 'vocab', 'items.json'));
  symlinkSync(outside, join(real, 'vocab', 'items.json'));
  await assert.rejects(readBundle(link), /vocab\/items\.json: a symbolic link/);

  // The demo serves listed names only, and re-checks what it does not hold in memory.
  const demo = await bundle();
  const backend = await getBackend();
  const holder = new ModelHolder(demo, backend, 'exact');
  await holder.reload();
  const app = buildServer(holder, new ServerMetrics(), { ...defaultServerOptions, demo: true });
  const id = holder.current!.id;
  for (const url of [`/bundle/${id}/../../../../../../../../etc/passwd`, `/bundle/${id}/..%2F..%2F..%2F..%2Fetc%2Fpasswd`, `/bundle/${id}/%2Fetc%2Fpasswd`]) {
    const r = await app.inject({ url });
    assert.equal(r.statusCode, 404, url);
    assert.doesNotMatch(r.body, /root:/);
  }
  assert.equal((await app.inject({ url: `/bundle/${id}/vocab/users.json` })).statusCode, 200);
  const users = join(realpathSync(demo), 'vocab', 'users.json');
  copyFileSync(users, join(root, 'users-copy.json'));
  unlinkSync(users);
  symlinkSync('/etc/passwd', users);
  const swapped = await app.inject({ url: `/bundle/${id}/vocab/users.json` });
  assert.notEqual(swapped.statusCode, 200);
  assert.doesNotMatch(swapped.body, /root:/);
  await app.close();
});

// 3. Admin and information exposure.
test('#13.3 admin routes need a token (off without one); /health and /model expose no pid, paths, error text or recipe; reloads coalesce', async () => {
  const d = await bundle();
  const backend = await getBackend();
  const holder = new ModelHolder(d, backend, 'exact', () => {}, () => {}, undefined, undefined, undefined, { reloadMinIntervalMs: 0 });
  await holder.reload();
  const off = buildServer(holder, new ServerMetrics(), defaultServerOptions);
  assert.equal((await off.inject({ method: 'POST', url: '/admin/reload' })).statusCode, 404, 'no admin routes without a token');
  const app = buildServer(holder, new ServerMetrics(), { ...defaultServerOptions, adminToken: Buffer.from(TOKEN) });
  for (const authorization of [undefined, 'Bearer wrong-token-wrong-token', `Basic ${TOKEN}`, `Bearer ${TOKEN}x`]) {
    const r = await app.inject({ method: 'POST', url: '/admin/reload', headers: authorization ? { authorization } : {} });
    assert.equal(r.statusCode, 401, String(authorization));
  }
  assert.equal((await app.inject({ method: 'POST', url: '/%61dmin/reload' })).statusCode, 401, 'an encoded path is still the admin route');
  const ok = { authorization: `Bearer ${TOKEN}` };
  assert.equal((await app.inject({ method: 'POST', url: '/admin/reload', headers: ok })).statusCode, 200);

  // Five reload requests at once share one reload.
  const before = holder.reloads;
  const rs = await Promise.all(Array.from({ length: 5 }, () => app.inject({ method: 'POST', url: '/admin/reload', headers: ok })));
  assert.deepEqual(rs.map((r) => r.statusCode), [200, 200, 200, 200, 200]);
  assert.equal(holder.reloads - before, 1, 'coalesced into one reload');

  // A failed reload: /health says degraded, nothing more; the reason is behind the token.
  reseal(d, (m) => (m.files['../../../etc/passwd'] = { bytes: 1, sha256: 'x' }));
  assert.equal((await app.inject({ method: 'POST', url: '/admin/reload', headers: ok })).statusCode, 422);
  const h = (await app.inject({ url: '/health' })).json();
  assert.equal(h.status, 'degraded');
  assert.deepEqual(Object.keys(h).sort(), ['index', 'instance', 'model', 'reloading', 'search', 'status']);
  assert.ok(!JSON.stringify(h).includes(root));
  assert.match((await app.inject({ url: '/admin/status', headers: ok })).json().lastReloadError, /leaves the directory/);

  const m = (await app.inject({ url: '/model' })).json();
  const text = JSON.stringify(m);
  assert.ok(!text.includes(root) && !text.includes('fixture:'), `no source path in /model: ${text.slice(0, 300)}`);
  assert.deepEqual(m.source, { modelCreated: '2026-01-01T00:00:00.000Z' });
  assert.deepEqual(m.recipe, { name: 'fixture' }, 'the recipe by name only');
  const dm = (await app.inject({ url: `/bundle/${m.id}/manifest.json` })).statusCode;
  assert.equal(dm, 404, 'no demo routes without --demo');
});

// 4. A crafted seen.offsets stalls the event loop.
test('#13.4 crafted seen.offsets (non-monotone, out of bounds) are refused at load', async () => {
  const d = await bundle();
  tamperFile(d, 'data/seen.offsets.bin', (b) => {
    b.writeInt32LE(2 ** 31 - 1, 4);
  });
  await assert.rejects(readBundle(d), /seen list offsets decrease|seen lists are inconsistent/);
  const d2 = await bundle();
  tamperFile(d2, 'data/seen.offsets.bin', (b) => {
    b.writeInt32LE(-5, 4);
  });
  await assert.rejects(readBundle(d2), /seen list offsets decrease/);
  // Feature values beyond their vocabulary, likewise.
  const d3 = await bundle();
  tamperFile(d3, 'data/user.feature0.values.bin', (b) => {
    b.writeInt32LE(1_000_000, 8);
  });
  await assert.rejects(readBundle(d3), /user feature 'segment' of row 2 has value index 1000000, outside its vocabulary/);
});

// 5. Unchecked metadata gives wrong answers with exit 0.
test('#13.5 edited vocab.json / tensor offsets of a model, a fake bundle id and swapped tensors are refused; signing covers the rest', async () => {
  const md = join(root, 'model');
  saveModel(md, makeArtifacts(1), false);
  loadModel(md);
  const real = realpathSync(md);
  const vocab = join(real, 'vocab.json');
  const v0 = readFileSync(vocab, 'utf8');
  writeFileSync(vocab, v0.replace('"u0"', '"X0"'));
  assert.throws(() => loadModel(md), /vocab\.json: checksum mismatch/);
  writeFileSync(vocab, v0);
  const mp = join(real, 'manifest.json');
  const m0 = readFileSync(mp, 'utf8');
  const mm = JSON.parse(m0);
  mm.tensors[1].offset += 8;
  writeFileSync(mp, JSON.stringify(mm));
  assert.throws(() => loadModel(md), /tensors\.bin: tensor '.*' declared at byte \d+, the layout puts it at \d+/);
  const swapped = JSON.parse(m0);
  [swapped.tensors[0].name, swapped.tensors[1].name] = [swapped.tensors[1].name, swapped.tensors[0].name];
  writeFileSync(mp, JSON.stringify(swapped));
  assert.throws(() => loadModel(md), /declared at byte|has \d+ values, the config implies/);

  const evil = await bundle();
  reseal(evil, (m) => (m.id = 'evil'), { keepId: true });
  await assert.rejects(readBundle(evil), /bundle id 'evil' does not match its content \([0-9a-f]{12}\)/);

  // Two same-shape arrays of one file swapped: the id no longer matches...
  const swap = (m: any) => {
    const i = m.arrays.findIndex((a: any) => a.name === 'user.mlp0.b');
    const j = m.arrays.findIndex((a: any) => a.name === 'item.mlp0.b');
    [m.arrays[i], m.arrays[j]] = [m.arrays[j], m.arrays[i]];
  };
  const sw = await bundle();
  reseal(sw, swap, { keepId: true });
  await assert.rejects(readBundle(sw), /does not match its content/);

  // ...and with the id recomputed too, only a signature can tell: signed bundles, served with --verify-key.
  const key = Buffer.from('a-signing-key-of-at-least-16-bytes');
  const backend = await getBackend();
  const draft = createBundle(backend, makeArtifacts(1), { index: null, recallQueries: 10, source: 'signed' });
  const signed = join(root, 'signed');
  writeBundle(signed, draft, undefined, { signKey: key });
  assert.equal((await readBundle(signed, { verifyKey: key })).id, draft.manifest.id);
  await assert.rejects(readBundle(signed, { verifyKey: Buffer.from('another-key-of-at-least-16-bytes') }), /manifest\.json\.sig: signature does not match/);
  reseal(signed, swap);
  await assert.rejects(readBundle(signed, { verifyKey: key }), /signature does not match the manifest/);
  const unsigned = await bundle();
  await assert.rejects(readBundle(unsigned, { verifyKey: key }), /bundle is not signed/);
  // The CLI: a key file, refused unsigned, one line.
  const keyFile = join(root, 'key');
  writeFileSync(keyFile, `${key.toString()}\n`);
  assertOneLine(await serve(unsigned, ['--verify-key', keyFile]), /bundle is not signed \(no manifest\.json\.sig\) and --verify-key was given/);
});

// 6. Recipe sizes are unbounded.
test('#13.6 recipe sizes beyond the data or the memory are one error naming the field, never an internal error', async () => {
  const numItems = 400;
  const trainItems = Int32Array.from({ length: 5000 }, (_, i) => (i * 7) % numItems);
  const trainUsers = Int32Array.from({ length: 5000 }, (_, i) => Math.floor(i / 10));
  const rows = 500;
  const offsets = Int32Array.from({ length: rows + 1 }, (_, u) => u * 10);
  const ctx = { numItems, trainItems, trainUsers, dim: 64, batchSize: 256, trainSequences: { rows, offsets, cols: trainItems } };
  const cases: Array<[unknown, RegExp]> = [
    [{ sources: [{ type: 'uniform', n: 1e9 }] }, /field 'sources\.0\.n': 1000000000 negatives per batch need ~\d[\d,]* GB of memory/],
    [{ sources: [{ type: 'in-batch' }, { type: 'popularity', n: 1e9 }] }, /field 'sources\.1\.n': 1000000000 negatives per batch need/],
    [{ corrections: { logQ: { estimator: 'streaming', hashSize: 1e9 } } }, /field 'corrections\.logQ\.hashSize': a hash of 1000000000 slots need ~16 GB/],
    [{ batchSampler: { type: 'rwr', candidates: 1e9, neighbours: 1e9 } }, /field 'batchSampler\.(candidates|neighbours)'/],
    [{ sources: [{ type: 'queue', size: 1e9 }] }, /field 'sources\.0\.size': a queue of 1000000000 embeddings need/],
    [{ sources: [{ type: 'neighbourhood', n: 1e9 }] }, /field 'sources\.0\.n': 1000000000 negatives per row, but the catalogue has 400 items/],
    [{ sources: [{ type: 'mined', n: 1e9 }] }, /field 'sources\.0\.n': 1000000000 negatives per row, but the catalogue has 400 items/],
    [{ sources: [{ type: 'stratified', n: 1e9, column: 'x' }] }, /field 'sources\.0\.n'/],
    [{ sources: [{ type: 'uniform', n: 1e12 }] }, /field 'sources\.0\.n': Too big/i],
  ];
  for (const [json, re] of cases) {
    assert.throws(
      () => buildSources(parseRecipe(json), ctx),
      (e: Error) => e instanceof UserError && re.test(e.message) && !/internal error|Invalid typed array/i.test(e.message),
      JSON.stringify(json),
    );
  }
  // `towerlab text` takes its sizes from flags: the same rule, naming the flag.
  assert.throws(() => checkTextLimits({ buckets: 1e9, dim: 256, batchSize: 64, hardNegatives: 0, hardPool: 20, trainQueries: 1000 }), /^UserError: --buckets: 1000000000 hashed rows of 256 values \(with Adam's moments\) need ~3,072 GB/);
  assert.throws(() => checkTextLimits({ buckets: 1000, dim: 64, batchSize: 64, hardNegatives: 1e9, hardPool: 20, trainQueries: 1000 }), /^UserError: --hard-negatives: /);
  checkTextLimits({ buckets: 1 << 18, dim: 64, batchSize: 64, hardNegatives: 4, hardPool: 20, trainQueries: 1000 });

  // Through the CLI: exit 2, one line.
  const recipe = join(root, 'huge.json');
  writeFileSync(recipe, JSON.stringify({ sources: [{ type: 'uniform', n: 1e9 }] }));
  const r = spawnSync(process.execPath, [BIN, 'train', '--data', 'synthetic:users=200,items=100,clusters=4,seed=1', '--recipe', recipe, '--epochs', '1', '--no-progress', '--out', join(root, 'run')], { encoding: 'utf8', env: { ...process.env, TOWERLAB_DEBUG: '' } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /huge\.json|recipe: field 'sources\.0\.n': 1000000000 negatives per batch need ~\d/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

// 7. Prototype keys, temp copies, private paths in messages.
test('#13.7 /assets/__proto__ and friends are 404; private index copies of dead servers are swept', async () => {
  const d = await bundle();
  const backend = await getBackend();
  const holder = new ModelHolder(d, backend, 'exact');
  await holder.reload();
  const app = buildServer(holder, new ServerMetrics(), { ...defaultServerOptions, demo: true });
  for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__']) {
    const r = await app.inject({ url: `/assets/${name}` });
    assert.equal(r.statusCode, 404, `${name}: ${r.body}`);
    assert.match(r.json().message, /^no asset/);
  }
  for (const name of ['__proto__', 'constructor', 'toString']) assert.equal((await app.inject({ url: `/bundle/${holder.current!.id}/${name}` })).statusCode, 404);
  await app.close();

  // A server killed while loading leaves its private copy; the next load removes it (its pid is gone).
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const stale = join(tmpdir(), `towerlab-serve-index-${dead.stdout}-test`);
  mkdirSync(stale, { recursive: true });
  writeFileSync(join(stale, 'items.usearch'), 'x');
  await readBundle(d);
  assert.ok(!existsSync(stale), 'stale private copy swept');
  assert.deepEqual(privateDirs(process.pid), [], 'own private copy removed after loading');
  rmSync(stale, { recursive: true, force: true });
});
