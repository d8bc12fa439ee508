/** Hard-negative mining: fusion math, false-negative filtering, the mined source (offline and online). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '../src/compute/js.ts';
import { csrFromPairs, csrRow } from '../src/data/csr.ts';
import { generateSynthetic } from '../src/data/synthetic.ts';
import { withDuck } from '../src/data/duck.ts';
import { BatchAssembler } from '../src/sampling/assembler.ts';
import { selectHardNegatives } from '../src/sampling/hard-negative-filter.ts';
import { fuseRankedLists } from '../src/mine/fusion.ts';
import { groupsToJsonl, writeGroups } from '../src/mine/groups-file.ts';
import { mineGroups } from '../src/mine/mine.ts';
import { liveRetrievers, ModelRetriever } from '../src/mine/model-retriever.ts';
import type { RankedLists } from '../src/mine/types.ts';
import { buildModel, defaultModelOptions } from '../src/model/build.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { InBatchSource } from '../src/sampling/in-batch.ts';
import { MinedSource } from '../src/sampling/mined.ts';
import { TrainFrequency } from '../src/sampling/frequency.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';

const list = (rows: number, k: number, ids: number[], scores: number[]): RankedLists => ({ rows, k, ids: Int32Array.from(ids), scores: Float32Array.from(scores) });
const close = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

test('RRF: Σ w/(rrfK + rank) with 1-based ranks, members of different k, -1 padding ignored', () => {
  const a = list(2, 3, [1, 2, 3, 7, -1, -1], [0.9, 0.5, 0.1, 1, 0, 0]);
  const b = list(2, 2, [3, 1, 8, 7], [5, 4, 2, 1]);
  const f = fuseRankedLists([a, b], { method: 'rrf', k: 3 });
  assert.deepEqual(Array.from(f.ids.subarray(0, 3)), [1, 3, 2]);
  close(f.scores[0], 1 / 61 + 1 / 62);
  close(f.scores[1], 1 / 63 + 1 / 61);
  close(f.scores[2], 1 / 62);
  // Row 1: 7 is rank 1 in a (padding skipped) and rank 2 in b; 8 rank 1 in b only. Only two ids: −1 pads.
  assert.deepEqual(Array.from(f.ids.subarray(3, 6)), [7, 8, -1]);
  close(f.scores[3], 1 / 61 + 1 / 62);
  close(f.scores[4], 1 / 61);
  const w = fuseRankedLists([a, b], { method: 'rrf', k: 3, weights: [2, 1], rrfK: 10 });
  assert.deepEqual(Array.from(w.ids.subarray(0, 3)), [1, 3, 2]);
  close(w.scores[0], 2 / 11 + 1 / 12);
  close(w.scores[1], 2 / 13 + 1 / 11);
  close(w.scores[2], 2 / 12);
});

test('soft voting: Σ w · min-max normalised score per row; constant rows count 1; ties by smaller id', () => {
  const a = list(2, 3, [1, 2, 3, 5, 6, -1], [0.9, 0.5, 0.1, 0.3, 0.3, 0]);
  const b = list(2, 3, [3, 1, 4, 6, 9, 5], [2, 1.5, 1, 4, 3, 2]);
  const f = fuseRankedLists([a, b], { method: 'soft-vote', k: 4 });
  // Row 0: a → 1:1, 2:0.5, 3:0; b → 3:1, 1:0.5, 4:0.  1: 1.5, 3: 1, 2: 0.5, 4: 0.
  assert.deepEqual(Array.from(f.ids.subarray(0, 4)), [1, 3, 2, 4]);
  assert.deepEqual(Array.from(f.scores.subarray(0, 4)), [1.5, 1, 0.5, 0]);
  // Row 1: a constant → 5:1, 6:1; b → 6:1, 9:0.5, 5:0.  6: 2, 5: 1, 9: 0.5.
  assert.deepEqual(Array.from(f.ids.subarray(4, 8)), [6, 5, 9, -1]);
  assert.deepEqual(Array.from(f.scores.subarray(4, 7)), [2, 1, 0.5]);
  const w = fuseRankedLists([a, b], { method: 'soft-vote', k: 2, weights: [1, 3] });
  // Row 0 weighted: 1: 1 + 1.5 = 2.5, 3: 0 + 3 = 3.
  assert.deepEqual(Array.from(w.ids.subarray(0, 2)), [3, 1]);
  assert.deepEqual(Array.from(w.scores.subarray(0, 2)), [3, 2.5]);
});

test('filter: skips positives, counts the rank window after them, applies margins and max score', () => {
  // One row: ranks over non-positives: 10→0, 11→1, 12→2, 13→3, 14→4 (5 and 6 are positives).
  const l = list(1, 7, [5, 10, 6, 11, 12, 13, 14], [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5]);
  const pos = () => [5, 6];
  const top = (o: object, ps: Float32Array | null = null) => Array.from(selectHardNegatives(l, pos, ps, { n: 3, ...o }).ids);
  assert.deepEqual(top({}), [10, 11, 12]);
  assert.deepEqual(top({ rankStart: 1, rankEnd: 3 }), [11, 12, -1]);
  assert.deepEqual(top({ maxScore: 0.75 }), [12, 13, 14]);
  const ps = Float32Array.of(0.8);
  // Absolute: keep s + 0.1 ≤ 0.8 → s ≤ 0.7 (strict drop of s + m > pos).
  assert.deepEqual(top({ margin: 0.1 }, ps), [12, 13, 14]);
  // Absolute margin 0: drops only those above the positive (0.9), keeps the tie 0.8.
  assert.deepEqual(top({ margin: 0 }, ps), [11, 12, 13]);
  // Relative 0.2: keep s ≤ 0.8 · 0.8 = 0.64.
  assert.deepEqual(top({ margin: 0.2, relative: true }, ps), [13, 14, -1]);
  // NaN positive score: no margin for that row.
  assert.deepEqual(top({ margin: 0.2 }, Float32Array.of(NaN)), [10, 11, 12]);
  assert.throws(() => selectHardNegatives(l, pos, null, { n: 1, margin: 0.1 }), /positives' scores/);
  // Random: n distinct survivors of the window, in rank order, seed-determined.
  const seen = new Set<number>();
  for (let s = 0; s < 30; s++) {
    const r = Array.from(selectHardNegatives(l, pos, null, { n: 2, rankStart: 1, rankEnd: 5, sample: 'random', rng: new Rng(s) }).ids);
    assert.equal(new Set(r).size, 2);
    for (const x of r) assert.ok([11, 12, 13, 14].includes(x));
    assert.ok([11, 12, 13, 14].indexOf(r[0]) < [11, 12, 13, 14].indexOf(r[1]));
    r.forEach((x) => seen.add(x));
  }
  assert.equal(seen.size, 4, 'random sampling reaches the whole window');
});

const data = generateSynthetic({ users: 120, items: 200, clusters: 4, zipf: 1.0, seed: 3, perUser: 20 });
const numItems = data.itemVocab.size;
const numUsers = data.userVocab.size;
const seenCsr = csrFromPairs(numUsers, data.users, data.items, true);
const small = () => buildModel({ ...defaultModelOptions, dim: 16, mlp: [], useFeatures: false, seed: 7 }, numUsers, numItems, [], []);

test('model retriever: exact lists exclude seen items and match brute force; HNSW agrees', async () => {
  const backend = await createJsBackend({ wasm: false });
  const model = small();
  const exact = new ModelRetriever(backend, model, { exclude: seenCsr });
  const hnsw = new ModelRetriever(backend, model, { exclude: seenCsr, search: 'hnsw', expansionSearch: 200 });
  const q = Int32Array.of(0, 5, 17);
  const a = exact.retrieve(q, 10);
  const b = hnsw.retrieve(q, 10);
  let overlap = 0;
  for (let r = 0; r < 3; r++) {
    const seen = new Set(csrRow(seenCsr, q[r]));
    const all = Array.from({ length: numItems }, (_, j) => j).filter((j) => !seen.has(j));
    const sc = exact.pairScores(Int32Array.from(all.map(() => q[r])), Int32Array.from(all));
    const want = all.map((j, i) => [j, sc[i]] as const).sort((x, y) => y[1] - x[1]).slice(0, 10);
    for (let i = 0; i < 10; i++) close(a.scores[r * 10 + i], want[i][1], 1e-5);
    for (const id of a.ids.subarray(r * 10, r * 10 + 10)) assert.ok(!seen.has(id));
    const bs = new Set(b.ids.subarray(r * 10, r * 10 + 10));
    for (const id of a.ids.subarray(r * 10, r * 10 + 10)) if (bs.has(id)) overlap++;
  }
  assert.ok(overlap >= 27, `HNSW recall ${overlap}/30`);
});

test('mined groups: offline file round trip (JSONL and Parquet) into the mined source', async () => {
  const backend = await createJsBackend({ wasm: false });
  const m1 = new ModelRetriever(backend, small(), { exclude: seenCsr });
  const users = data.users.subarray(0, 50);
  const positives = data.items.subarray(0, 50);
  const g = mineGroups([m1], users, positives, { fusion: 'rrf', n: 3, rankStart: 2, rankEnd: 20, sample: 'top' });
  const full = m1.retrieve(users, 20);
  for (let r = 0; r < 50; r++) {
    // 'top' in window [2, 20) = the retriever's ranks 2, 3, 4 (seen items are already excluded).
    assert.deepEqual(Array.from(g.negatives.ids.subarray(r * 3, r * 3 + 3)), Array.from(full.ids.subarray(r * 20 + 2, r * 20 + 5)));
  }
  const dir = mkdtempSync(join(tmpdir(), 'mine-test-'));
  try {
    const jsonl = groupsToJsonl(g, users, positives, data.userVocab.ids, data.itemVocab.ids);
    const path = join(dir, 'neg.jsonl');
    await writeGroups(path, jsonl);
    await writeGroups(join(dir, 'neg.parquet'), jsonl);
    const rows = await withDuck((d) => d.rows(`SELECT count(*), sum(len(negatives)) FROM read_parquet('${join(dir, 'neg.parquet')}')`));
    assert.deepEqual(rows[0], [50, 150]);
    const src = new MinedSource(
      { n: 3, from: path, refreshEvery: 1, rankRange: [0, 10], relative: false, sample: 'top', search: 'exact' },
      { numItems, trainItems: data.items, userIds: data.userVocab.ids, itemIds: data.itemVocab.ids },
    );
    const c = src.sample({ users: users.subarray(0, 4), items: positives.subarray(0, 4), step: 1, rng: new Rng(1) });
    assert.deepEqual(Array.from(c.ids), Array.from(g.negatives.ids.subarray(0, 12)));
    assert.ok(c.fixedLogQ && c.logq.every((x) => x === 0));
    // correction 'frequency': the file's groups define the proposal, E[count_j] = B · Σ_groups 1[j ∈ g]·min(1, n/|g|) / #groups.
    const freq = new MinedSource(
      { n: 2, from: path, refreshEvery: 1, rankRange: [0, 10], relative: false, sample: 'random', search: 'exact', correction: 'frequency' },
      { numItems, trainItems: data.items, userIds: data.userVocab.ids, itemIds: data.itemVocab.ids },
    );
    const want = new Float64Array(numItems);
    for (const j of g.negatives.ids) want[j] += 2 / 3 / 50;
    const probe = Int32Array.from({ length: numItems }, (_, j) => j);
    const got = new Float32Array(numItems);
    freq.logExpectedCount(probe, 64, got);
    for (let j = 0; j < numItems; j++) assert.ok(want[j] ? Math.abs(got[j] - Math.log(64 * want[j])) < 1e-5 : got[j] === -Infinity, `item ${j}`);
    assert.equal(freq.sample({ users: users.subarray(0, 4), items: positives.subarray(0, 4), step: 1, rng: new Rng(1) }).fixedLogQ, false);
    writeFileSync(join(dir, 'bad.jsonl'), '{"user":"u0","positive":"nope","negatives":[]}\n');
    assert.throws(
      () => new MinedSource({ n: 3, from: join(dir, 'bad.jsonl'), refreshEvery: 1, rankRange: [0, 10], relative: false, sample: 'top', search: 'exact' }, { numItems, trainItems: data.items, userIds: data.userVocab.ids, itemIds: data.itemVocab.ids }),
      /bad.jsonl:1: field '(user|positive)'/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mined columns keep logq 0 under logQ; in-batch columns keep the mixture', () => {
  const freq = new TrainFrequency(data.items, numItems);
  const mined = { name: 'mined', usesPositives: false, sample: () => ({ ids: Int32Array.of(3, 4), logq: new Float32Array(2), userKey: null, embeddings: null, fixedLogQ: true }), logExpectedCount: (ids: Int32Array, _b: number, out: Float32Array) => out.fill(-Infinity, 0, ids.length) };
  const asm = new BatchAssembler({ sources: [new InBatchSource(freq), mined], freq, sameTower: false, fullCatalogue: false }, parseRecipe({ corrections: { logQ: {} } }), 4);
  const cols = asm.columns({ users: Int32Array.of(0, 1), items: Int32Array.of(3, 7), step: 1, rng: new Rng(1) });
  const inb = new Float32Array(4);
  new InBatchSource(freq).logExpectedCount(cols.ids, 2, inb);
  close(cols.logq[0], inb[0]);
  close(cols.logq[1], inb[1]);
  assert.deepEqual(Array.from(cols.logq.subarray(2)), [0, 0]);
});

test('online mining refreshes its index every refreshEvery steps (and only then)', async () => {
  const backend = await createJsBackend({ wasm: false });
  const model = small();
  const src = new MinedSource(
    { n: 4, from: 'online', refreshEvery: 5, rankRange: [0, 30], relative: false, sample: 'top', search: 'exact' },
    { numItems, trainItems: data.items, trainUsers: data.users, liveRetriever: liveRetrievers(backend, model) },
  );
  const users = Int32Array.of(0, 1, 2);
  const items = Int32Array.from(users, (u) => csrRow(seenCsr, u)[0]);
  const first = src.sample({ users, items, step: 1, rng: new Rng(1) });
  const before = Array.from(src.listFor(0)!);
  assert.equal(src.refreshes, 1);
  assert.equal(first.ids.length, 12);
  first.ids.subarray(0, 4).forEach((x) => assert.ok(!csrRow(seenCsr, 0).includes(x), 'mined negatives are unseen items'));
  // Change the item tower: the cached lists must stay until step 6, then follow the new weights.
  const rng = new Rng(9);
  for (let i = 0; i < model.item.idTable.data.length; i++) model.item.idTable.data[i] = rng.normal();
  src.sample({ users, items, step: 5, rng: new Rng(1) });
  assert.equal(src.refreshes, 1);
  assert.deepEqual(Array.from(src.listFor(0)!), before);
  src.sample({ users, items, step: 6, rng: new Rng(1) });
  assert.equal(src.refreshes, 2);
  const after = Array.from(src.listFor(0)!);
  assert.notDeepEqual(after, before);
  const fresh = new ModelRetriever(backend, model, { exclude: seenCsr }).retrieve(Int32Array.of(0), 30);
  assert.deepEqual(after, Array.from(fresh.ids));
});

/** Mean over users of (mean cosine of the model's own top-5 unseen items) − (mean cosine of its training items). */
function hardGap(backend: any, model: ReturnType<typeof small>): number {
  const r = new ModelRetriever(backend, model, { exclude: seenCsr });
  const users = Int32Array.from({ length: numUsers }, (_, u) => u);
  const top = r.retrieve(users, 5);
  let gap = 0;
  for (let u = 0; u < numUsers; u++) {
    const pos = csrRow(seenCsr, u);
    const ps = r.pairScores(Int32Array.from(pos, () => u), pos);
    const mp = ps.reduce((a, b) => a + b, 0) / ps.length;
    const mn = top.scores.subarray(u * 5, u * 5 + 5).reduce((a, b) => a + b, 0) / 5;
    gap += mn - mp;
  }
  return gap / numUsers;
}

