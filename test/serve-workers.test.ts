/**
 * `towerlab serve --workers N`: N processes answer on one port; SIGHUP and POST /admin/reload reach every
 * worker; a killed worker is replaced; SIGTERM closes them all and the primary exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeBundle } from '../src/bundle/write.ts';
import { makeBundle, tmp } from './helpers/serve-fixture.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('serve --workers 2: two processes on one port, reloads reach both, a dead worker is replaced, SIGTERM exits 0', async () => {
  const root = tmp('workers');
  const dir = join(root, 'bundle');
  const A = await makeBundle(join(root, 'a'), 1);
  const B = await makeBundle(join(root, 'b'), 2);
  writeBundle(dir, A);
  const token = 'workers-test-admin-token-0123456789';
  // The token reaches every worker through the environment (each worker reads it at start).
  const p = spawn(process.execPath, [BIN, 'serve', '--model', dir, '--port', '0', '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TOWERLAB_DEBUG: '', TOWERLAB_ADMIN_TOKEN: token } });
  let err = '';
  p.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      p.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/listening on (http:\/\/\S+) \(2 workers\)/);
        if (m) resolve(m[1]);
      });
      p.on('exit', () => reject(new Error(`server exited: ${err}`)));
    });
    const health = async () => (await (await fetch(`${url}/health`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(2000) })).json()) as { instance: string; model: { id: string } };
    // New connections are spread over the workers: both answer within a few tries.
    const seen = async () => {
      const byInstance = new Map<string, string>();
      for (let i = 0; i < 20 && byInstance.size < 2; i++) {
        const h = await health();
        byInstance.set(h.instance, h.model.id);
      }
      return byInstance;
    };
    let workers = await seen();
    assert.equal(workers.size, 2, 'two worker processes answer');
    assert.deepEqual([...new Set(workers.values())], [A.manifest.id]);

    // SIGHUP to the primary reloads every worker.
    writeBundle(dir, B);
    p.kill('SIGHUP');
    for (let i = 0; i < 100; i++) {
      workers = await seen();
      if ([...workers.values()].every((id) => id === B.manifest.id) && workers.size === 2) break;
      await sleep(100);
    }
    assert.deepEqual([...new Set(workers.values())], [B.manifest.id], 'SIGHUP reached both workers');

    // POST /admin/reload lands on one worker, which tells the primary, which reloads the other.
    writeBundle(dir, A);
    assert.equal((await fetch(`${url}/admin/reload`, { method: 'POST' })).status, 401, 'no token, no reload');
    const r = await fetch(`${url}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200);
    for (let i = 0; i < 100; i++) {
      workers = await seen();
      if ([...workers.values()].every((id) => id === A.manifest.id) && workers.size === 2) break;
      await sleep(100);
    }
    assert.deepEqual([...new Set(workers.values())], [A.manifest.id], '/admin/reload reached both workers');

    // A worker that dies is replaced.
    // Its pid only through the authenticated status route (public /health names an opaque instance).
    const st = (await (await fetch(`${url}/admin/status`, { headers: { authorization: `Bearer ${token}`, connection: 'close' } })).json()) as { pid: number; instance: string };
    assert.ok(st.pid !== p.pid, 'the primary does not serve');
    const victim = st.instance;
    process.kill(st.pid, 'SIGKILL');
    let after = new Map<string, string>();
    for (let i = 0; i < 100; i++) {
      await sleep(100);
      try {
        after = await seen();
      } catch {
        continue; // a connection to the dying worker
      }
      if (after.size === 2 && !after.has(victim)) break;
    }
    assert.equal(after.size, 2, 'two workers again');
    assert.ok(!after.has(victim), 'the killed worker was replaced');
    assert.match(err, /exited \(SIGKILL\): starting a replacement/);
  } finally {
    p.kill('SIGTERM');
  }
  assert.equal(await exited, 0, err);
  assert.match(err, /SIGTERM: closing 2 workers/);
});
