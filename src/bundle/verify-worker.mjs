// Reads and verifies a bundle's files off the serving thread (see read.ts): sizes and SHA-256 of every file,
// the kept ones returned as transferred ArrayBuffers, the index copied to a private path and checked there.
// Hashing ~1 GB and the garbage of its read buffers would otherwise stall the event loop (and its garbage
// collector) of a server answering requests during a hot reload.
// Plain JavaScript on purpose: a worker thread does not inherit the tsx loader the CLI registers.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';

/** @param {string} p */
async function hashFile(p) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(p, { highWaterMark: 4 << 20 })) h.update(chunk);
  return h.digest('hex');
}

/** A problem with the bundle: reported to the caller as a UserError, one line. */
class Bad extends Error {}

const missing = (shown) => new Bad(`${shown}: missing from the bundle`);
const mismatch = (shown, want, got) =>
  new Bad(`${shown}: checksum mismatch (expected ${want.slice(0, 12)}…, got ${got.slice(0, 12)}…): the file is corrupted or was replaced`);

async function sizeOf(p, shown, want) {
  let st;
  try {
    st = await stat(p);
  } catch {
    throw missing(shown);
  }
  if (!st.isFile()) throw missing(shown);
  if (st.size !== want) throw new Bad(`${shown}: ${st.size} bytes, the manifest says ${want} (truncated or replaced)`);
}

/** The ids of a JSON array of strings joined by newlines; null when it is not that (the caller parses it). */
function joinIds(bytes, shown) {
  let list;
  try {
    list = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Bad(`${shown}: unreadable vocabulary: ${e.message}`);
  }
  if (!Array.isArray(list)) return null;
  for (const x of list) if (typeof x !== 'string' || x === '' || x.includes('\n')) return null;
  return list.join('\n');
}

/**
 * workerData: { real, shownDir, files: [{ file, bytes, sha256, mode: 'keep' | 'check' | 'index' | 'ids' }], indexCopy }
 * Answers { buffers: { file: ArrayBuffer }, ids: { file: joined string } } or { error, user: boolean }.
 */
async function run({ real, shownDir, files, indexCopy }) {
  const buffers = {};
  const ids = {};
  const transfer = [];
  for (const f of files) {
    const shown = join(shownDir, f.file);
    const p = join(real, f.file);
    if (f.mode === 'index') {
      try {
        await copyFile(p, indexCopy);
      } catch (e) {
        if (e.code === 'ENOENT') throw missing(shown);
        throw e;
      }
      await sizeOf(indexCopy, shown, f.bytes);
      const sha = await hashFile(indexCopy);
      if (sha !== f.sha256) throw mismatch(shown, f.sha256, sha);
      continue;
    }
    await sizeOf(p, shown, f.bytes);
    if (f.mode === 'check') {
      const sha = await hashFile(p);
      if (sha !== f.sha256) throw mismatch(shown, f.sha256, sha);
      continue;
    }
    const b = await readFile(p);
    const sha = createHash('sha256').update(b).digest('hex');
    if (sha !== f.sha256) throw mismatch(shown, f.sha256, sha);
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
