/**
 * Loads a serving bundle and refuses anything it cannot vouch for: unknown format, a newer version, a file
 * missing or of the wrong size, a checksum mismatch, shapes that disagree with the model: each reported in
 * one line naming the file and the problem. Files are read and hashed in a worker thread and the rest is
 * built in slices, so a server that hot-reloads keeps answering while the next bundle is checked.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import type { Csr } from '../data/csr.ts';
import { AnnIndex } from '../index/ann-index.ts';
import { IvfIndex } from '../index/ivf-index.ts';
import type { VectorIndex } from '../index/vector-index.ts';
import { resolveDirVersion } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import { BUNDLE_FORMAT, BUNDLE_MANIFEST, BUNDLE_VERSION, manifestSchema, names, type BundleManifest } from './format.ts';
import { layersFromConfig, towerOutDim, type QueryTowerWeights } from './query-tower.ts';
import type { BundleDraft } from './write.ts';
import { seqTowerFromBundle } from './seq.ts';
import type { SeqTower } from '../seq/tower.ts';

export interface FeatureVocab {
  name: string;
  vocab: string[];
  index: Map<string, number>;
  values: Int32Array;
}

/** A bundle ready to serve: only what queries need is kept in memory (not the item tower's tables). */
export interface Bundle {
  id: string;
  /** Directory it was read from; null for a bundle built in memory from a model directory. */
  dir: string | null;
  manifest: BundleManifest;
  userIds: string[];
  itemIds: string[];
  userIndex: Map<string, number>;
  itemIndex: Map<string, number>;
  userFeatures: FeatureVocab[];
  itemFeatures: FeatureVocab[];
  query: QueryTowerWeights;
  itemEmb: Float32Array;
  itemCounts: Float32Array;
  seen: Csr;
  index: VectorIndex | null;
  /** The sequence tower answering history queries (bundles of sequence models, see seq.ts), else null. */
  sequence: SeqTower | null;
  /** One file of the bundle as listed in the manifest (for the browser page). */
  readFile(path: string): Promise<Uint8Array>;
}

/** Files only checked, not kept: the server never needs the item tower's own tables, nor the ONNX export. */
const CHECK_ONLY = /^(weights\/item\.(id|feature\d+)\.bin|query-tower\.(onnx|json))$/;

export interface ReadOptions {
  /** HNSW search breadth (ef) to use instead of the one stored with the index: recall against latency. */
  expansionSearch?: number;
  /** IVF lists scanned per query (nprobe) instead of the stored setting: recall against latency. */
  nprobe?: number;
  /** Tries when the bundle is replaced while being read. */
  attempts?: number;
}

export async function readBundle(dir: string, opts: ReadOptions = {}): Promise<Bundle> {
  const attempts = opts.attempts ?? 3;
  for (let i = 1; ; i++) {
    let before: string | null = null;
    try {
      before = await manifestText(dir);
      // Every file from one version of the directory, even if a writer swaps in the next one meanwhile.
      const real = resolveDirVersion(dir);
      return await readOnce(real, dir, await manifestText(real), opts);
    } catch (e) {
      // A bundle being swapped in while we read (the directory briefly absent, files of the new one under the
      // old manifest) shows up as an error here: wait for the writer to finish, then read the new one.
      if (i >= attempts || !(e instanceof UserError)) throw e;
      await new Promise((r) => setTimeout(r, 100));
      const after = await manifestText(dir).catch(() => null);
      if (after === null || after === before) throw e;
    }
  }
}

async function manifestText(dir: string): Promise<string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir}: no such bundle directory`);
  const p = join(dir, BUNDLE_MANIFEST);
  if (!existsSync(p)) {
    const hint = existsSync(join(dir, 'model', BUNDLE_MANIFEST)) ? ` (a run directory? its bundle is made by 'towerlab export --model ${dir}')` : '';
    throw new UserError(`${dir}: not a bundle (no ${BUNDLE_MANIFEST})${hint}`);
  }
  return readFile(p, 'utf8');
}

export function parseManifest(text: string, where: string): BundleManifest {
  let raw: any;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${where}: corrupted manifest: ${(e as Error).message}`);
  }
  if (raw?.format === 'towerlab-model') throw new UserError(`${where}: this is a model directory, not a bundle: make one with 'towerlab export'`);
  if (raw?.format !== BUNDLE_FORMAT) throw new UserError(`${where}: format is '${raw?.format}', expected '${BUNDLE_FORMAT}'`);
  if (typeof raw.version !== 'number') throw new UserError(`${where}: no format version`);
  if (raw.version > BUNDLE_VERSION) throw new UserError(`${where}: bundle format version ${raw.version} is newer than this Towerlab reads (${BUNDLE_VERSION}); upgrade Towerlab`);
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const iss = r.error.issues[0];
    throw new UserError(`${where}: field '${iss.path.join('.')}': ${iss.message}`);
  }
  return r.data;
}

