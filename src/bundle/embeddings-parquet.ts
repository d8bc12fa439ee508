/**
 * A trained model's embeddings as one Parquet file, for other tools (pandas, Polars, Spark, a vector
 * database's bulk loader): one row per user and per item,
 *
 *   side VARCHAR ('user' | 'item'), index INTEGER (row in the model's vocabulary), id VARCHAR, vector FLOAT[dim]
 *
 * Items are the vectors the server scores against (L2-normalised tower outputs; a sequence model's scoring
 * table). Users are the query vectors the server uses for a known user: the user tower's output, or for a
 * sequence model the tower's output after the user's whole stored sequence (its "last state").
 * One file with a `side` column rather than two, so the pair can never be separated or mismatched.
 *
 * DuckDB writes it (COPY … TO … (FORMAT parquet)). The vectors go into DuckDB as whole data chunks whose float
 * memory is filled straight from the Float32Array (no per-value conversion: a million 64-d items would
 * otherwise be 64M calls), so the values in the file are bit-for-bit the model's. The write is atomic: a
 * temporary sibling, fsynced, renamed over the target.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import bindings from '@duckdb/node-bindings';
import { ARRAY, DuckDBDataChunk, DuckDBInstance, FLOAT, INTEGER, VARCHAR } from '@duckdb/node-api';
import type { Backend } from '../compute/backend.ts';
import { getBackend } from '../compute/index.ts';
import { withDuck } from '../data/duck.ts';
import { openModel } from '../model/open.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import { fsyncDir } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';
import type { SeqBundlePart } from './seq.ts';

export interface ModelEmbeddings {
  dim: number;
  userIds: string[];
  /** users × dim, row-major. */
  users: Float32Array;
  itemIds: string[];
  /** items × dim, row-major. */
  items: Float32Array;
}

/**
 * The user (query) and item embeddings of an opened model (`openModel`): two-tower or sequence model.
 * Users are embedded in blocks so the tower's scratch stays small.
 */
export function modelEmbeddings(backend: Backend, a: ModelArtifacts & { sequence?: SeqBundlePart }): ModelEmbeddings {
  const m = a.model;
  const dim = m.dim;
  const nu = a.userIds.length;
  const users = new Float32Array(nu * dim);
  if (a.sequence) {
    a.sequence.fillUsers(backend, users);
    normaliseRows(users, nu, dim); // the server normalises history queries the same way
  } else {
    const block = 4096;
    for (let s = 0; s < nu; s += block) {
      const e = Math.min(nu, s + block);
      m.user.embed(backend, Int32Array.from({ length: e - s }, (_, i) => s + i), users.subarray(s * dim, e * dim));
    }
  }
  const items = a.sequence ? a.sequence.itemEmbeddings(backend) : m.embedAllItems(backend);
  return { dim, userIds: a.userIds, users, itemIds: a.itemIds, items };
}

function normaliseRows(x: Float32Array, n: number, dim: number): void {
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let t = 0; t < dim; t++) s += x[r * dim + t] * x[r * dim + t];
    const inv = 1 / (Math.sqrt(s) || 1);
    for (let t = 0; t < dim; t++) x[r * dim + t] *= inv;
  }
}

const CHUNK = 2048; // DuckDB's vector size: one data chunk holds at most this many rows
const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

export interface ParquetWriteResult {
  path: string;
  users: number;
  items: number;
  dim: number;
  bytes: number;
}

