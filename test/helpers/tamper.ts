/**
 * An attacker who knows the bundle format: edits a file or the manifest, then recomputes every size, checksum
 * and the content id, so only structural checks (or a signature) can tell. Also locates the fields of a
 * saved usearch index (see src/index/hnsw-check.mjs for the layout) so tests can craft bad graphs.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleContentId } from '../../src/bundle/format.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Re-lists `files` (sizes and checksums from disk), fixes the vocabulary checksums and recomputes the id. */
export function reseal(dir: string, edit: (m: any) => void = () => {}, opts: { keepId?: boolean } = {}): any {
  const p = join(dir, 'manifest.json');
  const m = JSON.parse(readFileSync(p, 'utf8'));
  edit(m);
  for (const f of Object.keys(m.files)) {
    try {
      const b = readFileSync(join(dir, f));
      m.files[f] = { bytes: b.length, sha256: sha(b) };
    } catch {
      // a path the test made point nowhere (or outside): left as the edit set it
    }
  }
  for (const v of Object.values(m.vocabularies) as Array<{ file: string; sha256: string }>) if (m.files[v.file]) v.sha256 = m.files[v.file].sha256;
  if (!opts.keepId) m.id = bundleContentId(m);
  writeFileSync(p, JSON.stringify(m, null, 1));
  return m;
}

/** Edits the bytes of one bundle file in place, then reseals the manifest. */
export function tamperFile(dir: string, file: string, edit: (b: Buffer) => Buffer | void): void {
  const p = join(dir, file);
  const b = readFileSync(p);
  writeFileSync(p, edit(b) ?? b);
  reseal(dir);
}

/** Offsets of the interesting fields of a saved usearch index. */
export function usearchLayout(b: Buffer) {
  const rows = b.readUInt32LE(0);
  const head = 8 + rows * b.readUInt32LE(4);
  const graph = head + 64;
  const size = Number(b.readBigUInt64LE(graph));
  const conn = Number(b.readBigUInt64LE(graph + 8));
  const connBase = Number(b.readBigUInt64LE(graph + 16));
  const levels = graph + 40;
  /** Byte offset of each node. */
  const nodes: number[] = [];
  let o = levels + 2 * size;
  for (let i = 0; i < size; i++) {
    nodes.push(o);
    o += 10 + 4 + 4 * connBase + b.readInt16LE(levels + 2 * i) * (4 + 4 * conn);
  }
  return { rows, head, countPresent: head + 17, graph, size, conn, connBase, levels, nodes };
}
