/**
 * A directory of named typed arrays: `tensors.bin` (the raw little-endian bytes, each array 8-byte aligned)
 * described by `manifest.json` (names, dtypes, offsets, a SHA-256 of every other file — the binary file and
 * the extra files such as vocab.json — and any JSON metadata). Written atomically as a whole directory.
 * Loading trusts nothing in it: each file must be a regular file inside the directory and match its listed
 * checksum, and the tensor table must describe exactly the layout the writer produces (offsets in declared
 * order, each the previous end rounded up to 8 bytes, the last ending at the file's end), so an edited
 * offset, a swapped entry or a changed vocabulary is refused instead of loading wrong weights.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { containedFile } from '../util/contained.mjs';
import { join } from 'node:path';
import { resolveDirVersion, writeDirAtomic, writeFileSynced } from '../util/atomic.ts';
import { UserError } from '../util/errors.ts';

export type NamedArray = Float32Array | Int32Array;

interface Entry {
  name: string;
  dtype: 'f32' | 'i32';
  offset: number;
  length: number;
}

export const MANIFEST = 'manifest.json';
const BIN = 'tensors.bin';

export function writeTensorDir(
  dir: string,
  format: string,
  version: number,
  meta: Record<string, unknown>,
  arrays: Array<[string, NamedArray]>,
  extraFiles: Record<string, string> = {},
): void {
  const entries: Entry[] = [];
  let size = 0;
  for (const [name, a] of arrays) {
    entries.push({ name, dtype: a instanceof Int32Array ? 'i32' : 'f32', offset: size, length: a.length });
    size += Math.ceil(a.byteLength / 8) * 8;
  }
  const bin = new Uint8Array(size);
  arrays.forEach(([, a], i) => bin.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), entries[i].offset));
  const sha256 = createHash('sha256').update(bin).digest('hex');
  const checksums: Record<string, string> = { [BIN]: sha256 };
  for (const [name, text] of Object.entries(extraFiles)) checksums[name] = createHash('sha256').update(text).digest('hex');
  const manifest = { format, version, created: new Date().toISOString(), ...meta, tensors: entries, checksums };
  writeDirAtomic(dir, (tmp) => {
    writeFileSynced(join(tmp, BIN), bin);
    for (const [name, text] of Object.entries(extraFiles)) writeFileSynced(join(tmp, name), text);
    writeFileSynced(join(tmp, MANIFEST), JSON.stringify(manifest, null, 1));
  });
}

export interface TensorDir {
  manifest: Record<string, any>;
  arrays: Map<string, NamedArray>;
  /** The one version every file was read from (resolveDirVersion): read any further file of it through this. */
  real: string;
  /** Another file of this version (e.g. vocab.json), checked against the manifest's checksum, as text. */
  readText(name: string): string;
}

/** The bytes of `name` inside `real`, refusing paths that leave it, links and non-files. */
function readContained(real: string, dir: string, name: string): Buffer {
  const c = containedFile(real, name);
  if ('problem' in c) throw new UserError(`${join(dir, name)}: ${c.problem}`);
  return readFileSync(c.path);
}

export function readTensorDir(dir: string, format: string, maxVersion: number): TensorDir {
  if (!existsSync(join(dir, MANIFEST))) throw new UserError(`${dir}: not a ${format} directory (no ${MANIFEST})`);
  // Resolve the directory once, so a concurrent rewrite cannot mix the files of two versions.
  const real = resolveDirVersion(dir);
  const mpath = join(dir, MANIFEST);
  let manifest: Record<string, any>;
  try {
    manifest = JSON.parse(readContained(real, dir, MANIFEST).toString('utf8'));
  } catch (e) {
    if (e instanceof UserError) throw e;
    // Not V8's message: it quotes the text.
    throw new UserError(`${mpath}: corrupted manifest (not valid JSON)`);
  }
  if (!manifest || typeof manifest !== 'object' || Array.isArray(manifest)) throw new UserError(`${mpath}: corrupted manifest (not a JSON object)`);
  if (manifest.format !== format) throw new UserError(`${mpath}: format is '${String(manifest.format).slice(0, 80)}', expected '${format}'`);
  if (typeof manifest.version !== 'number' || manifest.version > maxVersion) {
    throw new UserError(`${mpath}: format version ${manifest.version} is newer than this Towerlab reads (${maxVersion}); upgrade Towerlab`);
  }
  const checksums = manifest.checksums;
  if (!checksums || typeof checksums !== 'object') throw new UserError(`${mpath}: field 'checksums' missing`);
  const verified = (name: string): Buffer => {
    const want = Object.hasOwn(checksums, name) ? checksums[name] : undefined;
    if (typeof want !== 'string') throw new UserError(`${join(dir, name)}: not covered by the manifest's checksums (written by an older Towerlab, or tampered with): save the model again`);
    if (!existsSync(join(real, name))) throw new UserError(`${join(dir, name)}: missing`);
    const b = readContained(real, dir, name);
    if (createHash('sha256').update(b).digest('hex') !== want) throw new UserError(`${join(dir, name)}: checksum mismatch (file corrupted or replaced)`);
    return b;
  };
  const bpath = join(dir, BIN);
  const bin = verified(BIN);
  const arrays = new Map<string, NamedArray>();
  const entries = manifest.tensors;
  if (!Array.isArray(entries)) throw new UserError(`${mpath}: field 'tensors' must be a list`);
  let end = 0;
  entries.forEach((e: Entry, i: number) => {
    const field = `${mpath}: field 'tensors.${i}'`;
    if (!e || typeof e.name !== 'string' || (e.dtype !== 'f32' && e.dtype !== 'i32')) throw new UserError(`${field}: expected {name, dtype: 'f32'|'i32', offset, length}`);
    if (!Number.isSafeInteger(e.length) || e.length < 0 || !Number.isSafeInteger(e.offset)) throw new UserError(`${field}: offset and length must be non-negative integers`);
    if (arrays.has(e.name)) throw new UserError(`${field}: tensor '${e.name.slice(0, 80)}' declared twice`);
    // The writer's layout, exactly: anything else is an edited table, not another valid file.
    if (e.offset !== end) throw new UserError(`${bpath}: tensor '${e.name.slice(0, 80)}' declared at byte ${e.offset}, the layout puts it at ${end} (manifest edited?)`);
    const bytes = e.length * 4;
    if (e.offset + bytes > bin.length) throw new UserError(`${bpath}: tensor '${e.name.slice(0, 80)}' extends past the end of the file`);
    const copy = new Uint8Array(bytes);
    copy.set(bin.subarray(e.offset, e.offset + bytes));
    arrays.set(e.name, e.dtype === 'i32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer));
    end = e.offset + Math.ceil(bytes / 8) * 8;
  });
  if (end !== bin.length) throw new UserError(`${bpath}: ${bin.length} bytes, the tensor table accounts for ${end}`);
  return { manifest, arrays, real, readText: (name) => verified(name).toString('utf8') };
}

/**
 * Builds a model from a checked tensor directory, turning a failure of the model's own constructor (a config
 * whose shapes cannot be allocated, a missing field) into one line naming the manifest: the config is file
 * content, so such a failure is bad input, not a Towerlab bug.
 */
export function buildFromManifest<T>(dir: string, build: () => T): T {
  try {
    return build();
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${join(dir, MANIFEST)}: the model config cannot be built (${(e as Error)?.name ?? 'error'}: ${String((e as Error)?.message ?? e).split('\n')[0].slice(0, 120)})`);
  }
}
