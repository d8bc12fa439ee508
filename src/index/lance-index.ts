/**
 * LanceDB as the item index, for catalogues that outgrow one process's memory (LanceDB is embedded and
 * reads its tables from local disk or object storage). `writeLanceDir` writes a LanceDB database directory
 * holding the table `items` (item INT32 = the model's item index, id VARCHAR, vector FLOAT32[dim]) with an
 * IVF-PQ index on `vector`, plus `towerlab-lance.json` (what the table was made from and how to search it).
 * Tables too small to train IVF-PQ (fewer than `minIndexRows` rows) are written without an index: LanceDB then
 * searches them exactly (a flat scan).
 *
 * `LanceIndex` searches such a directory. LanceDB's API is asynchronous while every caller of an index in
 * Towerlab searches synchronously (the server's Recommender, the miners, recall measurement), so the queries
 * run in a worker thread (lance-worker.mjs) and the caller blocks until the answer arrives: a blocking call
 * like the HNSW and IVF searches, with one thread hop added. Scores are similarities: LanceDB reports distances
 * 1 − x·y ('dot') and 1 − cos(x, y) ('cosine').
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { resolveDirVersion, writeDirAtomic, writeFileSynced } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import type { Hits, IndexMetric } from './ann-index.ts';

/**
 * LanceDB logs warnings such as "No existing dataset …, it will be created" on every new table to stderr,
 * which would interleave with the CLI's own lines: keep its errors only (read when LanceDB first loads, and
 * inherited by the worker thread). LANCEDB_LOG set by the user wins.
 */
function quietLance(): void {
  process.env.LANCEDB_LOG ??= 'error';
}

export const LANCE_META = 'towerlab-lance.json';
export const LANCE_FORMAT = 'towerlab-lancedb';
export const LANCE_TABLE = 'items';

export interface LanceConfig {
  kind: 'lancedb';
  metric: IndexMetric;
  /** IVF partitions of the IVF-PQ index (0 = no index: exact flat scan). */
  partitions: number;
  /** PQ sub-vectors per vector (bytes per vector in the index, 8-bit codes). */
  subVectors: number;
  /** Partitions scanned per query. */
  nprobe: number;
  /** Candidates re-ranked with the full vectors: refineFactor × k (0 = rank by PQ codes alone). */
  refineFactor: number;
}

export interface LanceMeta {
  format: string;
  version: number;
  created: string;
  model: string;
  table: string;
  items: number;
  dim: number;
  config: LanceConfig;
  /** SHA-256 of the item ids (JSON array, in item-index order): a server checks the table matches its model. */
  itemIdsSha256: string;
  buildSeconds: number;
  recallAt10?: number;
  recallQueries?: number;
}

export const idsSha256 = (ids: string[]) => createHash('sha256').update(JSON.stringify(ids)).digest('hex');

/** Parses `lancedb:DIR` (the CLI's way to name a LanceDB directory); null when `s` names something else. */
export function lanceTarget(s: string | undefined): string | null {
  if (!s?.startsWith('lancedb:')) return null;
  const dir = s.slice('lancedb:'.length);
  if (!dir) throw new UserError(`'${s}': expected lancedb:DIR (a directory)`);
  return dir;
}

/** Default IVF-PQ shape: about √n partitions (LanceDB's rule), 4 dimensions per PQ sub-vector. */
export function defaultLanceConfig(n: number, dim: number, metric: IndexMetric = 'ip', minIndexRows = 5000): LanceConfig {
  const partitions = n < minIndexRows ? 0 : Math.max(1, Math.round(Math.sqrt(n)));
  const subVectors = dim % 4 === 0 ? dim / 4 : dim % 2 === 0 ? dim / 2 : dim;
  return { kind: 'lancedb', metric, partitions, subVectors, nprobe: 20, refineFactor: 10 };
}

export interface LanceWriteInput {
  itemIds: string[];
  /** items × dim, row-major (the vectors the model scores against). */
  vectors: Float32Array;
  dim: number;
  config: LanceConfig;
  /** Where the vectors came from, for the meta file. */
  model: string;
  log?: (m: string) => void;
  /** Measures the written table's recall@10 before it is swapped in (recorded in the meta file). */
  measure?: (index: LanceIndex) => { recall: number; queries: number };
}

/**
 * Writes the LanceDB directory `dir` atomically: the database is built in a temporary sibling, then swapped
 * in as a whole (util/atomic.ts writeDirAtomic), so a reader sees the old table or the new one.
 */
