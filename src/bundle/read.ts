/**
 * Loads a serving bundle and refuses anything it cannot vouch for: unknown format, a newer version, a file
 * missing or of the wrong size, a checksum mismatch, shapes that disagree with the model: each reported in
 * one line naming the file and the problem. Files are read and hashed in a worker thread and the rest is
 * built in slices, so a server that hot-reloads keeps answering while the next bundle is checked.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { containedFile, manifestPathProblem } from '../util/contained.mjs';
import type { Csr } from '../data/csr.ts';
import { AnnIndex } from '../index/ann-index.ts';
import { IvfIndex } from '../index/ivf-index.ts';
import type { VectorIndex } from '../index/vector-index.ts';
import { resolveDirVersion } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import { BUNDLE_FORMAT, BUNDLE_MANIFEST, BUNDLE_VERSION, SIGNATURE_FILE, bundleContentId, manifestSchema, names, type BundleManifest } from './format.ts';
import { layersFromConfig, towerInDim, towerOutDim, type QueryTowerWeights } from './query-tower.ts';
import type { BundleDraft } from './write.ts';
import { seqTowerFromBundle } from './seq.ts';
import { CHUNK_DOC, textServing, type TextServing } from './text.ts';
import type { SeqTower } from '../seq/tower.ts';
import { checkItemNames } from '../data/item-names.ts';

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
  /** Display names of the items (null entries: no name), when the bundle carries them. */
  itemNames: (string | null)[] | null;
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
  /** Text dual encoders (see text.ts): the query tower and chunk → document; the items are chunks. Else null. */
  text: TextServing | null;
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
  /** When given, the bundle must carry a valid HMAC-SHA-256 signature of its manifest under this key. */
  verifyKey?: Buffer;
}

