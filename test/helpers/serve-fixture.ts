/**
 * Small untrained-but-structured two-tower models for the serving tests: built in memory in milliseconds
 * (no training run), with one categorical feature per tower, seen lists and item counts. Different seeds
 * give different weights, hence different bundles, for reload tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../../src/compute/index.ts';
import { createBundle, writeBundle, type BundleDraft } from '../../src/bundle/write.ts';
import { saveModel, type ModelArtifacts } from '../../src/model/saved-model.ts';
import { TwoTowerModel } from '../../src/model/two-tower.ts';
import { Rng } from '../../src/util/rng.ts';

export const USERS = 300;
export const ITEMS = 600;
const CATS = ['<missing>', 'c1', 'c2', 'c3', 'c4', 'c5'];
const SEGS = ['<missing>', 's1', 's2', 's3'];

export function makeArtifacts(seed = 1, opts: { features?: boolean; dense?: boolean } = {}): ModelArtifacts {
  const features = opts.features !== false;
  const rng = new Rng(seed);
  // Dense features (opts.dense): a user 'taste' vector of 3 and an item 'content' vector of 2, random values.
  const userTaste = Float32Array.from({ length: USERS * 3 }, () => 2 * rng.normal());
  const itemContent = Float32Array.from({ length: ITEMS * 2 }, () => 2 * rng.normal());
  const userSeg = Int32Array.from({ length: USERS }, (_, u) => 1 + (u % 3));
  const itemCat = Int32Array.from({ length: ITEMS }, (_, j) => 1 + (j % 5));
  const model = new TwoTowerModel(
    {
      user: { vocabSize: USERS, idDim: 16, features: features ? [{ name: 'segment', cardinality: SEGS.length, dim: 4 }] : [], ...(opts.dense ? { dense: [{ name: 'taste', width: 3, dim: 4 }] } : {}), mlp: [24, 16] },
      item: { vocabSize: ITEMS, idDim: 16, features: features ? [{ name: 'category', cardinality: CATS.length, dim: 4 }] : [], ...(opts.dense ? { dense: [{ name: 'content', width: 2, dim: 4 }] } : {}), mlp: [24, 16] },
      sparseOptimizer: 'adagrad',
      sparseLr: 0.05,
      denseLr: 0.001,
      seed,
    },
    features ? [userSeg] : [],
    features ? [itemCat] : [],
    opts.dense ? [userTaste] : [],
    opts.dense ? [itemContent] : [],
  );
  model.init();
  // Scale the id embeddings up so the towers' outputs spread out (random init is nearly collinear).
  for (const t of [model.user.idTable, model.item.idTable]) for (let i = 0; i < t.data.length; i++) t.data[i] *= 20;
  const itemCounts = Float32Array.from({ length: ITEMS }, (_, j) => Math.floor(1000 / (j + 1)));
  const offsets = new Int32Array(USERS + 1);
  const cols: number[] = [];
  for (let u = 0; u < USERS; u++) {
    const n = 3 + rng.int(5);
    const s = new Set<number>();
    while (s.size < n) s.add(rng.int(ITEMS));
    cols.push(...[...s].sort((a, b) => a - b));
    offsets[u + 1] = cols.length;
  }
  return {
    model,
    userIds: Array.from({ length: USERS }, (_, u) => `u${u}`),
    itemIds: Array.from({ length: ITEMS }, (_, j) => `i${j}`),
    userFeatures: features ? [{ name: 'segment', vocab: SEGS, values: userSeg }] : [],
    itemFeatures: features ? [{ name: 'category', vocab: CATS, values: itemCat }] : [],
    itemCounts,
    seen: { rows: USERS, offsets, cols: Int32Array.from(cols) },
    meta: { created: '2026-01-01T00:00:00.000Z', recipe: { name: 'fixture' }, metrics: { 'recall@10': 0.5 } },
  };
}

const made: string[] = [];
process.on('exit', () => made.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A fresh temporary directory, removed when the test process exits. */
export const tmp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), `towerlab-${prefix}-`));
  made.push(d);
  return d;
};

export async function makeBundle(dir: string, seed = 1): Promise<BundleDraft> {
  const backend = await getBackend();
  const draft = createBundle(backend, makeArtifacts(seed), { index: { metric: 'ip', connectivity: 16, expansionAdd: 64, expansionSearch: 64 }, indexThreads: 1, recallQueries: 100, source: `fixture:${seed}` });
  writeBundle(dir, draft);
  return draft;
}

export function makeModelDir(dir: string, seed = 1): ModelArtifacts {
  const a = makeArtifacts(seed);
  saveModel(dir, a, false);
  return a;
}
