/** Bench results carry repository-relative paths, never the absolute paths of the machine they ran on. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { relativePaths, relativePathsIn, REPO_ROOT } from '../bench/result-paths.ts';

test('relativePaths rewrites repo, sibling and temp paths, embedded ones included, and nothing else', () => {
  const parent = dirname(REPO_ROOT);
  const v = relativePaths({
    data: `${parent}/shared/data/ml-100k/ml-100k.inter: 943 users`,
    list: [`${REPO_ROOT}/bench/results/x.json`, `${tmpdir()}/run-1/model`],
    note: 'ratio 1/2, a/b and https://example.org/x stay',
    n: 3,
  });
  assert.deepEqual(v, {
    data: '../shared/data/ml-100k/ml-100k.inter: 943 users',
    list: ['bench/results/x.json', '<tmp>/run-1/model'],
    note: 'ratio 1/2, a/b and https://example.org/x stay',
    n: 3,
  });
  assert.equal(relativePathsIn(`model at ${REPO_ROOT}`), 'model at .');
});

test('no bench/results JSON records an absolute path', () => {
  const dir = join(REPO_ROOT, 'bench', 'results');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const text = readFileSync(join(dir, f), 'utf8');
    const abs = text.match(/"(\/(?:work|home|root|tmp|Users|var)\/[^"]*)"/);
    assert.equal(abs, null, `${f} records ${abs?.[1]}`);
  }
});
