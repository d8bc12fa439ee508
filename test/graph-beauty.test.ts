/**
 * The transition graph and neighbourhood overlap at Amazon Beauty scale (22k sequences, 12k items), from the
 * training split only; skips with a reason when ../shared/data is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSeq } from '../src/data/seq.ts';
import { splitInteractions } from '../src/data/split.ts';
import { buildNeighbourhood } from '../src/graph/build.ts';
import { seqDataFrom } from '../src/seq/data.ts';

const BEAUTY = join(import.meta.dirname, '..', '..', 'shared', 'data', 'amazon-beauty', 'Beauty.txt');

test('Amazon Beauty: the graph builds from the training split in bounded memory (its time is reported, not asserted)', (t) => {
  if (!existsSync(BEAUTY)) {
    console.log(`# skipping: ${BEAUTY} not found (shared data sets absent)`);
    t.skip(`${BEAUTY} not found (shared data sets absent)`);
    return;
  }
  const raw = readSeq(BEAUTY);
  const data = seqDataFrom(raw, splitInteractions(raw, { kind: 'loo' }));
  assert.equal(data.numUsers, 22363);
  assert.equal(data.numItems, 12101);
  assert.equal(data.trainSize, 198502 - 2 * 22363);
  const { sampler, stats } = buildNeighbourhood(data.train, data.numItems, { window: 3, weight: 'bool', candidates: 'all', temperature: 1, excludeTop: 0, maxCandidates: 256 });
  assert.ok(stats.edges > 100_000, `${stats.edges} edges`);
  assert.ok(stats.candidates <= 256 * data.numItems);
  assert.ok(stats.graphBytes + stats.overlapBytes + stats.samplerBytes < 128 * 2 ** 20, 'under 128 MiB');
  sampler.setHardness(0.3);
  let total = 0;
  for (let j = 0; j < data.numItems; j++) total += sampler.probability(4, j);
  assert.ok(Math.abs(total - 1) < 1e-6);
  t.diagnostic(`graph ${stats.graphSeconds.toFixed(2)} s, overlap ${stats.overlapSeconds.toFixed(2)} s, ${stats.edges} edges, ${stats.candidates} candidates`);
});
