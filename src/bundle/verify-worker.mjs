// Reads and verifies a bundle's files off the serving thread (see read.ts): sizes and SHA-256 of every file,
// the kept ones returned as transferred ArrayBuffers, the index written to a private path and checked there
// (its graph structure too, hnsw-check.mjs, before native code maps it).
// Hashing ~1 GB and the garbage of its read buffers would otherwise stall the event loop (and its garbage
// collector) of a server answering requests during a hot reload.
// Every path comes from the manifest, so each is checked to stay inside the bundle (contained.mjs) and opened
// without following a final symbolic link. No message quotes a file's contents.
// Plain JavaScript on purpose: a worker thread does not inherit the tsx loader the CLI registers.
import { createHash } from 'node:crypto';
import { closeSync, constants, createReadStream, fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { containedFile } from '../util/contained.mjs';
import { usearchProblem } from '../index/hnsw-check.mjs';

/** A problem with the bundle: reported to the caller as a UserError, one line. */
class Bad extends Error {}

const missing = (shown) => new Bad(`${shown}: missing from the bundle`);
const mismatch = (shown, want, got) =>
  new Bad(`${shown}: checksum mismatch (expected ${want.slice(0, 12)}…, got ${got.slice(0, 12)}…): the file is corrupted or was replaced`);

/** Opens a manifest-named file inside `real` (no `..`, no absolute path, no link), checking its size. */
function openChecked(real, file, shown, want) {
  const c = containedFile(real, file);
  if ('problem' in c) throw c.missing ? missing(shown) : new Bad(`${shown}: ${c.problem}`);
  let fd;
  try {
    fd = openSync(c.path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (e) {
    if (e.code === 'ENOENT') throw missing(shown);
    if (e.code === 'ELOOP') throw new Bad(`${shown}: a symbolic link (bundle files must be regular files inside the bundle)`);
    throw e;
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw missing(shown);
  }
  if (st.size !== want) {
    closeSync(fd);
    throw new Bad(`${shown}: ${st.size} bytes, the manifest says ${want} (truncated or replaced)`);
  }
  return fd;
}

/** @param {number} fd */
async function hashFd(fd) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(null, { fd, highWaterMark: 4 << 20, autoClose: true })) h.update(chunk);
  return h.digest('hex');
}

function readFd(fd) {
  try {
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The ids of a JSON array of strings joined by newlines; null when it is not that (the caller parses it). */
function joinIds(bytes, shown) {
  let list;
  try {
    list = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Bad(`${shown}: unreadable vocabulary (not valid JSON)`);
  }
  if (!Array.isArray(list)) return null;
  for (const x of list) if (typeof x !== 'string' || x === '' || x.includes('\n')) return null;
  return list.join('\n');
}

/**
 * workerData: { real, shownDir, files: [{ file, bytes, sha256, mode: 'keep' | 'check' | 'index' | 'ids' }], indexCopy,
 *               hnsw: { dim, count, metric, connectivity } | null }
 * Answers { buffers: { file: ArrayBuffer }, ids: { file: joined string } } or { error, user: boolean }.
 */
async function run({ real, shownDir, files, indexCopy, hnsw }) {
  const buffers = {};
  const ids = {};
  const transfer = [];
  for (const f of files) {
    const shown = join(shownDir, f.file);
    const fd = openChecked(real, f.file, shown, f.bytes);
    if (f.mode === 'check') {
      const sha = await hashFd(fd);
      if (sha !== f.sha256) throw mismatch(shown, f.sha256, sha);
      continue;
    }
    const b = readFd(fd);
    const sha = createHash('sha256').update(b).digest('hex');
    if (sha !== f.sha256) throw mismatch(shown, f.sha256, sha);
    if (f.mode === 'index') {
      // The graph is checked before anything native sees it, then the checked bytes are what gets mapped.
      const problem = hnsw ? usearchProblem(b, hnsw) : null;
      if (problem) throw new Bad(`${shown}: not a valid HNSW index: ${problem}`);
      writeFileSync(indexCopy, b, { mode: 0o600 });
      continue;
    }
    if (f.mode === 'ids') {
      // A big id list is parsed here, not on the serving thread (JSON.parse of a million ids takes ~1 s),
      // and handed over as one newline-joined string the server splits in slices.
      const joined = joinIds(b, shown);
      if (joined !== null) {
        ids[f.file] = joined;
        continue;
      }
    }
    // Own, aligned, whole ArrayBuffers: typed-array views need alignment, and only whole buffers transfer.
    let ab = b.buffer;
    if (b.byteOffset !== 0 || ab.byteLength !== b.byteLength) {
      const c = new Uint8Array(b.byteLength);
      c.set(b);
      ab = c.buffer;
    }
    buffers[f.file] = ab;
    transfer.push(ab);
  }
  parentPort.postMessage({ buffers, ids }, transfer);
}

run(workerData).catch((e) => parentPort.postMessage({ error: e instanceof Bad ? e.message : `${e?.code ?? ''} ${e?.message ?? e}`.trim(), user: e instanceof Bad }));
