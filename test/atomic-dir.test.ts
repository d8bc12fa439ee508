/**
 * writeDirAtomic: the target path never disappears while a directory is replaced (a reader in another thread
 * polling it across many rewrites never misses), each version is complete, old versions and leftovers of a
 * crashed writer are removed (the version replaced is kept for one more write), and a plain directory from the
 * earlier layout is migrated.
 */
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { resolveDirVersion, versionStoreName, writeDirAtomic, writeFileAtomic, writeFileSynced } from '../src/util/atomic.ts';

const root = () => mkdtempSync(join(tmpdir(), 'towerlab-atomic-'));

function writeVersion(dir: string, n: number): void {
  writeDirAtomic(dir, (tmp) => {
    writeFileSynced(join(tmp, 'a.txt'), `v${n}`);
    writeFileSynced(join(tmp, 'b.txt'), `v${n}`);
  });
}

test('the path is never missing while a directory is replaced, and every read sees one complete version', async () => {
  const dir = join(root(), 'bundle');
  writeVersion(dir, 0);
  // A reader thread that opens dir/a.txt and dir/b.txt (through one resolved version) as fast as it can.
  const reader = new Worker(
    `
    const { parentPort, workerData } = require('node:worker_threads');
    const { readFileSync, realpathSync } = require('node:fs');
    const { join } = require('node:path');
    let reads = 0, missing = 0, torn = 0, stop = false;
    parentPort.on('message', () => { stop = true; });
    (function loop() {
      for (let i = 0; i < 200; i++) {
        try {
          const a = readFileSync(join(workerData, 'a.txt'), 'utf8');
          reads++;
          try {
            const real = realpathSync(workerData);
            if (readFileSync(join(real, 'a.txt'), 'utf8') !== readFileSync(join(real, 'b.txt'), 'utf8')) torn++;
          } catch (e) { /* a resolved version removed by the next write: a reader retries */ }
        } catch (e) { if (e.code === 'ENOENT') missing++; else throw e; }
      }
      if (stop) parentPort.postMessage({ reads, missing, torn }); else setImmediate(loop);
    })();
    `,
    { eval: true, workerData: dir },
  );
  const done = new Promise<{ reads: number; missing: number; torn: number }>((res, rej) => {
    reader.once('message', res);
    reader.once('error', rej);
  });
  await new Promise((r) => setTimeout(r, 20));
  for (let n = 1; n <= 300; n++) {
    writeVersion(dir, n);
    if (n % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  reader.postMessage('stop');
  const r = await done;
  await reader.terminate();
  assert.ok(r.reads > 0, 'the reader ran');
  assert.equal(r.missing, 0, `the path was missing in ${r.missing} of ${r.reads} reads`);
  assert.equal(r.torn, 0, 'a version mixed files of two writes');
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'v300');
  assert.ok(lstatSync(dir).isSymbolicLink(), 'the path is a link to the current version');
  const store = join(dir, '..', versionStoreName('bundle'));
  const versions = readdirSync(store);
  assert.equal(versions.length, 2, `the current and the previous version are kept: ${versions}`);
  assert.ok(versions.includes(resolveDirVersion(dir).split('/').pop()!));
});

test('a failed write keeps the previous version; a crashed writer\'s leftovers go with the next write', () => {
  const parent = root();
  const dir = join(parent, 'm');
  writeVersion(dir, 1);
  assert.throws(() => writeDirAtomic(dir, (tmp) => {
    writeFileSynced(join(tmp, 'a.txt'), 'half');
    throw new Error('disk full');
  }), /disk full/);
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'v1');
  const store = join(parent, versionStoreName('m'));
  assert.equal(readdirSync(store).length, 1, 'the failed write left nothing behind');
  // What a writer killed mid-write leaves: a temporary directory named after a process that is gone.
  mkdirSync(join(store, 'tmp-abc-999999999-0'));
  // ...or, killed just before its swap, a temporary link beside the directory.
  symlinkSync(join(versionStoreName('m'), 'v-abc-999999999-0'), join(parent, '.m.abc-999999999-0.link'));
  writeVersion(dir, 2);
  assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'v2');
  assert.equal(readdirSync(store).length, 2, 'v2, and v1 kept for readers that resolved it; the leftover is gone');
  writeVersion(dir, 3);
  assert.equal(readdirSync(store).length, 2, 'v1 removed once two writes have passed');
  assert.deepEqual(readdirSync(parent).sort(), [versionStoreName('m'), 'm'], 'no temporary link left');
});

test('a plain directory from the earlier layout is migrated on its first rewrite', () => {
  const parent = root();
  const dir = join(parent, 'old');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.txt'), 'legacy');
  writeVersion(dir, 1);
  assert.ok(lstatSync(dir).isSymbolicLink());
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'v1');
  assert.ok(existsSync(join(dir, 'b.txt')));
  writeVersion(dir, 2);
  const store = join(parent, versionStoreName('old'));
  assert.ok(!readdirSync(store).some((e) => e.startsWith('legacy-')), 'the old directory is removed by the next write');
  assert.equal(readdirSync(store).length, 2);
});

test('writeFileAtomic: a failed rename leaves no temporary file behind', () => {
  const parent = root();
  const target = join(parent, 'out.json');
  mkdirSync(target);
  writeFileSync(join(target, 'x'), 'occupied');
  assert.throws(() => writeFileAtomic(target, '{}'));
  assert.deepEqual(readdirSync(parent), ['out.json'], 'no .tmp sibling left');
  writeFileAtomic(join(parent, 'ok.json'), '{"a":1}');
  assert.equal(readFileSync(join(parent, 'ok.json'), 'utf8'), '{"a":1}');
  assert.deepEqual(readdirSync(parent).sort(), ['ok.json', 'out.json']);
});

test('a directory named with a trailing slash is written like the same path without it', () => {
  const parent = root();
  for (const n of [1, 2]) writeVersion(join(parent, 'm') + '/', n);
  assert.equal(readFileSync(join(parent, 'm', 'a.txt'), 'utf8'), 'v2');
  assert.ok(lstatSync(join(parent, 'm')).isSymbolicLink());
  assert.deepEqual(readdirSync(parent).sort(), [versionStoreName('m'), 'm']);
});

test("another running writer's newest version is not removed before it is linked; its older ones are", () => {
  const parent = root();
  const dir = join(parent, 'm');
  writeVersion(dir, 1);
  const store = join(parent, versionStoreName('m'));
  // What a concurrent writer (a live process: our parent) has between renaming its version into the store and
  // swapping its link: v-<time>-<pid>-<seq>. An older version of the same writer may go.
  const other = process.ppid;
  const older = `v-${(Date.now() - 5000).toString(36)}-${other}-0`;
  const pending = `v-${Date.now().toString(36)}-${other}-1`;
  for (const v of [older, pending]) {
    mkdirSync(join(store, v));
    writeFileSync(join(store, v, 'a.txt'), 'theirs');
  }
  writeVersion(dir, 2);
  writeVersion(dir, 3);
  assert.ok(existsSync(join(store, pending)), 'the pending version of a running writer survives');
  assert.ok(!existsSync(join(store, older)), 'its older version is pruned');
  assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'v3');
});