test('mined negatives are not a no-op: they push the hardest unseen items below the positives', async () => {
  const backend = await createJsBackend({ wasm: false });
  const run = (recipe: object) => {
    const r = parseRecipe(recipe);
    const model = small();
    const sources = buildSources(r, { numItems, trainItems: data.items, trainUsers: data.users, dim: model.dim, liveRetriever: liveRetrievers(backend, model) });
    const step = new TrainStep(backend, model, r, sources);
    const rng = new Rng(4);
    for (let s = 0; s < 120; s++) {
      const rows = Int32Array.from({ length: 64 }, () => rng.int(data.users.length));
      step.run(rows.map((i) => data.users[i]), rows.map((i) => data.items[i]), rng);
    }
    return { gap: hardGap(backend, model), sources };
  };
  const base = run({ temperature: 0.1, sources: [{ type: 'in-batch' }] });
  const mined = run({ temperature: 0.1, sources: [{ type: 'in-batch' }, { type: 'mined', n: 2, rankRange: [0, 10], refreshEvery: 20 }] });
  const src = mined.sources.sources[1] as MinedSource;
  assert.equal(src.refreshes, 6);
  console.log(`hard gap: in-batch ${base.gap.toFixed(4)}, + mined ${mined.gap.toFixed(4)}`);
  assert.ok(mined.gap < base.gap - 0.02, `hard-candidate gap with mined ${mined.gap.toFixed(4)} vs in-batch ${base.gap.toFixed(4)}`);
});