/** Reads the bundle files under `real`, naming them under `dir` (the path the caller gave) in messages. */
async function readOnce(real: string, dir: string, text: string, opts: ReadOptions): Promise<Bundle> {
  const mpath = join(dir, BUNDLE_MANIFEST);
  const manifest = parseManifest(text, mpath);
  const ixFile = manifest.index?.file;
  const idFiles = new Set([manifest.vocabularies.users?.file, manifest.vocabularies.items?.file]);
  if (ixFile !== undefined && !manifest.files[ixFile]) throw new UserError(`${mpath}: the index file '${ixFile}' is not listed under 'files'`);
  const files: VerifyFile[] = Object.entries(manifest.files)
    .filter(([file]) => file !== ixFile)
    .map(([file, want]) => ({ file, ...want, mode: CHECK_ONLY.test(file) ? 'check' : idFiles.has(file) ? 'ids' : 'keep' }));
  // An IVF index is plain arrays: its verified bytes are kept and viewed in place, like the other arrays.
  const ivf = manifest.index?.kind === 'ivf';
  if (ixFile !== undefined) files.push({ file: ixFile, ...manifest.files[ixFile], mode: ivf ? 'keep' : 'index' });
  // The index is copied, verified and mapped from a private path: the checked bytes are the served bytes,
  // and nobody can change them under the mapping.
  const priv = await mkdtemp(join(tmpdir(), 'towerlab-serve-index-'));
  let index: VectorIndex | null = null;
  let contents: Map<string, Uint8Array>;
  let idLists: Map<string, string>;
  try {
    const copy = join(priv, 'items.usearch');
    ({ contents, idLists } = await verifyInWorker(real, dir, files, copy));
    const mi = manifest.index;
    if (mi?.kind === 'ivf') {
      const b = contents.get(mi.file)!;
      index = IvfIndex.fromBytes(b, join(dir, mi.file), { dim: manifest.model.dim, items: manifest.model.items, nprobe: opts.nprobe ?? mi.nprobe });
    } else if (mi) {
      const ix = { ...mi, expansionSearch: opts.expansionSearch ?? mi.expansionSearch };
      index = AnnIndex.view(copy, manifest.model.dim, ix, manifest.model.items);
    }
  } finally {
    // The mapping keeps the unlinked file alive until the index is released.
    await rm(priv, { recursive: true, force: true });
  }
  return assemble(manifest, dir, index, (file) => {
    const b = contents.get(file);
    if (!b) throw new UserError(`${mpath}: '${file}' is used but not listed under 'files'`);
    return b;
  }, async (file) => {
    if (!Object.hasOwn(manifest.files, file)) throw new UserError(`${file}: not a file of this bundle`);
    return readFile(join(real, file)); // this version's bytes, not a newer bundle's
  }, idLists);
}

/** A bundle straight from a draft in memory (serving a model directory without writing a bundle). */
export function bundleFromDraft(d: BundleDraft): Promise<Bundle> {
  return assemble(d.manifest, null, d.index, (file) => {
    const b = d.files.get(file);
    if (!b) throw new UserError(`bundle: '${file}' missing`);
    return aligned(b);
  }, async (file) => {
    const b = d.files.get(file);
    if (!b || !Object.hasOwn(d.manifest.files, file)) throw new UserError(`${file}: not a file of this bundle`);
    return b;
  });
}

interface VerifyFile {
  file: string;
  bytes: number;
  sha256: string;
  /** keep: bytes returned; check: only verified; index: copied to the private path; ids: parsed id list. */
  mode: 'keep' | 'check' | 'index' | 'ids';
}

/**
 * Sizes and checksums of every file, checked in a worker thread (verify-worker.mjs): hashing a million-item
 * bundle, and the garbage of its read buffers, would otherwise stall a serving event loop for seconds.
 * Returns the kept files' bytes (transferred, not copied) and the id lists, each joined by newlines.
 */
