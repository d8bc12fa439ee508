/**
 * Builds a serving bundle from a trained model (see format.ts for the layout) and writes it atomically:
 * every file goes into a temporary directory, the manifest last, then the target link is swapped to it
 * (util/atomic.ts writeDirAtomic); a crash before the swap leaves the previous bundle untouched.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import { defaultAnnConfig } from '../index/ann-index.ts';
import { isIvfConfig, type IndexConfig, type VectorIndex } from '../index/vector-index.ts';
import { buildIndex, indexBytes, sampleUserQueries } from '../index/item-index.ts';
import { fsyncDir, writeDirAtomic, writeFileSynced } from '../util/atomic.ts';
import { BUNDLE_FORMAT, BUNDLE_MANIFEST, BUNDLE_VERSION, SIGNATURE_FILE, bundleContentId, INDEX_FILE, IVF_INDEX_FILE, TFJS_MODEL, names, type ArrayEntry, type BundleManifest } from './format.ts';
import { UserError } from '../util/errors.ts';
import { QueryTower, denseWeights, layersFromConfig, meanRow, type QueryTowerWeights } from './query-tower.ts';
import { SEQ_FILE, type SeqBundlePart } from './seq.ts';
import { CHUNK_DOC, CHUNK_DOC_FILE, DOCUMENTS_FILE, TEXT_FILE, type TextBundlePart } from './text.ts';

export interface BundleOptions {
  /** HNSW or IVF settings, or null for no index (the server then searches exactly). */
  index: IndexConfig | null;
  /** Users whose embeddings serve as queries when measuring the index recall@10 against exact search. */
  recallQueries: number;
  /** Threads inserting into the HNSW graph (0 = every core). 1 builds the same graph every run (tests). */
  indexThreads?: number;
  /** Where the model came from, for the manifest. */
  source: string;
  /** Progress messages (index building can take minutes for millions of items). */
  log?: (msg: string) => void;
  /** More files to carry (e.g. query-tower.onnx + .json), listed and checksummed like the others. */
  extraFiles?: Map<string, Uint8Array>;
}

export const defaultBundleOptions: BundleOptions = { index: defaultAnnConfig, recallQueries: 500, source: '' };

/** A bundle assembled in memory: its files (manifest included) and the live objects they were made from. */
export interface BundleDraft {
  manifest: BundleManifest;
  files: Map<string, Uint8Array>;
  index: VectorIndex | null;
  itemEmb: Float32Array;
  query: QueryTowerWeights;
}