export async function readBundle(dir: string, opts: ReadOptions = {}): Promise<Bundle> {
  const attempts = opts.attempts ?? 3;
  for (let i = 1; ; i++) {
    let before: string | null = null;
    try {
      before = await manifestText(dir);
      // Every file from one version of the directory, even if a writer swaps in the next one meanwhile.
      const real = resolveDirVersion(dir);
      const text = await manifestText(real, dir);
      if (opts.verifyKey) await checkSignature(real, dir, text, opts.verifyKey);
      return await readOnce(real, dir, text, opts);
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

/** The manifest's text; `shown` is the directory as the user named it (`dir` may be its resolved version). */
async function manifestText(dir: string, shown = dir): Promise<string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${shown}: no such bundle directory`);
  const p = join(dir, BUNDLE_MANIFEST);
  if (!existsSync(p)) {
    const hint = existsSync(join(dir, 'model', BUNDLE_MANIFEST)) ? ` (a run directory? its bundle is made by 'towerlab export --model ${shown}')` : '';
    throw new UserError(`${shown}: not a bundle (no ${BUNDLE_MANIFEST})${hint}`);
  }
  if (!lstatSync(p).isFile()) throw new UserError(`${join(shown, BUNDLE_MANIFEST)}: not a regular file`);
  return readFile(p, 'utf8');
}

/** Refuses a bundle whose manifest is unsigned or signed with another key (constant-time comparison). */
async function checkSignature(real: string, dir: string, text: string, key: Buffer): Promise<void> {
  const shown = join(dir, SIGNATURE_FILE);
  const c = containedFile(real, SIGNATURE_FILE);
  if ('problem' in c) throw new UserError(c.missing ? `${dir}: bundle is not signed (no ${SIGNATURE_FILE}) and --verify-key was given` : `${shown}: ${c.problem}`);
  const sig = (await readFile(c.path, 'latin1')).trim();
  const m = /^hmac-sha256:([0-9a-f]{64})$/.exec(sig);
  const want = createHmac('sha256', key).update(Buffer.from(text, 'utf8')).digest();
  // Compare hashes of both sides: equal lengths whatever the file holds, and no early exit on a prefix.
  const got = createHash('sha256').update(m ? Buffer.from(m[1], 'hex') : Buffer.from(sig)).digest();
  if (!m || !timingSafeEqual(got, createHash('sha256').update(want).digest())) {
    throw new UserError(`${shown}: signature does not match the manifest under the --verify-key key (tampered, or signed with another key)`);
  }
}

/** JSON.parse whose error names the position only: V8's message quotes the text, which may be a secret file. */
function parseJson(text: string, where: string, what: string): any {
  try {
    return JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new UserError(`${where}: ${what} (not valid JSON${pos ? ` at position ${pos}` : ''})`);
  }
}

export function parseManifest(text: string, where: string): BundleManifest {
  const raw = parseJson(text, where, 'corrupted manifest');
  if (raw?.format === 'towerlab-model') throw new UserError(`${where}: this is a model directory, not a bundle: make one with 'towerlab export'`);
  if (raw?.format !== BUNDLE_FORMAT) throw new UserError(`${where}: format is '${raw?.format}', expected '${BUNDLE_FORMAT}'`);
  if (typeof raw.version !== 'number') throw new UserError(`${where}: no format version`);
  if (raw.version > BUNDLE_VERSION) throw new UserError(`${where}: bundle format version ${raw.version} is newer than this Towerlab reads (${BUNDLE_VERSION}); upgrade Towerlab`);
  if (raw.version < BUNDLE_VERSION) throw new UserError(`${where}: bundle format version ${raw.version} has an id that does not cover its layout; re-export it with 'towerlab export'`);
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const iss = r.error.issues[0];
    throw new UserError(`${where}: field '${iss.path.join('.')}': ${iss.message}`);
  }
  const m = r.data;
  checkLayout(m, where);
  // The id is recomputed from the raw manifest (zod drops unknown keys): it must be the content's.
  const id = bundleContentId(raw);
  if (m.id !== id) throw new UserError(`${where}: bundle id '${m.id.slice(0, 40)}' does not match its content (${id}): the manifest was edited or the bundle assembled from parts`);
  return m;
}

/**
 * What the manifest declares must hang together before any file is read: every path stays inside the
 * bundle and is listed under `files`, vocabularies carry the listed checksum, and the arrays of each file
 * tile it exactly (back to back in manifest order, no gap, no overlap, nothing past its end).
 */
function checkLayout(m: BundleManifest, where: string): void {
  const path = (field: string, p: string) => {
    const bad = manifestPathProblem(p);
    if (bad) throw new UserError(`${where}: field '${field}': ${bad}`);
    if (p === BUNDLE_MANIFEST || p === SIGNATURE_FILE) throw new UserError(`${where}: field '${field}': '${p}' cannot be a data file`);
  };
  const listed = (field: string, p: string) => {
    path(field, p);
    if (!Object.hasOwn(m.files, p)) throw new UserError(`${where}: field '${field}': '${p}' is not listed under 'files'`);
  };
  for (const f of Object.keys(m.files)) path(`files.${f.slice(0, 80)}`, f);
  for (const [k, v] of Object.entries(m.vocabularies)) {
    listed(`vocabularies.${k}.file`, v.file);
    if (m.files[v.file].sha256 !== v.sha256) throw new UserError(`${where}: field 'vocabularies.${k}.sha256' disagrees with the checksum under 'files'`);
  }
  if (m.index) listed('index.file', m.index.file);
  const used = new Map<string, number>();
  m.arrays.forEach((a, i) => {
    listed(`arrays.${i}.file`, a.file);
    const count = a.shape.reduce((s, x) => s * x, 1);
    if (!Number.isSafeInteger(count) || count > 2 ** 31 - 1) throw new UserError(`${where}: field 'arrays.${i}.shape': [${a.shape.slice(0, 8)}] is too large`);
    used.set(a.file, (used.get(a.file) ?? 0) + count * 4);
  });
  for (const [file, bytes] of used) {
    if (bytes !== m.files[file].bytes) throw new UserError(`${where}: the arrays declared in '${file}' take ${bytes} bytes, the file has ${m.files[file].bytes}`);
  }
  const names = new Set<string>();
  m.arrays.forEach((a, i) => {
    if (names.has(a.name)) throw new UserError(`${where}: field 'arrays.${i}.name': '${a.name.slice(0, 80)}' declared twice`);
    names.add(a.name);
  });
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
  const priv = await privateDir();
  let index: VectorIndex | null = null;
  let contents: Map<string, Uint8Array>;
  let idLists: Map<string, string>;
  const mi = manifest.index;
  try {
    const copy = join(priv, 'items.usearch');
    const hnsw = mi && mi.kind !== 'ivf' ? { dim: manifest.model.dim, count: manifest.model.items, metric: mi.metric, connectivity: mi.connectivity } : null;
    ({ contents, idLists } = await verifyInWorker(real, dir, files, copy, hnsw, priv));
    if (mi?.kind === 'ivf') {
      const b = contents.get(mi.file)!;
      index = IvfIndex.fromBytes(b, join(dir, mi.file), { dim: manifest.model.dim, items: manifest.model.items, nprobe: opts.nprobe ?? mi.nprobe });
    } else if (mi) {
      const ix = { ...mi, expansionSearch: opts.expansionSearch ?? mi.expansionSearch };
      index = AnnIndex.view(copy, manifest.model.dim, ix, manifest.model.items, join(dir, mi.file), true);
    }
  } finally {
    // The mapping keeps the unlinked file alive until the index is released.
    await rm(priv, { recursive: true, force: true });
    livePrivate.delete(priv);
  }
  return assemble(manifest, dir, index, (file) => {
    const b = contents.get(file);
    if (!b) throw new UserError(`${mpath}: '${file}' is used but not listed under 'files'`);
    return b;
  }, async (file) => {
    if (!Object.hasOwn(manifest.files, file)) throw new UserError(`${file}: not a file of this bundle`);
    // Verified bytes kept in memory; anything else is re-read from this version and checked again (inside
    // the bundle, a regular file, the listed size and checksum), never trusted because it was fine at load.
    const kept = contents.get(file);
    if (kept) return kept;
    const want = manifest.files[file];
    const c = containedFile(real, file);
    if ('problem' in c) throw new UserError(`${join(dir, file)}: ${c.problem}`);
    const b = await readFile(c.path);
    if (b.length !== want.bytes || createHash('sha256').update(b).digest('hex') !== want.sha256) throw mismatch(join(dir, file), want.sha256, createHash('sha256').update(b).digest('hex'));
    return b;
  }, idLists);
}

const PRIVATE_PREFIX = 'towerlab-serve-index-';
const livePrivate = new Set<string>();
let exitHook = false;

/**
 * A private directory for the index copy, named after this process. Removed after loading on every path
 * that returns or throws, at process exit, and — for a process that died by a signal — by the next load
 * of any Towerlab server, which sweeps the directories of processes no longer running.
 */
async function privateDir(): Promise<string> {
  sweepPrivate();
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => livePrivate.forEach((d) => rmSync(d, { recursive: true, force: true })));
  }
  const d = await mkdtemp(join(tmpdir(), `${PRIVATE_PREFIX}${process.pid}-`));
  livePrivate.add(d);
  return d;
}

function sweepPrivate(): void {
  let entries: string[];
  try {
    entries = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const e of entries) {
    const m = new RegExp(`^${PRIVATE_PREFIX}(\\d+)-`).exec(e);
    if (!m || Number(m[1]) === process.pid || isRunning(Number(m[1]))) continue;
    rmSync(join(tmpdir(), e), { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
function verifyInWorker(
  real: string,
  shownDir: string,
  files: VerifyFile[],
  indexCopy: string,
  hnsw: { dim: number; count: number; metric: 'ip' | 'cos'; connectivity: number } | null,
  priv: string,
): Promise<{ contents: Map<string, Uint8Array>; idLists: Map<string, string> }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./verify-worker.mjs', import.meta.url), { workerData: { real, shownDir, files, indexCopy, hnsw } });
    let answered = false;
    w.once('message', (m: { buffers?: Record<string, ArrayBuffer>; ids?: Record<string, string>; error?: string; user?: boolean }) => {
      answered = true;
      // Messages name the user's paths: never the private copy's, nor the resolved version directory.
      const msg = m.error?.split(priv).join('<index copy>').split(real).join(shownDir);
      if (msg !== undefined) reject(m.user ? new UserError(msg) : new Error(msg));
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
    return parseJson(Buffer.from(bytes(v.file)).toString('utf8'), dir ? join(dir, v.file) : v.file, 'unreadable vocabulary');
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
  const featList = (l: unknown) => Array.isArray(l) && l.every((f) => typeof f?.name === 'string' && Array.isArray(f.vocab) && f.vocab.every((v: unknown) => typeof v === 'string'));
  if (!featList(feats?.user) || !featList(feats?.item)) throw new UserError(`${where}: vocab/features.json: expected {user, item} lists of {name, vocab: [strings]}`);
  if (feats.user.length !== uc.features.length || feats.item.length !== mdl.item.features.length) throw new UserError(`${where}: feature vocabularies disagree with the towers`);
  const mkFeat = (tower: 'user' | 'item', n: number) => (f: { name: string; vocab: string[] }, i: number): FeatureVocab => {
    const values = get<Int32Array>(names.featValues(tower, i), n, 'i');
    // A value indexes the feature's embedding table and its vocabulary: both bounds hold for every row.
    const card = Math.min((tower === 'user' ? uc : mdl.item).features[i].cardinality, f.vocab.length);
    for (let r = 0; r < values.length; r++) {
      if (!(values[r] >= 0 && values[r] < card)) throw new UserError(`${where}: ${tower} feature '${f.name}' of row ${r} has value index ${values[r]}, outside its vocabulary of ${card}`);
    }
    return { name: f.name, vocab: f.vocab, index: new Map(f.vocab.map((v, j) => [v, j])), values };
  };
  const userFeatures = feats.user.map(mkFeat('user', mdl.users));
  const itemFeatures = feats.item.map(mkFeat('item', mdl.items));
  const query: QueryTowerWeights = {
    config: uc,
    idTable: get(names.idTable('user'), mdl.users * uc.idDim),
    idMean: get(names.userIdMean, uc.idDim),
    featTables: uc.features.map((f, i) => get(names.featTable('user', i), f.cardinality * f.dim)),
    featValues: userFeatures.map((f) => f.values),
    dense: (uc.dense ?? []).map((f, k) => ({
      name: f.name,
      width: f.width,
      dim: f.dim,
      w: get(names.denseW('user', k), f.width * f.dim),
      b: get(names.denseB('user', k), f.dim),
      values: get(names.denseValues('user', k), mdl.users * f.width),
    })),
    layers: [],
    outDim: dim,
  };
  // Stored dense values feed every `user` query: a crafted NaN or infinity would poison its scores silently.
  for (const f of query.dense ?? []) {
    for (let i = 0; i < f.values.length; i++) {
      if (!Number.isFinite(f.values[i])) throw new UserError(`${where}: user dense feature '${f.name}' of row ${Math.floor(i / f.width)} holds ${f.values[i]}, not a finite number`);
    }
  }
  query.layers = layersFromConfig(uc, (l) => {
    const inDim = l === 0 ? towerInDim(uc) : uc.mlp[l - 1];
    return { w: get(names.layerW('user', l), inDim * uc.mlp[l]), b: get(names.layerB('user', l), uc.mlp[l]) };
  });
  const offs = get<Int32Array>(names.seenOffsets, mdl.users + 1, 'i');
  const cols = views.get(names.seenCols) as Int32Array | undefined;
  if (!cols || !(cols instanceof Int32Array)) throw new UserError(`${where}: array '${names.seenCols}' missing`);
  if (offs[0] !== 0 || offs[mdl.users] !== cols.length) throw new UserError(`${where}: seen lists are inconsistent (${offs[mdl.users]} vs ${cols.length} entries)`);
  // Monotone offsets: a crafted one would make a request walk billions of entries (or none).
  for (let u = 0; u < mdl.users; u++) if (!(offs[u + 1] >= offs[u])) throw new UserError(`${where}: seen list offsets decrease at user ${u}`);
  for (let i = 0; i < cols.length; i++) if (cols[i] < 0 || cols[i] >= mdl.items) throw new UserError(`${where}: seen list holds item index ${cols[i]} out of range`);
  return {
    id: manifest.id,
    dir,
    manifest,
    userIds,
    itemIds,
    itemNames: manifest.vocabularies.itemNames ? checkItemNames(`${where}: vocab/item-names.json`, json('itemNames'), mdl.items) : null,
    userIndex: await idMap(userIds, `${where}: user ids`),
    itemIndex: await idMap(itemIds, `${where}: item ids`),
    userFeatures,
    itemFeatures,
    query,
    itemEmb: get(names.itemEmbeddings, mdl.items * dim),
    sequence: mdl.sequence ? seqTowerFromBundle(mdl.sequence, mdl.items, get(names.itemEmbeddings, mdl.items * dim), (n) => views.get(n) as Float32Array | undefined, where) : null,
    text: mdl.text
      ? textServing(mdl.text, get<Int32Array>(CHUNK_DOC, mdl.text.chunks, 'i'), json('documents'), (n) => {
          const v = views.get(n);
          return v instanceof Float32Array ? v : undefined;
        }, where)
      : null,
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
async function idMap(ids: string[], what: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for (let i = 0; i < ids.length; i++) {
    const id = String(ids[i]);
    if (m.has(id)) throw new UserError(`${what}: id at position ${i} repeats an earlier one`);
    m.set(id, i);
    if ((i & 0x3fff) === 0x3fff) await yieldLoop();
  }
  return m;
}