function verifyInWorker(real: string, shownDir: string, files: VerifyFile[], indexCopy: string): Promise<{ contents: Map<string, Uint8Array>; idLists: Map<string, string> }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./verify-worker.mjs', import.meta.url), { workerData: { real, shownDir, files, indexCopy } });
    let answered = false;
    w.once('message', (m: { buffers?: Record<string, ArrayBuffer>; ids?: Record<string, string>; error?: string; user?: boolean }) => {
      answered = true;
      if (m.error !== undefined) reject(m.user ? new UserError(m.error) : new Error(m.error));
      else resolve({ contents: new Map(Object.entries(m.buffers!).map(([f, b]) => [f, new Uint8Array(b)])), idLists: new Map(Object.entries(m.ids ?? {})) });
      void w.terminate();
    });
    w.once('error', (e) => reject(e));
    w.once('exit', (code) => answered || reject(new Error(`bundle verification worker exited with code ${code}`)));
  });
}

const mismatch = (p: string, want: string, got: string) =>
  new UserError(`${p}: checksum mismatch (expected ${want.slice(0, 12)}…, got ${got.slice(0, 12)}…): the file is corrupted or was replaced`);

async function assemble(
  manifest: BundleManifest,
  dir: string | null,
  index: VectorIndex | null,
  bytes: (file: string) => Uint8Array,
  readFileFn: (file: string) => Promise<Uint8Array>,
  /** Id lists already parsed (newline-joined), by file. */
  idLists: Map<string, string> = new Map(),
): Promise<Bundle> {
  const where = dir ? join(dir, BUNDLE_MANIFEST) : 'bundle';
  const mdl = manifest.model;
  // Arrays sharing a file are laid out back to back in manifest order (TF.js weight-group layout).
  const offsets = new Map<string, number>();
  const views = new Map<string, Float32Array | Int32Array>();
  for (const a of manifest.arrays) {
    if (CHECK_ONLY.test(a.file)) continue;
    const buf = bytes(a.file);
    const count = a.shape.reduce((s, x) => s * x, 1);
    const off = offsets.get(a.file) ?? 0;
    if (off + count * 4 > buf.byteLength) throw new UserError(`${dir ? join(dir, a.file) : a.file}: too short for '${a.name}' of shape [${a.shape}]`);
    views.set(a.name, a.dtype === 'int32' ? new Int32Array(buf.buffer, buf.byteOffset + off, count) : new Float32Array(buf.buffer, buf.byteOffset + off, count));
    offsets.set(a.file, off + count * 4);
  }
  const get = <T extends Float32Array | Int32Array>(name: string, length: number, type: 'f' | 'i' = 'f'): T => {
    const v = views.get(name);
    if (!v) throw new UserError(`${where}: array '${name}' missing`);
    if ((type === 'i') !== v instanceof Int32Array) throw new UserError(`${where}: array '${name}' has the wrong dtype`);
    if (v.length !== length) throw new UserError(`${where}: array '${name}' has ${v.length} values, the model implies ${length}`);
    return v as T;
  };
  const json = (key: string): any => {
    const v = manifest.vocabularies[key];
    if (!v) throw new UserError(`${where}: vocabulary '${key}' missing`);
    try {
      return JSON.parse(Buffer.from(bytes(v.file)).toString('utf8'));
    } catch (e) {
      throw new UserError(`${v.file}: unreadable vocabulary: ${(e as Error).message}`);
    }
  };
  const ids = async (key: string): Promise<string[]> => {
    const joined = idLists.get(manifest.vocabularies[key]?.file ?? '');
    return joined === undefined ? json(key) : splitLines(joined);
  };
  const userIds: string[] = await ids('users');
  const itemIds: string[] = await ids('items');
  const feats: { user: Array<{ name: string; vocab: string[] }>; item: Array<{ name: string; vocab: string[] }> } = json('features');
  if (!Array.isArray(userIds) || userIds.length !== mdl.users) throw new UserError(`${where}: vocab/users.json has ${userIds?.length} ids, the model ${mdl.users} users`);
  if (!Array.isArray(itemIds) || itemIds.length !== mdl.items) throw new UserError(`${where}: vocab/items.json has ${itemIds?.length} ids, the model ${mdl.items} items`);
  const uc = mdl.user;
  const dim = mdl.dim;
  if (towerOutDim(uc) !== dim || towerOutDim(mdl.item) !== dim) throw new UserError(`${where}: tower output sizes disagree with dim ${dim}`);
  if (uc.vocabSize !== mdl.users || mdl.item.vocabSize !== mdl.items) throw new UserError(`${where}: tower vocabulary sizes disagree with the id lists`);
  if (feats.user.length !== uc.features.length || feats.item.length !== mdl.item.features.length) throw new UserError(`${where}: feature vocabularies disagree with the towers`);
  const mkFeat = (tower: 'user' | 'item', n: number) => (f: { name: string; vocab: string[] }, i: number): FeatureVocab => ({
    name: f.name,
    vocab: f.vocab,
    index: new Map(f.vocab.map((v, j) => [v, j])),
    values: get<Int32Array>(names.featValues(tower, i), n, 'i'),
  });
  const userFeatures = feats.user.map(mkFeat('user', mdl.users));
  const itemFeatures = feats.item.map(mkFeat('item', mdl.items));
  const query: QueryTowerWeights = {
    config: uc,
    idTable: get(names.idTable('user'), mdl.users * uc.idDim),
    idMean: get(names.userIdMean, uc.idDim),
    featTables: uc.features.map((f, i) => get(names.featTable('user', i), f.cardinality * f.dim)),
    featValues: userFeatures.map((f) => f.values),
    layers: [],
    outDim: dim,
  };
  query.layers = layersFromConfig(uc, (l) => {
    const inDim = l === 0 ? uc.idDim + uc.features.reduce((s, f) => s + f.dim, 0) : uc.mlp[l - 1];
    return { w: get(names.layerW('user', l), inDim * uc.mlp[l]), b: get(names.layerB('user', l), uc.mlp[l]) };
  });
  const offs = get<Int32Array>(names.seenOffsets, mdl.users + 1, 'i');
  const cols = views.get(names.seenCols) as Int32Array | undefined;
  if (!cols || !(cols instanceof Int32Array)) throw new UserError(`${where}: array '${names.seenCols}' missing`);
  if (offs[mdl.users] !== cols.length) throw new UserError(`${where}: seen lists are inconsistent (${offs[mdl.users]} vs ${cols.length} entries)`);
  for (let i = 0; i < cols.length; i++) if (cols[i] < 0 || cols[i] >= mdl.items) throw new UserError(`${where}: seen list holds item index ${cols[i]} out of range`);
  return {
    id: manifest.id,
    dir,
    manifest,
    userIds,
    itemIds,
    userIndex: await idMap(userIds),
    itemIndex: await idMap(itemIds),
    userFeatures,
    itemFeatures,
    query,
    itemEmb: get(names.itemEmbeddings, mdl.items * dim),
    sequence: mdl.sequence ? seqTowerFromBundle(mdl.sequence, mdl.items, get(names.itemEmbeddings, mdl.items * dim), (n) => views.get(n) as Float32Array | undefined, where) : null,
    itemCounts: get(names.itemCounts, mdl.items),
    seen: { rows: mdl.users, offsets: offs, cols },
    index,
    readFile: readFileFn,
  };
}

/** Typed-array views need 4-byte alignment; small Buffers can come from a shared, unaligned pool. */
function aligned(b: Uint8Array): Uint8Array {
  if (b.byteOffset % 8 === 0) return b;
  const c = new Uint8Array(b.byteLength);
  c.set(b);
  return c;
}

const yieldLoop = () => new Promise((r) => setImmediate(r));

/** Splits newline-joined ids in slices, so a million ids do not stall a serving event loop. */
async function splitLines(s: string): Promise<string[]> {
  const out: string[] = [];
  if (!s.length) return out;
  let from = 0;
  for (;;) {
    const to = s.indexOf('\n', from);
    out.push(to < 0 ? s.slice(from) : s.slice(from, to));
    if (to < 0) return out;
    from = to + 1;
    if ((out.length & 0x3fff) === 0) await yieldLoop();
  }
}

/** id → index, built in slices so a million ids do not stall a serving event loop for seconds. */
async function idMap(ids: string[]): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) {
    m.set(String(ids[i]), i);
    if ((i & 0x3fff) === 0x3fff) await yieldLoop();
  }
  return m;
}
