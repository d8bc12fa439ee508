/**
 * Fuzzing what comes from disk (bundle manifests, HNSW and IVF index files) and recipe JSON (issue #13).
 * Bounded by iteration count with a fixed seed, never by wall-clock time: every case must end in a valid load
 * (then searched) or a clean UserError — never another exception, a signal or a hang.
 *
 * Bundle cases are mutated on disk by this process (sizes, checksums and the id recomputed for most, so the
 * structural checks are what stands between the bytes and native code) and loaded by ONE child process, which
 * reports each case on a line: a SIGSEGV in usearch or the IVF kernel then fails this test, naming the case,
 * instead of killing the test runner.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { UserError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';
import { makeArtifacts, makeBundle, tmp } from './helpers/serve-fixture.ts';
import { reseal, usearchLayout } from './helpers/tamper.ts';

const MANIFEST_CASES = 40;
const HNSW_CASES = 40;
const IVF_CASES = 20;
const RECIPE_CASES = 300;

const rng = new Rng(13);
const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)];
const INTERESTING = [0, -1, 1, 2, 3, 7, 255, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 4_000_000, 1e9, 2 ** 53, 0.5, -0.0];
const JUNK: unknown[] = [null, true, 'x', '', '../../../../etc/passwd', '/etc/hostname', 'weights/../../x', [], {}, [1, 2], { a: 1 }, ...INTERESTING];

/** Every [path, value] leaf of a JSON value. */
function leaves(v: any, path: (string | number)[] = [], out: Array<(string | number)[]> = []): Array<(string | number)[]> {
  if (v && typeof v === 'object') {
    out.push(path);
    for (const k of Object.keys(v)) leaves(v[k], [...path, Array.isArray(v) ? Number(k) : k], out);
  } else out.push(path);
  return out;
}

function mutateJson(m: any): void {
  const paths = leaves(m).filter((p) => p.length > 0);
  const p = pick(paths);
  const parent = p.slice(0, -1).reduce((o: any, k) => o[k], m);
  const key = p[p.length - 1];
  switch (rng.int(4)) {
    case 0:
      if (Array.isArray(parent)) parent.splice(Number(key), 1);
      else delete parent[key];
      break;
    case 1: {
      // Swap with a sibling (reordered arrays, exchanged fields).
      const ks = Object.keys(parent);
      const other = ks[rng.int(ks.length)];
      [parent[key], parent[other]] = [parent[other], parent[key]];
      break;
    }
    case 2:
      if (typeof parent[key] === 'number') parent[key] = pick([parent[key] + 1, parent[key] * 2, -parent[key], parent[key] + 8, ...INTERESTING]);
      else parent[key] = pick(JUNK);
      break;
    default:
      parent[key] = pick(JUNK);
  }
}

function mutateHnsw(b: Buffer): void {
  const L = usearchLayout(b);
  const at = (o: number, bytes: number) => o + bytes <= b.length;
  const kind = rng.int(5);
  if (kind === 0) {
    // A header field: counts, dimensions, connectivity, levels, entry.
    const o = pick([L.countPresent, L.countPresent + 8, L.countPresent + 16, L.graph, L.graph + 8, L.graph + 16, L.graph + 24, L.graph + 32]);
    b.writeBigUInt64LE(BigInt(pick(INTERESTING.filter((x) => Number.isInteger(x) && x >= 0))), o);
  } else if (kind === 1) {
    const i = rng.int(L.size);
    b.writeInt16LE(pick([-1, 0, 1, 2, 5, 64, 32767]), L.levels + 2 * i);
  } else if (kind === 2) {
    // Neighbour counts and slots of a few nodes.
    for (let t = 0; t < 1 + rng.int(50); t++) {
      const o = L.nodes[rng.int(L.nodes.length)] + 10 + 4 * rng.int(1 + L.connBase);
      if (at(o, 4)) b.writeUInt32LE(pick([0, 1, L.size - 1, L.size, L.size + 1, 2 ** 31, 2 ** 32 - 1, 1 + rng.int(L.size * 2)]) >>> 0, o);
    }
  } else if (kind === 3) {
    // Node keys.
    const o = L.nodes[rng.int(L.nodes.length)];
    b.writeBigUInt64LE(BigInt(pick([0, 1, L.size, 2 ** 32, 2 ** 53])), o);
  } else {
    for (let t = 0; t < 1 + rng.int(20); t++) b[L.head + rng.int(b.length - L.head)] ^= 1 << rng.int(8);
  }
}

