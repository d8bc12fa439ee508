import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withDuck } from '../src/data/duck.ts';
import { MISSING_VALUE } from '../src/data/features.ts';
import { detectFormat } from '../src/data/format.ts';
import { loadInteractions } from '../src/data/load.ts';
import type { CategoricalFeature, Interactions } from '../src/data/types.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = path.join(repoRoot, 'test/fixtures/data');
const fx = (name: string) => path.join(fixtures, name);
const tmp = mkdtempSync(path.join(tmpdir(), 'towerlab-data-load-'));

/** (user id, item id, time, rating) per row, in row order, through the vocabularies. */
function rows(d: Interactions): string[] {
  return Array.from(d.users, (u, k) => `${d.userVocab.ids[u]} ${d.itemVocab.ids[d.items[k]]} ${d.times?.[k]} ${d.ratings?.[k]}`);
}

function featureOf(f: CategoricalFeature, entity: number): string {
  return f.vocab.ids[f.values[entity]];
}

const EXPECTED = [
  '1 10 100 5',
  '1 20 101 3',
  '2 10 102 4',
  '2 30 103 2',
  '3 20 104 1',
  '1 30 105 4',
  '3 40 106 5',
  '2 40 107 3',
];

test('every tabular format loads to the same interactions', async () => {
  const parquet = path.join(tmp, 'tiny.parquet');
  await withDuck((duck) => duck.run(`COPY (SELECT * FROM read_csv('${fx('tiny.csv')}')) TO '${parquet}' (FORMAT parquet)`));
  const paths = ['tiny.csv', 'tiny.tsv', 'tiny.jsonl', 'tiny.inter', 'u.data', 'ratings.dat'].map(fx).concat(parquet);
  const reference = await loadInteractions({ path: fx('tiny.csv') });
  assert.deepEqual(rows(reference), EXPECTED);
  assert.deepEqual(reference.userVocab.ids, ['1', '2', '3'], 'users in order of first appearance');
  assert.deepEqual(reference.itemVocab.ids, ['10', '20', '30', '40']);
  for (const p of paths) {
    const d = await loadInteractions({ path: p });
    assert.deepEqual(rows(d), EXPECTED, p);
    assert.deepEqual(d.users, reference.users, p);
    assert.deepEqual(d.items, reference.items, p);
    assert.ok(d.times instanceof Float64Array && d.ratings instanceof Float32Array, p);
  }
});

test('format detection by name, and an explicit format overrides it', async () => {
  assert.equal(detectFormat('x/ml-100k.inter'), 'recbole');
  assert.equal(detectFormat('x/u.data'), 'movielens');
  assert.equal(detectFormat('x/u1.base'), 'movielens');
  assert.equal(detectFormat('x/ratings.dat'), 'movielens');
  assert.equal(detectFormat('x/Beauty.txt'), 'seq');
  assert.equal(detectFormat('x/a.ndjson'), 'jsonl');
  assert.throws(() => detectFormat('x/data.bin'), /cannot tell the format/);
  const renamed = path.join(tmp, 'interactions.log');
  writeFileSync(renamed, 'user_id\titem_id\n1\t10\n');
  const d = await loadInteractions({ path: renamed, format: 'tsv' });
  assert.deepEqual(rows(d), ['1 10 undefined undefined']);
});

test('column mapping: explicit names, auto-detection notes, CSV delimiter sniffing, optional time/rating', async () => {
  const p = path.join(tmp, 'mapped.csv');
  writeFileSync(p, 'who;what;when;stars\na;x;3;1\nb;y;2;5\n');
  const d = await loadInteractions({ path: p, userCol: 'who', itemCol: 'what', timeCol: 'when', ratingCol: 'stars' });
  assert.deepEqual(rows(d), ['a x 3 1', 'b y 2 5']);
  const auto = await loadInteractions({ path: fx('tiny.csv') });
  assert.ok(auto.notes?.some((n) => n.includes("user='user_id'") && n.includes("time='timestamp'")), String(auto.notes));
  const bare = path.join(tmp, 'bare.csv');
  writeFileSync(bare, 'userId,movieId\n1,2\n1,3\n');
  const b = await loadInteractions({ path: bare });
  assert.equal(b.times, null);
  assert.equal(b.ratings, null);
  assert.deepEqual(rows(b), ['1 2 undefined undefined', '1 3 undefined undefined']);
});

test('ISO timestamps in a text time column become epoch seconds', async () => {
  const p = path.join(tmp, 'iso.csv');
  writeFileSync(p, 'user,item,time\n1,a,2020-01-01 00:00:00\n1,b,2020-01-01T00:01:00\n');
  const d = await loadInteractions({ path: p });
  assert.deepEqual(Array.from(d.times!), [1577836800, 1577836860]);
});

test('minRating drops rows below the threshold and renumbers densely', async () => {
  const d = await loadInteractions({ path: fx('tiny.csv'), minRating: 4 });
  assert.deepEqual(rows(d), ['1 10 100 5', '2 10 102 4', '1 30 105 4', '3 40 106 5']);
  assert.deepEqual(d.itemVocab.ids, ['10', '30', '40']);
  assert.ok(d.notes?.some((n) => n.includes('kept 4 of 8')));
});

