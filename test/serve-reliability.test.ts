/**
 * What clients and operators can throw at the server: malformed JSON, wrong types, k = 0 / huge k, unknown
 * ids, a corrupted bundle, reloads racing each other under load, SIGHUP and SIGTERM. The server must answer
 * correctly or with a clear 4xx/503, never crash, and never answer from a half-loaded model.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { writeBundle, type BundleDraft } from '../src/bundle/write.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { startServer, type RunningServer } from '../src/serve/run.ts';
import { makeBundle, tmp } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const root = tmp('reliab');
const served = join(root, 'served');
let A: BundleDraft;
let B: BundleDraft;
let s: RunningServer;
/** expected[bundleId][user] = the exact top-10 ids that bundle gives that user. */
const expected: Record<string, Record<string, string[]>> = {};
const USERS = Array.from({ length: 12 }, (_, i) => `u${i * 7}`);
const TOKEN = 'reliability-test-admin-token';

before(async () => {
  const backend = await getBackend();
  A = await makeBundle(join(root, 'a'), 1);
  B = await makeBundle(join(root, 'b'), 2);
  for (const d of ['a', 'b']) {
    const b = await readBundle(join(root, d));
    const r = new Recommender(b, backend, 'exact');
    expected[b.id] = Object.fromEntries(USERS.map((u) => [u, r.recommend({ user: u, k: 10, excludeSeen: true, search: 'exact' }).items.map((x) => x.item)]));
  }
  writeBundle(served, A);
  s = await startServer({ source: served, port: 0, search: 'ann', adminToken: Buffer.from(TOKEN) });
});
after(() => s?.close());

async function call(method: string, path: string, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const auth: Record<string, string> = path.startsWith('/admin/') ? { authorization: `Bearer ${TOKEN}` } : {};
  const r = await fetch(s.url + path, { method, body, headers: body === undefined ? auth : { ...headers, ...auth } });
  const text = await r.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: r.status, json, text };
}

test('bad requests get a clear 4xx with a one-line message, and the server keeps serving', async () => {
  const cases: Array<[string, string | undefined, number, RegExp, Record<string, string>?]> = [
    ['/recommend', '{"user": "u1", ', 400, /invalid JSON body/],
    ['/recommend', '', 400, /empty body/],
    ['/recommend', 'null', 400, /JSON object body is required|expected object/],
    ['/recommend', '[1,2]', 400, /expected object/],
    ['/recommend', '"u1"', 400, /expected object/],
    ['/recommend', '{"user": "u1", "k": 0}', 400, /^k: must be at least 1$/],
    ['/recommend', '{"user": "u1", "k": -3}', 400, /^k: must be at least 1$/],
    ['/recommend', '{"user": "u1", "k": 1000000000}', 400, /^k: must be at most 1000$/],
    ['/recommend', '{"user": "u1", "k": 2.5}', 400, /^k: must be an integer$/],
    ['/recommend', '{"user": "u1", "k": "10"}', 400, /^k: .*expected number, received string/],
    ['/recommend', '{"user": {"id": 1}}', 400, /^user: must be an id/],
    ['/recommend', '{"user": ""}', 400, /^user: must be an id/],
    ['/recommend', '{"user": "u1", "excludeSeen": "yes"}', 400, /^excludeSeen: .*expected boolean/],
    ['/recommend', '{"user": "u1", "exclude_seen": false}', 400, /^unknown field 'exclude_seen'$/],
    ['/recommend', '{"k": 5}', 400, /give exactly one of 'user', 'features', 'history'/],
    ['/recommend', '{"user": "u1", "history": ["i1"]}', 400, /\(got user and history\)/],
    ['/recommend', '{"history": []}', 400, /^history: must list at least one item$/],
    ['/recommend', '{"user": "u1", "filter": {"features": {"colour": ["red"]}}}', 400, /^filter\.features\.colour: unknown item feature \(the model has 'category'\)$/],
    ['/recommend', '{"user": "u1", "filter": {"include": "i1"}}', 400, /^filter\.include: .*expected array/],
    ['/recommend', '{"features": {"age": "30"}}', 400, /^features\.age: unknown user feature \(the model has 'segment'\)$/],
    ['/recommend', '{"user": "u1", "search": "fast"}', 400, /^search: must be 'ann' or 'exact'$/],
    ['/recommend', '{"user": "u1"}', 415, /Content-Type must be application\/json/, { 'content-type': 'text/plain' }],
    ['/recommend', JSON.stringify({ history: Array.from({ length: 100000 }, (_, i) => `item-${i}`) }), 413, /larger than 1 MiB/],
    ['/similar', '{"item": "nope"}', 404, /^unknown item 'nope'$/],
    ['/similar', '{"k": 3}', 400, /^item: /],
    ['/embed', '{"user": "ghost"}', 404, /^unknown user 'ghost'$/],
    ['/nowhere', '{}', 404, /^no route POST \/nowhere$/],
  ];
  for (const [path, body, status, msg, headers] of cases) {
    const r = await call('POST', path, body, headers);
    assert.equal(r.status, status, `${path} ${body?.slice(0, 60)}: ${r.text.slice(0, 200)}`);
    assert.match(r.json?.message ?? '', msg, `${path} ${body?.slice(0, 60)}`);
    assert.ok(!r.json.message.includes('\n') && !/\bat \S+:\d+/.test(r.text), 'one line, no stack');
  }
  assert.equal((await call('GET', '/recommend')).status, 404);
  // Unknown ids are not errors where a sensible answer exists.
  const cold = await call('POST', '/recommend', '{"user": 12345, "k": 3}');
  assert.equal(cold.status, 200);
  assert.equal(cold.json.source, 'popularity');
  const big = await call('POST', '/recommend', '{"user": "u1", "k": 1000, "filter": {"include": ["i1", "i2"]}}');
  assert.equal(big.status, 200);
  assert.ok(big.json.items.length <= 2, 'k larger than the candidates: all of them');
  assert.equal((await call('GET', '/health')).json.status, 'ok');
});

