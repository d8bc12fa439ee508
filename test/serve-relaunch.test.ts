/**
 * `towerlab serve` restarts itself with a larger V8 young generation (bin/serve-relaunch.mjs): the serving
 * process is a child started with --max-semi-space-size=64; the parent relays SIGTERM and the exit status, and
 * the child does not outlive a parent that is killed outright. Linux only (reads /proc).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeBundle, tmp } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const TOKEN = 'relaunch-test-admin-token-0123456789';

function start(dir: string) {
  const p = spawn(process.execPath, [BIN, 'serve', '--model', dir, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TOWERLAB_DEBUG: '', TOWERLAB_ADMIN_TOKEN: TOKEN } });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => p.on('exit', (code, signal) => r({ code, signal })));
  const url = new Promise<string>((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    p.on('exit', () => reject(new Error(`server exited: ${err}`)));
  });
  return { p, url, exited, err: () => err };
}

async function servingPid(url: string): Promise<number> {
  const st = (await (await fetch(`${url}/admin/status`, { headers: { authorization: `Bearer ${TOKEN}`, connection: 'close' } })).json()) as { pid: number };
  return st.pid;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

test('serve answers from a child with a larger young generation; SIGTERM (also twice) closes it and its exit code is the CLI’s', { skip: process.platform !== 'linux' && 'reads /proc (Linux)' }, async () => {
  const dir = join(tmp('relaunch'), 'b');
  await makeBundle(dir, 1);
  const s = start(dir);
  const url = await s.url;
  const pid = await servingPid(url);
  assert.notEqual(pid, s.p.pid, 'a child serves');
  assert.ok(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('--max-semi-space-size=64'), 'the child runs with the larger young generation');
  const r = await fetch(`${url}/recommend`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"user":"u1","k":3}' });
  assert.equal(r.status, 200);
  // As from a supervisor that signals the whole group: the child gets SIGTERM itself and again through the
  // parent, and still closes gracefully.
  process.kill(pid, 'SIGTERM');
  s.p.kill('SIGTERM');
  assert.deepEqual(await s.exited, { code: 0, signal: null }, s.err());
  assert.match(s.err(), /SIGTERM: closing/);
  assert.ok(!alive(pid), 'the child has exited');
});

test('a serve parent killed outright takes its child with it', { skip: process.platform !== 'linux' && 'reads /proc (Linux)' }, async () => {
  const dir = join(tmp('relaunch-kill'), 'b');
  await makeBundle(dir, 2);
  const s = start(dir);
  const pid = await servingPid(await s.url);
  s.p.kill('SIGKILL');
  await s.exited;
  // The child sees its IPC channel close and closes as on SIGTERM: poll /proc until it is gone.
  for (let i = 0; i < 600 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(!alive(pid), `child ${pid} still running after its parent was killed`);
});