test('feature columns in the interaction file: last value by time per entity, missing -> index 0', async () => {
  const p = path.join(tmp, 'feat.csv');
  // user 1's segment changes over time (rows out of time order); user 2 has only empty values.
  writeFileSync(p, ['user_id,item_id,timestamp,segment,genre', '1,a,5,late,g1', '1,b,1,early,g2', '2,a,3,,g1', '1,c,2,,'].join('\n'));
  const d = await loadInteractions({ path: p, userFeatureCols: ['segment'], itemFeatureCols: ['genre'] });
  const [seg] = d.userFeatures;
  const [genre] = d.itemFeatures;
  assert.equal(seg.name, 'segment');
  assert.equal(seg.vocab.ids[0], MISSING_VALUE);
  assert.equal(featureOf(seg, d.userVocab.get('1')!), 'late');
  assert.equal(seg.values[d.userVocab.get('2')!], 0);
  assert.equal(featureOf(genre, d.itemVocab.get('a')!), 'g1'); // time 5 beats time 3
  assert.equal(featureOf(genre, d.itemVocab.get('b')!), 'g2');
  assert.equal(genre.values[d.itemVocab.get('c')!], 0);
  assert.equal(seg.values.length, d.userVocab.size);
});

test('separate RecBole feature files (.user/.item): typed headers stripped, unknown keys ignored', async () => {
  const d = await loadInteractions({ path: fx('tiny.inter'), userFeaturesPath: fx('tiny.user'), itemFeaturesPath: fx('tiny.item') });
  // Defaults take the ":token" columns only.
  assert.deepEqual(d.userFeatures.map((f) => f.name), ['gender', 'occupation']);
  assert.deepEqual(d.itemFeatures.map((f) => f.name), ['genre']);
  const [gender, occupation] = d.userFeatures;
  assert.equal(featureOf(gender, d.userVocab.get('1')!), 'M');
  assert.equal(featureOf(gender, d.userVocab.get('2')!), 'F');
  assert.equal(gender.values[d.userVocab.get('3')!], 0, 'user 3 is not in the file');
  assert.equal(occupation.values[d.userVocab.get('2')!], 0, 'empty value is missing');
  assert.ok(!gender.vocab.ids.includes('writer') && !occupation.vocab.ids.includes('writer'), 'user 4 has no interactions');
  const [genre] = d.itemFeatures;
  assert.equal(featureOf(genre, d.itemVocab.get('40')!), 'Animation');
  assert.ok(!genre.vocab.ids.includes('Horror'));
  // Explicit columns, including a float one, by its stripped name.
  const e = await loadInteractions({ path: fx('tiny.csv'), userFeaturesPath: fx('tiny.user'), userFeatureCols: ['age'] });
  assert.equal(featureOf(e.userFeatures[0], e.userVocab.get('2')!), '53');
});

test('sequence format: positions are times, users may have no items, feature files still apply', async () => {
  const d = await loadInteractions({ path: fx('tiny.txt'), itemFeaturesPath: fx('tiny.item') });
  assert.deepEqual(rows(d), ['1 10 0 undefined', '1 20 1 undefined', '1 30 2 undefined', '2 10 0 undefined', '2 30 1 undefined', '2 40 2 undefined', '3 20 0 undefined', '3 40 1 undefined']);
  assert.equal(d.ratings, null);
  assert.equal(featureOf(d.itemFeatures[0], d.itemVocab.get('20')!), 'Action');
  // Same (user, item) pairs as the tabular fixture, ordered by time within each user.
  const csv = await loadInteractions({ path: fx('tiny.csv') });
  const byUserTime = (x: Interactions) =>
    Array.from(x.users.keys())
      .sort((a, b) => x.users[a] - x.users[b] || x.times![a] - x.times![b])
      .map((k) => `${x.userVocab.ids[x.users[k]]}:${x.itemVocab.ids[x.items[k]]}`);
  assert.deepEqual(byUserTime(d), byUserTime(csv));
  const p = path.join(tmp, 'gaps.txt');
  writeFileSync(p, '7 a b\n\n8\n7 c\n');
  const g = await loadInteractions({ path: p });
  assert.deepEqual(rows(g), ['7 a 0 undefined', '7 b 1 undefined', '7 c 2 undefined']);
  assert.ok(g.notes?.some((n) => n.includes('1 line(s) had a user but no items')));
});

test('synthetic: paths go to the generator', async () => {
  const d = await loadInteractions({ path: 'synthetic:users=200,items=300,clusters=5,zipf=1.0,seed=3' });
  assert.equal(d.userVocab.size, 200);
  assert.equal(d.itemVocab.size, 300);
  assert.ok(d.users.length >= 200 * 5);
});

const shared = path.resolve(repoRoot, '../shared');

test('public datasets in ../shared load with their published sizes', async (t) => {
  if (!existsSync(shared)) {
    const reason = `${shared} not found; skipping the public-dataset load test`;
    console.log(reason);
    t.skip(reason);
    return;
  }
  const ml = await loadInteractions({ path: path.join(shared, 'data/ml-100k/ml-100k.inter') });
  assert.equal(ml.users.length, 100_000);
  assert.equal(ml.userVocab.size, 943);
  assert.equal(ml.itemVocab.size, 1682);
  assert.ok(ml.times && ml.ratings);
  const beauty = await loadInteractions({ path: path.join(shared, 'data/amazon-beauty/Beauty.txt') });
  assert.equal(beauty.userVocab.size, 22_363);
  assert.equal(beauty.itemVocab.size, 12_101);
  assert.equal(beauty.users.length, 198_502);
});