test('a corrupted bundle is rejected on reload with the file named, and the old model keeps serving', async () => {
  const before = (await call('GET', '/health')).json.model.id;
  writeBundle(served, B);
  const f = join(served, 'weights', 'dense.bin');
  const b = readFileSync(f);
  b[8] ^= 0x10;
  writeFileSync(f, b);
  const r = await call('POST', '/admin/reload');
  assert.equal(r.status, 422);
  assert.match(r.json.message, /weights\/dense\.bin: checksum mismatch .* still serving [0-9a-f]{12}$/);
  const h = (await call('GET', '/health')).json;
  assert.equal(h.model.id, before);
  assert.equal(h.status, 'degraded', 'serving the old bundle after a rejected reload');
  assert.ok(!('lastReloadError' in h) && !('pid' in h) && !JSON.stringify(h).includes(root), '/health shows no error text, pid or path');
  assert.match((await call('GET', '/admin/status')).json.lastReloadError, /dense\.bin: checksum mismatch/);
  const rec = await call('POST', '/recommend', '{"user": "u7", "k": 10, "search": "exact"}');
  assert.deepEqual(rec.json.items.map((x: any) => x.item), expected[before].u7);
  writeBundle(served, A);
  assert.equal((await call('POST', '/admin/reload')).status, 200);
  assert.equal((await call('GET', '/health')).json.status, 'ok');
  const m = await call('GET', '/metrics');
  assert.match(m.text, /towerlab_model_reloads_total\{result="error"\} [1-9]/);
});

test('concurrent reloads under load: every answer is 200 and wholly from one complete model', async () => {
  const ROUNDS = 6;
  const PER_ROUND = 16;
  const seen = new Map<string, number>();
  const problems: string[] = [];
  let answered = 0;
  let stop = false;
  // Resolved once `answered` reaches a target: the reloader waits for answers, not for the clock.
  const waiters: Array<[number, () => void]> = [];
  const answeredAtLeast = (n: number) => new Promise<void>((r) => (answered >= n ? r() : waiters.push([n, r])));
  const client = async (c: number) => {
    for (let i = 0; !stop; i++) {
      const user = USERS[(c * 5 + i) % USERS.length];
      const r = await call('POST', '/recommend', JSON.stringify({ user, k: 10, search: i % 2 ? 'exact' : 'ann' }));
      answered++;
      for (let w = waiters.length - 1; w >= 0; w--) if (waiters[w][0] <= answered) waiters.splice(w, 1)[0][1]();
      if (r.status !== 200) {
        problems.push(`HTTP ${r.status}: ${r.text}`);
        continue;
      }
      const want = expected[r.json.model]?.[user];
      seen.set(r.json.model, (seen.get(r.json.model) ?? 0) + 1);
      if (!want) problems.push(`unknown model ${r.json.model}`);
      else if (r.json.search === 'exact' && JSON.stringify(r.json.items.map((x: any) => x.item)) !== JSON.stringify(want)) problems.push(`model ${r.json.model} answered ${user} wrongly`);
    }
  };
  const reloader = async () => {
    const statuses: number[] = [];
    // A fixed number of rounds (A→B→A→…), each followed by PER_ROUND answers under the new model.
    for (let i = 0; i < ROUNDS; i++) {
      writeBundle(served, i % 2 ? A : B);
      // Several reloads at once: coalesced, never interleaved.
      const rs = await Promise.all([call('POST', '/admin/reload'), call('POST', '/admin/reload'), call('POST', '/admin/reload')]);
      statuses.push(...rs.map((r) => r.status));
      await answeredAtLeast(answered + PER_ROUND);
    }
    stop = true;
    return statuses;
  };
  const [statuses] = await Promise.all([reloader(), ...Array.from({ length: 8 }, (_, c) => client(c))]);
  assert.deepEqual(problems.slice(0, 5), []);
  assert.ok(answered >= ROUNDS * PER_ROUND, `answered ${answered}`);
  assert.ok(statuses.length === 3 * ROUNDS && statuses.every((x) => x === 200), `reload statuses ${statuses}`);
  assert.equal(seen.size, 2, `answers came from both bundles: ${[...seen.entries()]}`);
});