const TOWERLAB_VERSION = '0.1.0';
const bytesOf = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export function createBundle(backend: Backend, a: ModelArtifacts & { sequence?: SeqBundlePart; text?: TextBundlePart }, o: BundleOptions): BundleDraft {
  const log = o.log ?? (() => {});
  const m = a.model;
  // A sequence model: the user table is filled with each user's sequence embedding (see seq.ts).
  a.sequence?.fillUsers(backend, m.user.idTable.data);
  const dim = m.dim;
  const numItems = a.itemIds.length;
  const numUsers = a.userIds.length;
  const files = new Map<string, Uint8Array>();
  const arrays: ArrayEntry[] = [];
  const tfGroups: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[]; dtype: string }> }> = [];

  const addArray = (name: string, file: string, data: Float32Array | Int32Array, shape: number[], tfjs: boolean) => {
    files.set(file, bytesOf(data));
    const dtype = data instanceof Int32Array ? 'int32' : 'float32';
    arrays.push({ name, file, dtype, shape });
    if (tfjs) tfGroups.push({ paths: [file], weights: [{ name, shape, dtype }] });
  };

  // Dense weights of both towers (and the mean user id row) as one TF.js weight group: concatenated, no padding.
  const dense: Array<{ name: string; data: Float32Array; shape: number[] }> = [];
  for (const t of [m.user, m.item]) {
    const tower = t.name as 'user' | 'item';
    t.layers.forEach((l, i) => {
      dense.push({ name: names.layerW(tower, i), data: l.w, shape: [l.inDim, l.outDim] });
      dense.push({ name: names.layerB(tower, i), data: l.b, shape: [l.outDim] });
    });
  }
  // The user tower's dense-feature projections (the item side's are baked into the stored item embeddings).
  m.user.projections.forEach((p, k) => {
    dense.push({ name: names.denseW('user', k), data: p.w, shape: [p.inDim, p.outDim] });
    dense.push({ name: names.denseB('user', k), data: p.b, shape: [p.outDim] });
  });
  // With user history the served id rows are the mixed ones (history baked in: the training items at export time).
  const userIdTable = m.servingUserIdTable(backend);
  const idMean = meanRow(userIdTable, numUsers, m.user.config.idDim);
  dense.push({ name: names.userIdMean, data: idMean, shape: [idMean.length] });
  const denseBin = new Float32Array(dense.reduce((s, d) => s + d.data.length, 0));
  let off = 0;
  for (const d of dense) {
    denseBin.set(d.data, off);
    off += d.data.length;
    arrays.push({ name: d.name, file: 'weights/dense.bin', dtype: 'float32', shape: d.shape });
  }
  files.set('weights/dense.bin', bytesOf(denseBin));
  tfGroups.push({ paths: ['weights/dense.bin'], weights: dense.map((d) => ({ name: d.name, shape: d.shape, dtype: 'float32' })) });

  for (const t of [m.user, m.item]) {
    const tower = t.name as 'user' | 'item';
    // A text bundle's item "table" is its chunk embeddings, stored once below as item.embeddings.
    if (a.text && tower === 'item') continue;
    addArray(names.idTable(tower), `weights/${tower}.id.bin`, tower === 'user' ? userIdTable : t.idTable.data, [t.config.vocabSize, t.config.idDim], true);
    t.featTables.forEach((tab, f) => addArray(names.featTable(tower, f), `weights/${tower}.feature${f}.bin`, tab.data, [tab.rows, tab.dim], true));
    t.featureValues.forEach((v, f) => addArray(names.featValues(tower, f), `data/${tower}.feature${f}.values.bin`, v, [v.length], true));
  }
  // Each known user's dense values (what the query tower projects for `user` queries).
  m.user.denseValues.forEach((v, k) => addArray(names.denseValues('user', k), `data/user.dense${k}.values.bin`, v, [m.user.config.vocabSize, m.user.dense[k].width], true));

  log(`embedding ${numItems} items`);
  const itemEmb = a.sequence ? a.sequence.itemEmbeddings(backend) : a.text ? a.text.itemEmbeddings(backend) : m.embedAllItems(backend);
  addArray(names.itemEmbeddings, 'weights/item.embeddings.bin', itemEmb, [numItems, dim], true);
  addArray(names.itemCounts, 'data/item.counts.bin', a.itemCounts, [a.itemCounts.length], false);
  addArray(names.seenOffsets, 'data/seen.offsets.bin', a.seen.offsets, [a.seen.offsets.length], false);
  addArray(names.seenCols, 'data/seen.cols.bin', a.seen.cols, [a.seen.cols.length], false);
  if (a.sequence) {
    // The sequence tower's tensors back to back in one file (not a TF.js group: the browser page does not run it).
    const parts = a.sequence.arrays;
    const bin = new Float32Array(parts.reduce((s, [, t]) => s + t.length, 0));
    let at = 0;
    for (const [name, t] of parts) {
      bin.set(t, at);
      at += t.length;
      arrays.push({ name, file: SEQ_FILE, dtype: 'float32', shape: [t.length] });
    }
    files.set(SEQ_FILE, bytesOf(bin));
  }
  if (a.text) {
    // The text query tower's tensors back to back (not a TF.js group: the page asks the server to embed text).
    const parts = a.text.arrays;
    const bin = new Float32Array(parts.reduce((s, [, t]) => s + t.length, 0));
    let at = 0;
    for (const [name, t] of parts) {
      bin.set(t, at);
      at += t.length;
      arrays.push({ name, file: TEXT_FILE, dtype: 'float32', shape: [t.length] });
    }
    files.set(TEXT_FILE, bytesOf(bin));
    addArray(CHUNK_DOC, CHUNK_DOC_FILE, a.text.chunkDoc, [a.text.chunkDoc.length], false);
  }

  const vocabularies: BundleManifest['vocabularies'] = {};
  const addVocab = (key: string, file: string, value: unknown, count: number) => {
    const bytes = Buffer.from(JSON.stringify(value));
    files.set(file, bytes);
    vocabularies[key] = { file, count, sha256: sha256(bytes) };
  };
  addVocab('users', 'vocab/users.json', a.userIds, numUsers);
  addVocab('items', 'vocab/items.json', a.itemIds, numItems);
  const feats = {
    user: a.userFeatures.map((f) => ({ name: f.name, vocab: f.vocab })),
    item: a.itemFeatures.map((f) => ({ name: f.name, vocab: f.vocab })),
  };
  addVocab('features', 'vocab/features.json', feats, feats.user.length + feats.item.length);
  // Display names (from --item-names), for responses and the demo; ids stay the keys.
  if (a.itemNames) addVocab('itemNames', 'vocab/item-names.json', a.itemNames, numItems);
  if (a.text) addVocab('documents', DOCUMENTS_FILE, { ids: a.text.docIds, titles: a.text.titles }, a.text.docIds.length);

  const query: QueryTowerWeights = {
    config: m.user.config,
    idTable: userIdTable,
    idMean,
    featTables: m.user.featTables.map((t) => t.data),
    featValues: m.user.featureValues,
    dense: denseWeights(m.user),
    layers: layersFromConfig(m.user.config, (l) => ({ w: m.user.layers[l].w, b: m.user.layers[l].b })),
    outDim: m.user.outDim,
  };

  let index: VectorIndex | null = null;
  let indexMeta: BundleManifest['index'] = null;
  if (o.index) {
    const tower = new QueryTower(query);
    const queries = a.text ? a.text.recallQueries(backend, o.recallQueries) : sampleUserQueries((u, out) => tower.embedUser(backend, u, out), numUsers, dim, o.recallQueries);
    const built = buildIndex(backend, itemEmb, numItems, dim, queries, o.index, log, o.indexThreads);
    index = built.index;
    const c = o.index;
    const stats = { recallAt10: built.recall.recall, recallQueries: built.recall.queries, buildSeconds: built.buildSeconds };
    if (isIvfConfig(c)) {
      const lists = (index.config as typeof c).lists; // capped at the item count
      files.set(IVF_INDEX_FILE, indexBytes(index));
      indexMeta = { file: IVF_INDEX_FILE, kind: 'ivf', metric: c.metric, lists, nprobe: c.nprobe, ...stats };
    } else {
      files.set(INDEX_FILE, indexBytes(index));
      indexMeta = { file: INDEX_FILE, ...c, ...stats };
    }
  }

  const meta = a.meta ?? {};
  const tfjsModel = {
    format: 'towerlab-towers',
    generatedBy: `towerlab ${TOWERLAB_VERSION}`,
    convertedBy: null,
    // Not a layers topology: the page rebuilds the (tiny) tower from these shapes with tfjs-core ops.
    modelTopology: { dim, user: m.user.config, item: m.item.config, userFeatures: feats.user.map((f) => f.name), itemFeatures: feats.item.map((f) => f.name), historyQuery: a.sequence ? 'sequence-tower' : 'mean-item-embedding' },
    weightsManifest: tfGroups,
  };
  files.set(TFJS_MODEL, Buffer.from(JSON.stringify(tfjsModel)));
  for (const [path, bytes] of o.extraFiles ?? []) files.set(path, bytes);

  const checksums: BundleManifest['files'] = {};
  for (const [path, bytes] of [...files].sort(([x], [y]) => (x < y ? -1 : 1))) checksums[path] = { bytes: bytes.byteLength, sha256: sha256(bytes) };
  const metrics: Record<string, number | null> = {};
  for (const [k, v] of Object.entries((meta.metrics ?? {}) as Record<string, unknown>)) if (typeof v === 'number') metrics[k] = Number.isFinite(v) ? v : null;
  const model: BundleManifest['model'] = { dim, users: numUsers, items: numItems, user: m.user.config, item: m.item.config, historyQuery: a.sequence ? 'sequence-tower' : 'mean-item-embedding', ...(a.sequence ? { sequence: a.sequence.manifest } : {}), ...(a.text ? { text: a.text.manifest } : {}) };
  const id = bundleContentId({ files: checksums, model, vocabularies, arrays, index: indexMeta });
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    id,
    created: new Date().toISOString(),
    towerlab: TOWERLAB_VERSION,
    source: { model: o.source, modelCreated: typeof meta.created === 'string' ? meta.created : null },
    recipe: meta.recipe,
    metrics,
    model,
    vocabularies,
    arrays,
    index: indexMeta,
    files: checksums,
  };
  files.set(BUNDLE_MANIFEST, Buffer.from(JSON.stringify(manifest, null, 1)));
  return { manifest, files, index, itemEmb, query };
}