export async function writeLanceDir(dir: string, input: LanceWriteInput): Promise<LanceMeta> {
  const { itemIds, vectors, dim, config } = input;
  const n = itemIds.length;
  if (vectors.length !== n * dim) throw new Error(`writeLanceDir: ${vectors.length} values for ${n}×${dim}`);
  if (config.partitions > 0 && dim % config.subVectors !== 0) throw new UserError(`--lance-sub-vectors: ${config.subVectors} does not divide the dimension ${dim}`);
  const log = input.log ?? (() => {});
  quietLance();
  const lancedb = await import('@lancedb/lancedb');
  // The CommonJS build, which LanceDB itself loads: Arrow checks types with instanceof, and the ESM build is a
  // second copy of every class.
  const arrow = createRequire(import.meta.url)('apache-arrow') as typeof import('apache-arrow');
  mkdirSync(dirname(join(dir, '.')), { recursive: true });
  const staging = join(dirname(join(dir, '.')), `.${basename(join(dir, '.'))}.lance-${process.pid}-${Date.now()}`);
  rmSync(staging, { recursive: true, force: true });
  const t0 = performance.now();
  try {
    const db = await lancedb.connect(staging);
    const batch = 65536;
    let table: Awaited<ReturnType<typeof db.createTable>> | null = null;
    for (let s = 0; s < n || (n === 0 && !table); s += batch) {
      const e = Math.min(n, s + batch);
      const m = e - s;
      const child = arrow.makeData({ type: new arrow.Float32(), length: m * dim, data: vectors.subarray(s * dim, e * dim) });
      const vec = arrow.makeVector(arrow.makeData({ type: new arrow.FixedSizeList(dim, new arrow.Field('item', new arrow.Float32(), true)), length: m, nullCount: 0, child }));
      const t = new arrow.Table({
        item: arrow.makeVector(Int32Array.from({ length: m }, (_, i) => s + i)),
        id: arrow.vectorFromArray(itemIds.slice(s, e), new arrow.Utf8()),
        vector: vec,
      });
      if (!table) table = await db.createTable(LANCE_TABLE, t as any, { mode: 'overwrite' });
      else await table.add(t as any);
      if (n === 0) break;
    }
    if (config.partitions > 0) {
      log(`building the LanceDB IVF-PQ index (${config.partitions} partitions, ${config.subVectors} sub-vectors) over ${n} items`);
      await table!.createIndex('vector', {
        config: lancedb.Index.ivfPq({ distanceType: config.metric === 'cos' ? 'cosine' : 'dot', numPartitions: config.partitions, numSubVectors: config.subVectors }),
        replace: true,
      });
    }
    table!.close();
    db.close();
    const meta: LanceMeta = {
      format: LANCE_FORMAT,
      version: 1,
      created: new Date().toISOString(),
      model: input.model,
      table: LANCE_TABLE,
      items: n,
      dim,
      config,
      itemIdsSha256: idsSha256(itemIds),
      buildSeconds: (performance.now() - t0) / 1000,
    };
    if (input.measure) {
      writeFileSynced(join(staging, LANCE_META), JSON.stringify(meta));
      const ix = LanceIndex.open(staging);
      try {
        const r = input.measure(ix);
        meta.recallAt10 = r.recall;
        meta.recallQueries = r.queries;
      } finally {
        ix.close();
      }
    }
    writeDirAtomic(dir, (tmp) => {
      for (const e of readdirSync(staging)) if (e !== LANCE_META) renameSync(join(staging, e), join(tmp, e));
      writeFileSynced(join(tmp, LANCE_META), JSON.stringify(meta, null, 1));
    });
    return meta;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The meta file of a LanceDB directory, checked for shape. */
export function readLanceMeta(dir: string): LanceMeta {
  const p = join(dir, LANCE_META);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`${dir}: no such LanceDB directory`);
  if (!existsSync(p)) throw new UserError(`${dir}: not a Towerlab LanceDB directory (no ${LANCE_META}; write one with 'towerlab export --to lancedb:${dir}')`);
  let meta: LanceMeta;
  try {
    meta = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new UserError(`${p}: corrupted: ${(e as Error).message}`);
  }
  if (meta?.format !== LANCE_FORMAT) throw new UserError(`${p}: format is '${meta?.format}', expected '${LANCE_FORMAT}'`);
  if (!(meta.version <= 1)) throw new UserError(`${p}: version ${meta.version} is newer than this Towerlab reads (1)`);
  const c = meta.config;
  if (!c || c.kind !== 'lancedb' || !Number.isInteger(meta.items) || !Number.isInteger(meta.dim) || meta.dim < 1) throw new UserError(`${p}: missing or invalid 'items', 'dim' or 'config'`);
  return meta;
}

export interface LanceOpenOptions {
  /** The model's item ids: the table must hold exactly these (checked by hash and row count). */
  itemIds?: string[];
  dim?: number;
  /** Overrides the stored partitions scanned per query. */
  nprobe?: number;
  refineFactor?: number;
  /** Milliseconds one call may take before it is treated as hung. */
  timeoutMs?: number;
}

export class LanceIndex {
  readonly size: number;
  readonly dim: number;
  readonly config: LanceConfig;
  private readonly flag: Int32Array;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    private readonly port: MessagePort,
    control: SharedArrayBuffer,
    readonly meta: LanceMeta,
    readonly dir: string,
    config: LanceConfig,
    private readonly timeoutMs: number,
  ) {
    this.flag = new Int32Array(control);
    this.size = meta.items;
    this.dim = meta.dim;
    this.config = config;
  }

  /** Opens `dir` (written by writeLanceDir), checking it against the model when `opts` says what to expect. */
  static open(dir: string, opts: LanceOpenOptions = {}): LanceIndex {
    const meta = readLanceMeta(dir);
    if (opts.dim !== undefined && meta.dim !== opts.dim) throw new UserError(`${dir}: the LanceDB table has ${meta.dim}-dimensional vectors, the model ${opts.dim}`);
    if (opts.itemIds) {
      if (meta.items !== opts.itemIds.length) throw new UserError(`${dir}: the LanceDB table holds ${meta.items} items, the model ${opts.itemIds.length}`);
      if (meta.itemIdsSha256 !== idsSha256(opts.itemIds)) throw new UserError(`${dir}: the LanceDB table's item ids differ from the model's (made from another model: ${meta.model})`);
    }
    quietLance();
    const real = resolveDirVersion(dir); // one version of the directory, even if it is rewritten meanwhile
    const control = new SharedArrayBuffer(4);
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./lance-worker.mjs', import.meta.url), { workerData: { port: port2, control, uri: real, tableName: meta.table }, transferList: [port2] });
    worker.unref();
    const config: LanceConfig = { ...meta.config, nprobe: opts.nprobe ?? meta.config.nprobe, refineFactor: opts.refineFactor ?? meta.config.refineFactor };
    const ix = new LanceIndex(worker, port1, control, meta, dir, config, opts.timeoutMs ?? 120_000);
    try {
      const info = ix.call({ op: 'open' }) as { rows: number; dim: number | null; cols: string[] };
      for (const c of ['item', 'vector']) if (!info.cols.includes(c)) throw new UserError(`${dir}: the LanceDB table '${meta.table}' has no '${c}' column`);
      if (info.rows !== meta.items) throw new UserError(`${dir}: the LanceDB table holds ${info.rows} rows, ${LANCE_META} says ${meta.items}`);
      if (info.dim !== meta.dim) throw new UserError(`${dir}: the LanceDB table's vectors have ${info.dim} dimensions, ${LANCE_META} says ${meta.dim}`);
    } catch (e) {
      ix.close();
      throw e;
    }
    return ix;
  }

  /** The same table searched with other settings (a new worker). */
  with(opts: { nprobe?: number; refineFactor?: number }): LanceIndex {
    return LanceIndex.open(this.dir, { nprobe: opts.nprobe ?? this.config.nprobe, refineFactor: opts.refineFactor ?? this.config.refineFactor, timeoutMs: this.timeoutMs });
  }

  private call(msg: unknown): any {
    if (this.closed) throw new Error('LanceIndex: closed');
    Atomics.store(this.flag, 0, 0);
    this.port.postMessage(msg);
    const r = Atomics.wait(this.flag, 0, 0, this.timeoutMs);
    if (r === 'timed-out') throw new UserError(`${this.dir}: LanceDB did not answer within ${this.timeoutMs} ms`);
    const got = receiveMessageOnPort(this.port);
    if (!got) throw new Error('LanceIndex: woken without a reply');
    const m = got.message;
    if (m?.error) throw new UserError(`${this.dir}: LanceDB: ${m.error}`);
    return m;
  }

  /** The k nearest items to q (best first). Blocks the calling thread until LanceDB answers. */
  search(q: Float32Array, k: number): Hits {
    const kk = Math.min(k, this.size);
    if (kk <= 0) return { ids: new Int32Array(0), scores: new Float32Array(0) };
    const c = this.config;
    const r = this.call({ op: 'search', q: Float32Array.from(q), k: kk, metric: c.metric, nprobe: c.partitions > 0 ? c.nprobe : 0, refineFactor: c.partitions > 0 ? c.refineFactor : 0 }) as { ids: Int32Array; dist: Float32Array };
    const scores = new Float32Array(r.dist.length);
    for (let i = 0; i < scores.length; i++) scores[i] = 1 - r.dist[i];
    return { ids: r.ids, scores };
  }

  /** Bytes of the directory on disk (the table, its index and the meta file). */
  diskBytes(): number {
    return dirBytes(resolveDirVersion(this.dir));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.close();
    void this.worker.terminate();
  }
}

function dirBytes(p: string): number {
  const st = statSync(p);
  if (!st.isDirectory()) return st.size;
  return readdirSync(p).reduce((s, e) => s + dirBytes(join(p, e)), 0);
}