test('CLI: towerlab mine with an ensemble writes groups a mined recipe trains from; bad flags are one-line errors', async () => {
  const { spawnSync } = await import('node:child_process');
  const BIN = join(import.meta.dirname, '..', 'bin', 'towerlab.mjs');
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-mine-cli-'));
  const cli = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir });
  try {
    const DATA = 'synthetic:users=200,items=150,clusters=4,zipf=1.0,seed=3';
    for (const s of ['1', '2']) {
      const r = cli(['train', '--data', DATA, '--epochs', '2', '--batch-size', '128', '--no-progress', '--seed', s, '--out', `m${s}`]);
      assert.equal(r.status, 0, r.stderr);
    }
    const r = cli(['mine', '--model', 'm1', '--model', 'm2', '--fusion', 'soft-vote', '--n', '4', '--range', '2:40', '--out', 'neg.jsonl', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(j.models.length, 2);
    assert.ok(j.groups > 100 && j.negatives === j.groups * 4, JSON.stringify(j));
    const first = JSON.parse((await import('node:fs')).readFileSync(join(dir, 'neg.jsonl'), 'utf8').split('\n')[0]);
    assert.equal(first.negatives.length, 4);
    assert.ok(!first.negatives.includes(first.positive));
    writeFileSync(join(dir, 'mined.json'), JSON.stringify({ sources: [{ type: 'in-batch' }, { type: 'mined', n: 2, from: 'neg.jsonl' }] }));
    const t = cli(['train', '--data', DATA, '--recipe', 'mined.json', '--epochs', '1', '--batch-size', '128', '--no-progress']);
    assert.equal(t.status, 0, t.stderr);
    // A member that knows fewer users (a prefix of the first's) is not the same data: refused, not mis-indexed.
    const fs = await import('node:fs');
    fs.cpSync(fs.realpathSync(join(dir, 'm2', 'model')), join(dir, 'm3'), { recursive: true });
    const vocab = JSON.parse(fs.readFileSync(join(dir, 'm3', 'vocab.json'), 'utf8'));
    vocab.users = vocab.users.slice(0, -1);
    writeFileSync(join(dir, 'm3', 'vocab.json'), JSON.stringify(vocab));
    // The edit is caught by the checksum; with the checksum recomputed too, by the model's own shape checks.
    const tampered = cli(['mine', '--model', 'm1', '--model', 'm3', '--out', 'y.jsonl']);
    assert.equal(tampered.status, 2, tampered.stderr);
    assert.match(tampered.stderr, /m3\/vocab\.json: checksum mismatch/);
    const mf = JSON.parse(fs.readFileSync(join(dir, 'm3', 'manifest.json'), 'utf8'));
    mf.checksums['vocab.json'] = (await import('node:crypto')).createHash('sha256').update(JSON.stringify(vocab)).digest('hex');
    writeFileSync(join(dir, 'm3', 'manifest.json'), JSON.stringify(mf));
    const fewer = cli(['mine', '--model', 'm1', '--model', 'm3', '--out', 'y.jsonl']);
    assert.equal(fewer.status, 2, fewer.stderr);
    assert.match(fewer.stderr, /--model m3: its users\/items differ from m1's|m3\/manifest\.json: field 'modelConfig\.user'/);
    const bad = cli(['mine', '--model', 'm1', '--range', '50:10', '--out', 'x.jsonl']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--range: expected START:END/);
    assert.doesNotMatch(bad.stderr, /^\s+at /m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mining an ensemble of models of different dims scores each member with its own width', async () => {
  const backend = await createJsBackend({ wasm: false });
  const wide = buildModel({ ...defaultModelOptions, dim: 24, mlp: [], useFeatures: false, seed: 9 }, numUsers, numItems, [], []);
  const members = [new ModelRetriever(backend, small(), { exclude: seenCsr }), new ModelRetriever(backend, wide, { exclude: seenCsr })];
  const users = data.users.subarray(0, 40);
  const positives = data.items.subarray(0, 40);
  const g = mineGroups(members, users, positives, { fusion: 'rrf', n: 3, rankStart: 0, rankEnd: 20, sample: 'top' });
  const a = members[0].pairScores(users, positives);
  const b = members[1].pairScores(users, positives);
  for (let r = 0; r < users.length; r++) close(g.positiveScores[r], (a[r] + b[r]) / 2, 1e-5);
  const r0 = g.negatives.ids[0];
  assert.ok(r0 >= 0);
  const na = members[0].pairScores(users.subarray(0, 1), Int32Array.of(r0))[0];
  const nb = members[1].pairScores(users.subarray(0, 1), Int32Array.of(r0))[0];
  close(g.negatives.scores[0], (na + nb) / 2, 1e-5);
});

test("mined 'frequency' correction with sample 'top': only the first n of each group are ever drawn", () => {
  const dir = mkdtempSync(join(tmpdir(), 'mine-test-'));
  try {
    const u = data.userVocab.ids;
    const it = data.itemVocab.ids;
    const path = join(dir, 'top.jsonl');
    writeFileSync(path, [
      JSON.stringify({ user: u[0], positive: it[0], negatives: [it[1], it[2], it[3], it[4]] }),
      JSON.stringify({ user: u[1], positive: it[0], negatives: [it[1], it[5], it[6], it[7]] }),
    ].join('\n') + '\n');
    const src = new MinedSource(
      { n: 2, from: path, refreshEvery: 1, rankRange: [0, 10], relative: false, sample: 'top', search: 'exact', correction: 'frequency' },
      { numItems, trainItems: data.items, userIds: u, itemIds: it },
    );
    // What the source actually draws over the two groups: items 1, 2 (row 0) and 1, 5 (row 1).
    const drawn = src.sample({ users: Int32Array.of(0, 1), items: Int32Array.of(0, 0), step: 1, rng: new Rng(1) });
    assert.deepEqual(Array.from(drawn.ids), [1, 2, 1, 5]);
    const probe = Int32Array.of(1, 2, 5, 3, 4, 6, 7);
    const got = new Float32Array(probe.length);
    src.logExpectedCount(probe, 64, got);
    close(got[0], Math.log(64 * 1));
    close(got[1], Math.log(64 * 0.5));
    close(got[2], Math.log(64 * 0.5));
    for (let i = 3; i < probe.length; i++) assert.equal(got[i], -Infinity, `item ${probe[i]} is never drawn`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