function mutateIvf(b: Buffer): void {
  // Header ints: version, dim, lists, n, metric, nprobe; then centroids, offsets, ids, vectors.
  const lists = b.readInt32LE(16);
  const dim = b.readInt32LE(12);
  const offsets = 32 + 4 * lists * dim;
  const kind = rng.int(3);
  if (kind === 0) b.writeInt32LE(pick([-1, 0, 1, 2, 3, 2 ** 31 - 1, lists + 1, 4_000_000]) | 0, 8 + 4 * rng.int(6));
  else if (kind === 1) for (let t = 0; t < 1 + rng.int(5); t++) b.writeInt32LE(pick([-1, 0, 1, 2 ** 31 - 1, 599, 600, 601]) | 0, offsets + 4 * rng.int(lists + 1 + 600));
  else for (let t = 0; t < 1 + rng.int(10); t++) b[rng.int(b.length)] ^= 1 << rng.int(8);
}

/** Loads every case directory in one child process; returns its per-case verdicts. */
function loadInChild(dirs: string[]): Map<number, { ok: boolean; user: boolean; msg: string }> {
  const script = `
    import { readBundle } from ${JSON.stringify(join(import.meta.dirname, '..', 'src/bundle/read.ts'))};
    import { UserError } from ${JSON.stringify(join(import.meta.dirname, '..', 'src/util/errors.ts'))};
    const dirs = JSON.parse(process.env.FUZZ_DIRS);
    for (let i = 0; i < dirs.length; i++) {
      process.stderr.write('case ' + i + '\\n');
      let verdict;
      try {
        const b = await readBundle(dirs[i], { attempts: 1 });
        // A bundle that loads must also answer: search with a few queries, walk a seen list.
        const dim = b.manifest.model.dim;
        for (let q = 0; q < 5; q++) {
          const v = b.itemEmb.slice(q * dim, (q + 1) * dim);
          b.index?.search(v, 20);
        }
        const u = b.seen.rows - 1;
        let s = 0;
        for (let j = b.seen.offsets[u]; j < b.seen.offsets[u + 1]; j++) s += b.seen.cols[j];
        verdict = { i, ok: true, user: false, msg: '' };
      } catch (e) {
        verdict = { i, ok: false, user: e instanceof UserError, msg: String(e?.message ?? e).split('\\n')[0].slice(0, 300) };
      }
      process.stdout.write(JSON.stringify(verdict) + '\\n');
    }
  `;
  // A file, not -e: worker threads inherit execArgv, and --input-type would break the verification worker.
  const file = join(tmp('fuzz-loader'), 'loader.mts');
  writeFileSync(file, script);
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { encoding: 'utf8', env: { ...process.env, FUZZ_DIRS: JSON.stringify(dirs) }, maxBuffer: 64 << 20, timeout: 300_000 });
  const last = r.stderr.trim().split('\n').filter((l) => l.startsWith('case ')).pop();
  assert.equal(r.signal, null, `the loader died by ${r.signal} at ${last} (${dirs[Number(last?.slice(5))]})`);
  assert.equal(r.status, 0, `the loader exited ${r.status} at ${last}: ${r.stderr.slice(-2000)}`);
  const out = new Map<number, { ok: boolean; user: boolean; msg: string }>();
  for (const line of r.stdout.trim().split('\n')) {
    const v = JSON.parse(line);
    out.set(v.i, v);
  }
  return out;
}

test('fuzz: mutated bundle manifests and HNSW / IVF index files load cleanly or fail with one UserError, never a crash', async () => {
  const root = tmp('fuzz');
  const hnswSrc = join(root, 'hnsw');
  await makeBundle(hnswSrc, 1);
  const ivfSrc = join(root, 'ivf');
  const backend = await getBackend();
  writeBundle(ivfSrc, createBundle(backend, makeArtifacts(2), { index: { kind: 'ivf', metric: 'ip', lists: 24, nprobe: 4 }, recallQueries: 20, source: 'fuzz' }));
  const dirs: string[] = [];
  const kinds: string[] = [];
  const fresh = (src: string, name: string) => {
    const d = join(root, name);
    cpSync(realpathSync(src), d, { recursive: true });
    dirs.push(d);
    return d;
  };
  for (let i = 0; i < MANIFEST_CASES; i++) {
    const d = fresh(rng.int(2) ? hnswSrc : ivfSrc, `m${i}`);
    const p = join(d, 'manifest.json');
    const m = JSON.parse(readFileSync(p, 'utf8'));
    for (let k = 0; k < 1 + rng.int(3); k++) mutateJson(m);
    writeFileSync(p, JSON.stringify(m));
    // Most cases are resealed (checksums and id recomputed) so the checks behind the id get exercised.
    if (rng.int(4) > 0) {
      try {
        reseal(d);
      } catch {
        // a mutation reseal cannot follow (e.g. 'files' replaced by a number): loaded as is
      }
    }
    kinds.push('manifest');
  }
  for (let i = 0; i < HNSW_CASES; i++) {
    const d = fresh(hnswSrc, `h${i}`);
    const f = join(d, 'index', 'items.usearch');
    const b = readFileSync(f);
    mutateHnsw(b);
    writeFileSync(f, b);
    reseal(d);
    kinds.push('hnsw');
  }
  for (let i = 0; i < IVF_CASES; i++) {
    const d = fresh(ivfSrc, `v${i}`);
    const f = join(d, 'index', 'items.ivf');
    const b = readFileSync(f);
    mutateIvf(b);
    writeFileSync(f, b);
    reseal(d);
    kinds.push('ivf');
  }
  const verdicts = loadInChild(dirs);
  assert.equal(verdicts.size, dirs.length, 'every case answered');
  const tally: Record<string, { ok: number; rejected: number }> = {};
  for (const [i, v] of verdicts) {
    assert.ok(v.ok || v.user, `case ${i} (${kinds[i]}, ${dirs[i]}) failed with a non-user error: ${v.msg}`);
    if (!v.ok) {
      assert.doesNotMatch(v.msg, /towerlab-serve-index-\d+/, `case ${i}: private path in the message`);
      assert.doesNotMatch(v.msg, /root:x:0/, `case ${i}: file contents in the message`);
    }
    const t = (tally[kinds[i]] ??= { ok: 0, rejected: 0 });
    v.ok ? t.ok++ : t.rejected++;
  }
  // The structural checks must actually be reached: most index mutations are caught by them, not by luck.
  assert.ok(tally.hnsw.rejected >= HNSW_CASES / 2, `hnsw: ${JSON.stringify(tally.hnsw)}`);
  assert.ok(tally.ivf.rejected >= 1, `ivf: ${JSON.stringify(tally.ivf)}`);
});

