/**
 * A directory of named typed arrays: `tensors.bin` (the raw little-endian bytes, each array 8-byte aligned)
 * described by `manifest.json` (names, dtypes, offsets, a SHA-256 of the binary file, and any JSON metadata).
 * Written atomically as a whole directory; loading checks the checksum and every declared size.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
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
  const manifest = { format, version, created: new Date().toISOString(), ...meta, tensors: entries, checksums: { [BIN]: sha256 } };
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
}

export function readTensorDir(dir: string, format: string, maxVersion: number): TensorDir {
  if (!existsSync(join(dir, MANIFEST))) throw new UserError(`${dir}: not a ${format} directory (no ${MANIFEST})`);
  // Resolve the directory once, so a concurrent rewrite cannot mix the files of two versions.
  const real = resolveDirVersion(dir);
  const mpath = join(dir, MANIFEST);
  let manifest: Record<string, any>;
  try {
    manifest = JSON.parse(readFileSync(join(real, MANIFEST), 'utf8'));
  } catch (e) {
    throw new UserError(`${mpath}: corrupted manifest: ${(e as Error).message}`);
  }
  if (manifest.format !== format) throw new UserError(`${mpath}: format is '${manifest.format}', expected '${format}'`);
  if (typeof manifest.version !== 'number' || manifest.version > maxVersion) {
    throw new UserError(`${mpath}: format version ${manifest.version} is newer than this Towerlab reads (${maxVersion}); upgrade Towerlab`);
  }
  const bpath = join(dir, BIN);
  if (!existsSync(join(real, BIN))) throw new UserError(`${bpath}: missing`);
  const bin = readFileSync(join(real, BIN));
  const sha = createHash('sha256').update(bin).digest('hex');
  if (sha !== manifest.checksums?.[BIN]) throw new UserError(`${bpath}: checksum mismatch (file corrupted or replaced)`);
  const arrays = new Map<string, NamedArray>();
  for (const e of manifest.tensors as Entry[]) {
    const bytes = e.length * 4;
    if (e.offset + bytes > bin.length) throw new UserError(`${bpath}: tensor '${e.name}' extends past the end of the file`);
    const copy = new Uint8Array(bytes);
    copy.set(bin.subarray(e.offset, e.offset + bytes));
    arrays.set(e.name, e.dtype === 'i32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer));
  }
  return { manifest, arrays, real };
}
