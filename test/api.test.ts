/**
 * The library API on in-memory data: column and row inputs with planted structure, per-entity feature tables,
 * defaults, recommendations by user and by history, save/load round trip, evaluate, text pairs, and one-line
 * errors for bad input. (The by-name import from outside the repository is test/api-package.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { train, evaluate, load, loadTextModel, toInteractions, UserError, type TextModel } from '../src/towerlab.ts';

/** 300 users in 6 groups; each user has 12 of its group's 30 items. Item g*30+j; user u in group u % 6. */
function columns(): { users: Int32Array; items: Int32Array; times: Float64Array } {
  const users: number[] = [];
  const items: number[] = [];
  for (let u = 0; u < 300; u++) for (let k = 0; k < 12; k++) {
    users.push(u);
    items.push((u % 6) * 30 + ((u * 11 + k * 7) % 30)); // 12 distinct items per user (7 is prime to 30)
  }
  return { users: Int32Array.from(users), items: Int32Array.from(items), times: Float64Array.from(users, (_, i) => i) };
}

test('columns in memory: train with defaults, recommend, evaluate, save and load', async () => {
  const data = columns();
  const model = await train({ data, train: { epochs: 4, batchSize: 256 } });
  assert.ok(model.metrics['recall@10'] > model.result.baselines.popularity['recall@10'] + 0.2, `recall@10 ${model.metrics['recall@10']}`);
  // Ids come back as the data spelled them (numbers → strings); user 7 is in group 1: items 30..59.
  const recs = model.recommend(7, 10);
  assert.equal(recs.length, 10);
  const inGroup = recs.filter((r) => Math.floor(Number(r.item) / 30) === 1).length;
  assert.ok(inGroup >= 8, `only ${inGroup}/10 recommendations in the user's group: ${JSON.stringify(recs)}`);
  // Training (and validation) items are excluded unless asked.
  const u = model.userIds.indexOf('7');
  const { offsets, cols } = model.artifacts.seen;
  const seen = new Set(Array.from(cols.subarray(offsets[u], offsets[u + 1]), (j) => model.itemIds[j]));
  assert.ok(seen.size >= 9, `user 7 has ${seen.size} training items`);
  assert.ok(recs.every((r) => !seen.has(r.item)), 'a training item was recommended');
  assert.ok(model.recommend(7, 10, { excludeSeen: false }).some((r) => seen.has(r.item)), 'excludeSeen: false should bring training items back');
  // A history query lands in the history's group.
  const byHistory = model.recommend({ history: ['95', '100'] }, 5);
  assert.ok(byHistory.every((r) => Math.floor(Number(r.item) / 30) === 3), JSON.stringify(byHistory));
  assert.ok(byHistory.every((r) => r.item !== '95' && r.item !== '100'));
  const q = model.encodeQueries([7, { history: ['95'] }]);
  assert.equal(q.length, 2 * model.dim);
  assert.ok(Math.abs(q.subarray(0, model.dim).reduce((s, x) => s + x * x, 0) - 1) < 1e-4, 'query rows are unit length');
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-api-'));
  try {
    model.save(dir);
    const again = await load(dir);
    assert.deepEqual(again.recommend(7, 10), recs);
    assert.equal(again.metrics['recall@10'], model.metrics['recall@10']);
    const ev = await evaluate(again, { users: Int32Array.of(7, 7, 8), items: Int32Array.of(31, 32, 999) });
    assert.equal(ev.skipped, 1, 'the unknown item 999 is skipped');
    assert.equal(ev.users, 1);
    assert.ok(ev.metrics['recall@10'] >= 0 && ev.metrics['recall@10'] <= 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rows in memory: extra fields become item or user features by what they are constant over', async () => {
  const rows = [
    { user: 'a', item: 'x', genre: 'rock', age: 31, city: 'paris' },
    { user: 'a', item: 'y', genre: 'jazz', age: 31, city: 'paris' },
    { user: 'b', item: 'x', genre: 'rock', age: 22, city: 'rome' },
  ];
  const d = await toInteractions(rows);
  assert.deepEqual(d.itemFeatures.map((f) => f.name), ['genre']);
  assert.deepEqual(d.userFeatures.map((f) => f.name), ['city']);
  assert.deepEqual(d.userDense?.map((f) => [f.name, f.width, Array.from(f.values)]), [['age', 1, [31, 22]]]);
  // A per-entity table may add catalogue items that have no interactions.
  const withCatalogue = await toInteractions({ rows, itemFeatures: [{ id: 'z', genre: 'pop', emb: [1, 2] }, { id: 'x', emb: [3, 4] }] });
  assert.deepEqual(withCatalogue.itemVocab.ids, ['x', 'y', 'z']);
  assert.deepEqual(Array.from(withCatalogue.itemDense![0].values), [3, 4, 0, 0, 1, 2]);
  await assert.rejects(toInteractions([{ user: 'a', item: 'x', mood: 'up' }, { user: 'a', item: 'x', mood: 'down' }]), /field 'mood' varies within an item and within a user/);
  await assert.rejects(toInteractions([{ user: '', item: 'x' }]), (e: unknown) => e instanceof UserError && /data\[0\]\.user/.test((e as Error).message));
  await assert.rejects(toInteractions({ users: [1, 2], items: [1] }), /users has 2 entries but items 1/);
  await assert.rejects(toInteractions({ rows: [], itemFeatures: [{ id: 'q', v: [1] }, { id: 'r', v: [1, 2] }] }), /itemFeatures\[1\]\.v: has 2 numbers, earlier rows 1/);
  await assert.rejects(train({ data: rows, recipe: { sources: [{ type: 'nope' }] } }), /recipe: field 'sources/);
});

test('text pairs in memory: a dual encoder that searches new query texts, saved and loaded with its documents', async () => {
  const topics = [['solar', 'panel', 'energy'], ['football', 'match', 'goal'], ['bread', 'flour', 'oven'], ['whale', 'ocean', 'fish']];
  const pairs = [];
  for (let t = 0; t < topics.length; t++) for (let i = 0; i < 20; i++) pairs.push({ query: `${topics[t][i % 3]} q${i}`, document: { id: `t${t}-${i}`, text: `notes on ${topics[t].join(' ')} part ${i}` } });
  const model: TextModel = await train({ data: { pairs }, train: { epochs: 4 } });
  assert.ok(model.metrics.dense && model.metrics.dense['ndcg@10'] > 0, 'dense test metrics reported');
  const top = model.recommend('ocean whale', 5);
  assert.equal(top.length, 5);
  assert.ok(top.every((r) => r.item.startsWith('t3-')), JSON.stringify(top));
  assert.equal(model.encodeQueries(['bread']).length, model.dim);
  assert.equal(model.encodeItems(['t0-1', { text: 'a new page about goals' }]).length, 2 * model.dim);
  const dir = mkdtempSync(join(tmpdir(), 'towerlab-api-text-'));
  try {
    model.save(dir);
    assert.deepEqual((await loadTextModel(dir)).recommend('ocean whale', 5), top);
    await assert.rejects(load(dir), /a text dual encoder; open it with loadTextModel/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Any negatives recipe trains text pairs too (here SamToNe same-tower negatives + the symmetric loss).
  const st: TextModel = await train({ data: { pairs }, train: { epochs: 4 }, recipe: { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], loss: { symmetric: true } } });
  assert.ok(st.recommend('ocean whale', 5).every((r) => r.item.startsWith('t3-')));
  await assert.rejects(train({ data: { pairs }, recipe: { sources: [{ type: 'mined', from: 'online' }] } }), /field 'sources\.0\.from': online mining is not available for text models/);
});