test('fuzz: random recipe JSON is accepted and built, or refused with one UserError naming a field', () => {
  const prev = process.env.TOWERLAB_MEMORY_BUDGET;
  process.env.TOWERLAB_MEMORY_BUDGET = String(64 << 20); // what a recipe may plan for here: 64 MB
  try {
    const numItems = 200;
    const rows = 100;
    const trainItems = Int32Array.from({ length: 2000 }, (_, i) => (i * 13) % numItems);
    const trainUsers = Int32Array.from({ length: 2000 }, (_, i) => Math.floor(i / 20));
    const offsets = Int32Array.from({ length: rows + 1 }, (_, u) => u * 20);
    const cat = { name: 'cat', vocab: { ids: ['<missing>', 'a', 'b', 'c'], index: new Map() }, values: Int32Array.from({ length: numItems }, (_, j) => 1 + (j % 3)) } as any;
    const ctx = { numItems, trainItems, trainUsers, dim: 16, batchSize: 64, itemFeatures: [cat], trainSequences: { rows, offsets, cols: trainItems } };
    const num = () => pick([...INTERESTING, 1e12, -5, 1.5, 10, 100, 1000, Number.NaN]);
    const val = () => (rng.int(3) ? num() : pick(JUNK));
    const source = () => {
      const type = pick(['in-batch', 'uniform', 'popularity', 'stratified', 'queue', 'same-tower', 'neighbourhood', 'mined', 'bogus']);
      const s: Record<string, unknown> = { type };
      for (const k of pick([[], ['n'], ['n', 'alpha'], ['size'], ['n', 'column'], ['n', 'maxCandidates', 'excludeTop'], ['n', 'rankRange'], ['momentum']])) s[k] = k === 'column' ? pick(['cat', 'nope']) : k === 'rankRange' ? [num(), num()] : val();
      return s;
    };
    let accepted = 0;
    for (let i = 0; i < RECIPE_CASES; i++) {
      const r: Record<string, unknown> = {};
      if (rng.int(2)) r.sources = Array.from({ length: rng.int(3) + (rng.int(5) ? 1 : 0) }, source);
      if (rng.int(3) === 0) r.temperature = val();
      if (rng.int(3) === 0) r.corrections = { logQ: rng.int(2) ? false : { estimator: pick(['streaming', 'train-frequency', 'x']), hashSize: val() } };
      if (rng.int(3) === 0) r.batchSampler = { type: pick(['rwr', 'shuffle', 'no-duplicates']), ...(rng.int(2) ? { candidates: val(), neighbours: val() } : {}), ...(rng.int(4) ? {} : { sketchDim: val() }) };
      const json = JSON.parse(JSON.stringify(r)); // as a recipe file would give it
      try {
        buildSources(parseRecipe(json, 'fuzz.json'), ctx);
        accepted++;
      } catch (e) {
        assert.ok(e instanceof UserError, `case ${i} ${JSON.stringify(json)}: ${(e as Error).name}: ${(e as Error).message}`);
        assert.match((e as Error).message, /^(fuzz\.json|recipe): field '/, `case ${i}: names the field: ${(e as Error).message}`);
        assert.doesNotMatch((e as Error).message, /internal error|Invalid typed array/i);
      }
    }
    assert.ok(accepted > 0, 'some random recipes are valid and build');
  } finally {
    if (prev === undefined) delete process.env.TOWERLAB_MEMORY_BUDGET;
    else process.env.TOWERLAB_MEMORY_BUDGET = prev;
  }
});
