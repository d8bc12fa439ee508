/**
 * The item index of a trained model: HNSW or IVF-Flat over the item tower's embeddings, with its recall@10
 * against exact search measured on user queries at build time. Saved as a directory (items.usearch or
 * items.ivf + index.json with the settings and a checksum), written atomically.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import { writeDirAtomic, writeFileSynced } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { AnnIndex } from './ann-index.ts';
import { IvfIndex } from './ivf-index.ts';
import { ExactSearcher } from './exact.ts';
import { indexRecall, type RecallReport } from './recall.ts';
import { breadthText, buildVectorIndex, isIvfConfig, type IndexConfig, type OwnIndex } from './vector-index.ts';

export const INDEX_FORMAT = 'towerlab-index';
export const INDEX_VERSION = 1;

export interface BuiltIndex {
  index: OwnIndex;
  recall: RecallReport;
  buildSeconds: number;
}

/**
 * Builds the index over `itemEmb` (n×dim, L2-normalised) and measures recall@10 vs exact with `queries`
 * (rows of dim values; user embeddings, as the server will see).
 */
export function buildIndex(backend: Backend, itemEmb: Float32Array, n: number, dim: number, queries: Float32Array, config: IndexConfig, log: (m: string) => void = () => {}, threads = 0): BuiltIndex {
  if (isIvfConfig(config)) log(`building the IVF index (${config.metric}, ${config.lists} lists) over ${n} items`);
  else log(`building the HNSW index (${config.metric}, M=${config.connectivity}, ef_add=${config.expansionAdd}) over ${n} items`);
  const t0 = performance.now();
  const index = buildVectorIndex(backend, itemEmb, n, dim, config, log, threads);
  const buildSeconds = (performance.now() - t0) / 1000;
  const recall = indexRecall(index, new ExactSearcher(backend, itemEmb, n, dim), queries, 10);
  log(`index built in ${buildSeconds.toFixed(1)} s; recall@10 vs exact ${recall.recall.toFixed(4)} at ${breadthText(index.config)} over ${recall.queries} user queries`);
  return { index, recall, buildSeconds };
}

/** Embeddings of up to n users spread over the vocabulary (seeded): the recall queries. */
export function sampleUserQueries(embed: (u: number, out: Float32Array) => void, numUsers: number, dim: number, n: number): Float32Array {
  const count = Math.min(n, numUsers);
  const rng = new Rng(1);
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) embed(count === numUsers ? i : rng.int(numUsers), out.subarray(i * dim, (i + 1) * dim));
  return out;
}

/** The file name of a saved index in an index directory. */
export function indexFileName(c: IndexConfig): string {
  return isIvfConfig(c) ? 'items.ivf' : 'items.usearch';
}

/** The bytes of a saved index (usearch saves only to a path). */
export function indexBytes(index: OwnIndex): Buffer {
  if (index instanceof IvfIndex) return index.toBytes();
  const tmp = mkdtempSync(join(tmpdir(), 'towerlab-index-'));
  try {
    index.save(join(tmp, 'items.usearch'));
    return readFileSync(join(tmp, 'items.usearch'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export interface IndexMeta {
  format: string;
  version: number;
  created: string;
  model: string;
  items: number;
  dim: number;
  config: IndexConfig;
  recallAt10: number;
  recallQueries: number;
  buildSeconds: number;
  sha256: string;
}

/**
 * What an item index needs of a trained model: its item embeddings, its user tower (for the recall queries)
 * and its vocabularies' sizes. model/saved-model.ts ModelArtifacts has this shape; it is declared here so that
 * index/ (below model/ in the layer order) does not import the model.
 */
export interface IndexableModel {
  model: {
    readonly dim: number;
    embedAllItems(backend: Backend): Float32Array;
    readonly user: { embed(backend: Backend, ids: Int32Array, out: Float32Array): void };
  };
  userIds: readonly string[];
  itemIds: readonly string[];
}

export function buildItemIndex(backend: Backend, a: IndexableModel, config: IndexConfig, recallQueries: number, log?: (m: string) => void): BuiltIndex & { itemEmb: Float32Array } {
  const m = a.model;
  const itemEmb = m.embedAllItems(backend);
  const q = new Int32Array(1);
  const queries = sampleUserQueries((u, out) => ((q[0] = u), m.user.embed(backend, q, out)), a.userIds.length, m.dim, recallQueries);
  return { ...buildIndex(backend, itemEmb, a.itemIds.length, m.dim, queries, config, log), itemEmb };
}

export function writeIndexDir(dir: string, built: BuiltIndex, model: string): IndexMeta {
  const bytes = indexBytes(built.index);
  const meta: IndexMeta = {
    format: INDEX_FORMAT,
    version: INDEX_VERSION,
    created: new Date().toISOString(),
    model,
    items: built.index.size,
    dim: built.index.dim,
    config: built.index.config,
    recallAt10: built.recall.recall,
    recallQueries: built.recall.queries,
    buildSeconds: built.buildSeconds,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  writeDirAtomic(dir, (tmp) => {
    writeFileSynced(join(tmp, indexFileName(meta.config)), bytes);
    writeFileSynced(join(tmp, 'index.json'), JSON.stringify(meta, null, 1));
  });
  return meta;
}

/** Loads an index directory, verifying its format, version and checksum. */
export function loadIndexDir(dir: string): { index: OwnIndex; meta: IndexMeta } {
  const mp = join(dir, 'index.json');
  if (!existsSync(mp)) throw new UserError(`${dir}: not an index directory (no index.json)`);
  let meta: IndexMeta;
  try {
    meta = JSON.parse(readFileSync(mp, 'utf8'));
  } catch (e) {
    throw new UserError(`${mp}: corrupted (not valid JSON)`);
  }
  if (meta.format !== INDEX_FORMAT) throw new UserError(`${mp}: format is '${meta.format}', expected '${INDEX_FORMAT}'`);
  if (!(meta.version <= INDEX_VERSION)) throw new UserError(`${mp}: index format version ${meta.version} is newer than this Towerlab reads (${INDEX_VERSION})`);
  const ip = join(dir, indexFileName(meta.config));
  if (!existsSync(ip)) throw new UserError(`${ip}: missing`);
  const bytes = readFileSync(ip);
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== meta.sha256) throw new UserError(`${ip}: checksum mismatch (file corrupted or replaced)`);
  const c = meta.config;
  if (isIvfConfig(c)) return { index: IvfIndex.fromBytes(bytes, ip, { dim: meta.dim, items: meta.items, nprobe: c.nprobe }), meta };
  return { index: AnnIndex.load(ip, meta.dim, c, meta.items), meta };
}