/** Writes `e` to `path` (.parquet) atomically. `sides` limits the file to users or items. */
export async function writeEmbeddingsParquet(path: string, e: ModelEmbeddings, sides: Array<'user' | 'item'> = ['user', 'item']): Promise<ParquetWriteResult> {
  if (!path.endsWith('.parquet')) throw new UserError(`--embeddings: '${path}' must end in .parquet`);
  const { dim } = e;
  if (e.users.length !== e.userIds.length * dim || e.items.length !== e.itemIds.length * dim) throw new Error('writeEmbeddingsParquet: id and vector counts disagree');
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (err) {
    throw new UserError(`${path}: cannot create its directory: ${(err as Error).message}`);
  }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const types = [INTEGER, VARCHAR, ARRAY(FLOAT, dim)];
    const put = async (table: string, ids: string[], vecs: Float32Array) => {
      await conn.run(`CREATE TABLE ${table} ("index" INTEGER, id VARCHAR, vector FLOAT[${dim}])`);
      const appender = await conn.createAppender(table);
      for (let s = 0; s < ids.length; s += CHUNK) {
        const n = Math.min(CHUNK, ids.length - s);
        const chunk = DuckDBDataChunk.create(types, n);
        const c = chunk.chunk;
        copyInto(bindings.data_chunk_get_vector(c, 0), Int32Array.from({ length: n }, (_, i) => s + i));
        const idVec = bindings.data_chunk_get_vector(c, 1);
        for (let i = 0; i < n; i++) bindings.vector_assign_string_element(idVec, i, ids[s + i]);
        copyInto(bindings.array_vector_get_child(bindings.data_chunk_get_vector(c, 2)), vecs.subarray(s * dim, (s + n) * dim));
        bindings.data_chunk_set_size(c, n);
        appender.appendDataChunk(chunk);
      }
      appender.flushSync();
      appender.closeSync();
    };
    const parts: string[] = [];
    if (sides.includes('user')) {
      await put('u', e.userIds, e.users);
      parts.push(`SELECT 'user' AS side, * FROM u`);
    }
    if (sides.includes('item')) {
      await put('i', e.itemIds, e.items);
      parts.push(`SELECT 'item' AS side, * FROM i`);
    }
    await conn.run(`COPY (${parts.join(' UNION ALL ')}) TO ${q(tmp)} (FORMAT parquet)`);
    const fd = openSync(tmp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    fsyncDir(dirname(path));
  } catch (err) {
    rmSync(tmp, { force: true });
    const m = (err as Error).message;
    if (/IO Error|Permission|No such file|Cannot open/i.test(m)) throw new UserError(`${path}: cannot write: ${m.split('\n')[0]}`);
    throw err;
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
  return { path, users: sides.includes('user') ? e.userIds.length : 0, items: sides.includes('item') ? e.itemIds.length : 0, dim, bytes: statSync(path).size };
}

/** Copies typed values into a DuckDB vector's memory in one call. */
function copyInto(vec: ReturnType<typeof bindings.data_chunk_get_vector>, src: Float32Array | Int32Array): void {
  bindings.copy_data_to_vector(vec, 0, src.buffer as ArrayBuffer, src.byteOffset, src.byteLength);
}

/**
 * The library's one-call form of `towerlab export --embeddings`: opens a saved model directory (two-tower or
 * sequence model; or takes opened artifacts) and writes its user and item embeddings to `path`.
 */
export async function exportEmbeddings(model: string | (ModelArtifacts & { sequence?: SeqBundlePart }), path: string, opts: { backend?: Backend } = {}): Promise<ParquetWriteResult> {
  const a = typeof model === 'string' ? openModel(model) : model;
  const backend = opts.backend ?? (await getBackend());
  return writeEmbeddingsParquet(path, modelEmbeddings(backend, a));
}

/** Reads a file written by `writeEmbeddingsParquet` back (what the file says, checked for shape). */
export async function readEmbeddingsParquet(path: string): Promise<ModelEmbeddings> {
  return withDuck(async (duck) => {
    const src = `read_parquet(${q(path)})`;
    let dim: number;
    try {
      dim = Number(await duck.scalar(`SELECT max(len(vector)) FROM ${src}`));
    } catch (err) {
      throw new UserError(`${path}: not a readable embeddings Parquet file: ${(err as Error).message.split('\n')[0]}`);
    }
    const side = async (s: 'user' | 'item') => {
      const [ids] = await duck.stringColumns(`SELECT id FROM ${src} WHERE side = ${q(s)} ORDER BY "index"`);
      const n = ids.length;
      const bad = await duck.scalar(`SELECT count(*) FROM ${src} WHERE side = ${q(s)} AND (len(vector) <> ${dim} OR "index" < 0 OR "index" >= ${n})`);
      if (Number(bad)) throw new UserError(`${path}: ${bad} ${s} rows with a vector length other than ${dim} or an index outside 0..${n - 1}`);
      const [vecs] = await duck.numericColumns(
        `SELECT ("index" * ${dim} + i - 1)::INTEGER, v::FLOAT FROM (SELECT "index", unnest(vector) AS v, generate_subscripts(vector, 1) AS i FROM ${src} WHERE side = ${q(s)})`,
        n * dim,
        ['f32'],
        true,
      );
      return { ids: ids.map(String), vecs: vecs as Float32Array };
    };
    const u = await side('user');
    const it = await side('item');
    return { dim, userIds: u.ids, users: u.vecs, itemIds: it.ids, items: it.vecs };
  });
}
