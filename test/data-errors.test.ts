import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { withDuck } from '../src/data/duck.ts';
import { loadInteractions, type DataSpec } from '../src/data/load.ts';
import { splitInteractions } from '../src/data/split.ts';
import { InputError, UserError } from '../src/util/errors.ts';

const tmp = mkdtempSync(path.join(tmpdir(), 'towerlab-data-errors-'));

function file(name: string, text: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** Loads `spec`, expecting an InputError at (row, field) whose message starts with the file and matches `problem`. */
async function expectInputError(
  spec: DataSpec,
  row: number | undefined,
  field: string | undefined,
  problem: RegExp,
  inFile = spec.path,
): Promise<InputError> {
  try {
    await loadInteractions(spec);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected InputError, got ${(e as Error).stack}`);
    assert.equal(e.row, row, e.message);
    assert.equal(e.field, field, e.message);
    const prefix = `${e.file}${row !== undefined ? `:${row}` : ''}: ${field !== undefined ? `field '${field}': ` : ''}`;
    assert.ok(e.message.startsWith(prefix), `${e.message} should start with ${prefix}`);
    assert.equal(e.file, inFile, e.message);
    assert.match(e.problem, problem);
    assert.doesNotMatch(e.message, /Possible fixes|LINE 1:|Binder Error/, 'no raw DuckDB text');
    return e;
  }
  assert.fail(`loading ${spec.path} should have failed`);
}

const HEADER = 'user_id,item_id,rating,timestamp\n';

test('missing, empty and header-only files', async () => {
  await expectInputError({ path: path.join(tmp, 'nope.csv') }, undefined, undefined, /file not found/);
  await expectInputError({ path: file('empty.csv', '') }, undefined, undefined, /empty/);
  await expectInputError({ path: file('header.csv', HEADER) }, undefined, undefined, /no data rows/);
  await expectInputError({ path: file('blank.txt', '\n\n') }, undefined, undefined, /no data rows/);
  await expectInputError({ path: file('nohist.txt', '1\n2\n') }, undefined, undefined, /no data rows/);
});

test('a missing column lists the available ones', async () => {
  const e = await expectInputError({ path: file('cols.csv', 'who,what\n1,2\n') }, undefined, 'user_id', /no such column/);
  assert.match(e.message, /available: who, what/);
  await expectInputError({ path: file('cols2.csv', HEADER + '1,2,3,4\n'), ratingCol: 'stars' }, undefined, 'stars', /available: user_id, item_id, rating, timestamp/);
  await expectInputError({ path: file('cols3.csv', HEADER + '1,2,3,4\n'), itemFeatureCols: ['genre'] }, undefined, 'genre', /no such column/);
  await expectInputError({ path: file('cols4.csv', 'user_id,item_id\n1,2\n'), minRating: 3 }, undefined, undefined, /minRating needs a rating column/);
});

test('wrong number of fields names the line (header counted) and the missing field', async () => {
  await expectInputError({ path: file('short.csv', HEADER + '1,10,5,100\n2,11,4\n') }, 3, 'timestamp', /expected 4 fields, found 3/);
  await expectInputError({ path: file('long.csv', HEADER + '1,10,5,100\n2,11,4,101\n3,12,4,102,9\n') }, 4, undefined, /expected 4 fields, found 5/);
  await expectInputError({ path: file('u.data', '1\t2\t3\t4\n5\t6\t7\n') }, 2, 'timestamp', /expected 4 fields, found 3/);
});

test('bad ratings: non-numeric, NaN, empty', async () => {
  await expectInputError({ path: file('r1.csv', HEADER + '1,10,5,100\n2,11,abc,101\n') }, 3, 'rating', /not a finite number: 'abc'/);
  await expectInputError({ path: file('r2.csv', HEADER + '1,10,NaN,100\n') }, 2, 'rating', /not a finite number: 'NaN'/);
  await expectInputError({ path: file('r3.csv', HEADER + '1,10,5,100\n1,11,,101\n') }, 3, 'rating', /missing rating/);
});

test('bad times: non-numeric, null', async () => {
  await expectInputError({ path: file('t1.csv', HEADER + '1,10,5,100\n2,11,4,yesterday\n') }, 3, 'timestamp', /not a number or a timestamp: 'yesterday'/);
  await expectInputError({ path: file('t2.csv', HEADER + '1,10,5,\n') }, 2, 'timestamp', /missing time/);
  await expectInputError({ path: file('t3.jsonl', '{"user_id":1,"item_id":2,"timestamp":5}\n{"user_id":1,"item_id":3,"timestamp":null}\n') }, 2, 'timestamp', /missing time/);
});

test('null or empty ids; the earliest bad row wins', async () => {
  await expectInputError({ path: file('u1.csv', HEADER + '1,10,5,100\n ,11,4,101\n') }, 3, 'user_id', /missing user id/);
  await expectInputError({ path: file('u2.csv', HEADER + '1,10,5,100\n2,,x,101\n') }, 3, 'item_id', /missing item id/);
  await expectInputError({ path: file('u3.csv', HEADER + '1,10,5,100\n2,11,x,101\n,12,5,102\n') }, 3, 'rating', /'x'/);
  // Blank lines are skipped by the reader; the reported line is still the file's.
  await expectInputError({ path: file('u4.csv', HEADER + '1,10,5,100\n\n\n2,,4,101\n') }, 5, 'item_id', /missing item id/);
  await expectInputError({ path: file('u5.jsonl', '{"user_id":"1","item_id":2}\n\n{"user_id":"2"}\n') }, 3, 'item_id', /missing item id/);
});

test('Parquet problems are reported by 1-based row', async () => {
  const p = path.join(tmp, 'nulls.parquet');
  await withDuck((duck) =>
    duck.run(`COPY (SELECT * FROM (VALUES ('1', '10'), ('2', '11'), (NULL, '12')) v(user_id, item_id)) TO '${p}' (FORMAT parquet)`),
  );
  await expectInputError({ path: p }, 3, 'user_id', /missing user id/);
  await expectInputError({ path: file('junk.parquet', 'this is not parquet') }, undefined, undefined, /could not parse/);
});

test('unparsable files: malformed JSON, bad quoting, CSV given as a sequence file', async () => {
  await expectInputError({ path: file('bad.jsonl', '{"user_id":1,"item_id":2}\n{"user_id": 2, item_id: 3}\n') }, 2, undefined, /invalid JSON/);
  await expectInputError({ path: file('quote.csv', HEADER + '1,10,5,100\n"2,11,4,101\n3,12,4,102\n') }, 3, undefined, /could not parse: Value with unterminated quote/);
  await expectInputError({ path: file('looks.txt', 'user_id,item_id\n1,2\n') }, 1, 'user', /is this a CSV file/);
  await expectInputError({ path: file('feat.csv', HEADER + '1,10,5,100\n'), userFeaturesPath: file('users.csv', 'user_id,age\n,3\n') }, 2, 'user_id', /missing user id/, path.join(tmp, 'users.csv'));
});

test('options that do not fit the data are UserErrors', async () => {
  await assert.rejects(loadInteractions({ path: file('s.txt', '1 2 3\n'), minRating: 3 }), UserError);
  await assert.rejects(loadInteractions({ path: 'synthetic:users=10' }), /'users' and 'items' are required/);
  await assert.rejects(loadInteractions({ path: 'synthetic:users=10,items=100,colors=3' }), /cannot read 'colors=3'/);
  await assert.rejects(loadInteractions({ path: 'synthetic:users=x,items=100' }), /'users' must be a number/);
  const noTimes = await loadInteractions({ path: file('nt.csv', 'user_id,item_id\n1,2\n1,3\n1,4\n') });
  assert.throws(() => splitInteractions(noTimes, { kind: 'loo' }), (e: Error) => e instanceof UserError && /needs event times/.test(e.message));
  assert.throws(() => splitInteractions(noTimes, { kind: 'temporal', val: 0.1, test: 0.1 }), UserError);
  assert.throws(() => splitInteractions(noTimes, { kind: 'random', val: 0.6, test: 0.5, seed: 1 }), /val \+ test < 1/);
});