test('--watch: a bundle written over the served one is picked up without a signal', async () => {
  const dir = join(root, 'watched');
  writeBundle(dir, A);
  const w = await startServer({ source: dir, port: 0, watch: true });
  try {
    const id = async () => (await (await fetch(`${w.url}/health`)).json()).model.id;
    assert.equal(await id(), A.manifest.id);
    writeBundle(dir, B);
    for (let i = 0; i < 100 && (await id()) !== B.manifest.id; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await id(), B.manifest.id);
  } finally {
    await w.close();
  }
});

test('the CLI server: SIGHUP reloads, SIGTERM finishes the in-flight request then exits 0; start-up errors are one line', async () => {
  const dir = join(root, 'cli');
  writeBundle(dir, A);
  const p = spawn(process.execPath, [BIN, 'serve', '--model', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TOWERLAB_DEBUG: '' } });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    p.on('exit', () => reject(new Error(`server exited: ${err}`)));
  });
  const health = async () => (await (await fetch(`${url}/health`)).json()).model.id;
  assert.equal(await health(), A.manifest.id);
  writeBundle(dir, B);
  p.kill('SIGHUP');
  for (let i = 0; i < 100 && (await health()) !== B.manifest.id; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(await health(), B.manifest.id, 'SIGHUP swapped the bundle in');

  // A request whose body is still arriving when SIGTERM lands is answered in full.
  const { port, hostname } = new URL(url);
  const body = JSON.stringify({ user: 'u7', k: 10, search: 'exact' });
  // Events instead of sleeps: the server's "100 Continue" says it has parsed the headers (the request is in
  // flight); its "SIGTERM: closing" line says the close has begun; only then does the body's rest go out.
  const sock = connect(Number(port), hostname);
  await new Promise((r) => sock.once('connect', r));
  let reply = '';
  let onReply: (() => void) | null = null;
  sock.on('data', (d) => {
    reply += d;
    onReply?.();
  });
  const closed = new Promise((r) => sock.on('close', r));
  const continued = new Promise<void>((r) => (onReply = () => /^HTTP\/1\.1 100 Continue\r\n\r\n/.test(reply) && r()));
  sock.write(`POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`);
  await continued;
  const closing = new Promise<void>((r) => {
    const check = () => /SIGTERM: closing/.test(err) && r();
    p.stderr.on('data', check);
    check();
  });
  p.kill('SIGTERM');
  await closing;
  sock.write(body.slice(10));
  await closed;
  reply = reply.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
  assert.match(reply, /^HTTP\/1\.1 200/);
  assert.deepEqual(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)).items.map((x: any) => x.item), expected[B.manifest.id].u7);
  assert.equal(await exited, 0, err);
  assert.match(err, /SIGTERM: closing/);

  const bad = join(root, 'bad');
  writeBundle(bad, A);
  writeFileSync(join(bad, 'vocab', 'users.json'), '["tampered"]');
  const r = spawnSync(process.execPath, [BIN, 'serve', '--model', bad, '--port', '0'], { encoding: 'utf8', env: { ...process.env, TOWERLAB_DEBUG: '' } });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^towerlab: error: .*vocab\/users\.json: \d+ bytes, the manifest says \d+ \(truncated or replaced\)\n$/);
});