/** The signature file's text: HMAC-SHA-256 of the manifest's bytes under `key`. */
export function signManifest(manifest: Uint8Array, key: Buffer): string {
  return `hmac-sha256:${createHmac('sha256', key).update(manifest).digest('hex')}\n`;
}

/**
 * Writes the draft's files under `dir` atomically, the manifest last. `onFile` is told after each file
 * (progress; tests use it to simulate a crash mid-write).
 */
export function writeBundle(dir: string, draft: BundleDraft, onFile?: (path: string, written: number) => void, opts: { signKey?: Buffer } = {}): void {
  writeDirAtomic(dir, (tmp) => {
    const subdirs = new Set<string>();
    let n = 0;
    const write = (path: string, bytes: Uint8Array) => {
      const full = join(tmp, path);
      const sub = dirname(full);
      if (!subdirs.has(sub)) {
        mkdirSync(sub, { recursive: true });
        subdirs.add(sub);
      }
      writeFileSynced(full, bytes);
      onFile?.(path, ++n);
    };
    for (const [path, bytes] of draft.files) if (path !== BUNDLE_MANIFEST) write(path, bytes);
    for (const sub of subdirs) if (sub !== tmp) fsyncDir(sub);
    const manifest = draft.files.get(BUNDLE_MANIFEST)!;
    write(BUNDLE_MANIFEST, manifest);
    // The signature covers the manifest, which covers every file; written inside the same atomic version.
    if (opts.signKey) write(SIGNATURE_FILE, Buffer.from(signManifest(manifest, opts.signKey)));
  });
}
