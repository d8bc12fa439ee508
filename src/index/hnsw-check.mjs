// Structural validation of a saved usearch HNSW index (index_dense, usearch 2.x) before native code maps it:
// usearch trusts the file, so a crafted count, level or neighbour slot makes it read outside the mapping
// (SIGSEGV at load or at the first search). Every field the native search dereferences is checked here.
// Plain JavaScript so the bundle verification worker (plain JS, no tsx loader) can run it; typed by
// hnsw-check.d.mts.
//
// Layout (include/usearch/index_dense.hpp save_to_stream, index.hpp save_to_stream), little-endian:
//   u32 rows, u32 bytesPerVector; rows × bytesPerVector vector bytes
//   64-byte head: "usearch", u16 major, minor, patch, u8 metric, scalar, key kind, slot kind,
//                 u64 countPresent, countDeleted, dimensions, u8 multi, padding
//   graph header: u64 size, connectivity, connectivityBase, maxLevel, entrySlot
//   i16 level per node; then per node: u64 key, i16 level, then for level 0 a u32 neighbour count and
//   connectivityBase u32 slots, and for each level 1..level a u32 count and connectivity u32 slots.

const MAGIC = 'usearch';
const HEAD = 64;
const GRAPH_HEADER = 40;
const METRIC = { ip: 0x69, cos: 0x63 };
const SCALAR_F32 = 0x0b;
const KEY_U64 = 0x0e;
const SLOT_U32 = 0x0f;
/** Bounds far above anything `towerlab export` writes, so a crafted value cannot ask for absurd memory. */
const MAX_CONNECTIVITY = 4096;
const MAX_LEVEL = 64;

/**
 * Checks the bytes of a saved index against what the model implies.
 * @param {Uint8Array} bytes
 * @param {{ dim: number, count: number, metric?: 'ip' | 'cos', connectivity?: number }} expect
 * @returns {string | null} the first problem found, or null when the index is sound
 */
export function usearchProblem(bytes, expect) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.byteLength;
  const u64 = (o) => {
    const x = v.getBigUint64(o, true);
    return x > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(x);
  };
  if (len < 8) return `${len} bytes, too short for an index`;
  const rows = v.getUint32(0, true);
  const rowBytes = v.getUint32(4, true);
  if (rows !== expect.count) return `holds ${rows} vectors, the model has ${expect.count} items`;
  if (rowBytes !== expect.dim * 4) return `vectors of ${rowBytes} bytes, the model's are ${expect.dim * 4} (float32 × ${expect.dim})`;
  let o = 8 + rows * rowBytes;
  if (o + HEAD + GRAPH_HEADER > len) return 'truncated before its header';
  if (Buffer.from(bytes.buffer, bytes.byteOffset + o, 7).toString('latin1') !== MAGIC) return 'no usearch header';
  const major = v.getUint16(o + 7, true);
  if (major !== 2) return `written by usearch ${major}.${v.getUint16(o + 9, true)}, this Towerlab reads usearch 2.x indexes`;
  const metric = v.getUint8(o + 13);
  if (expect.metric && metric !== METRIC[expect.metric]) return `metric code 0x${metric.toString(16)}, the manifest says '${expect.metric}'`;
  if (v.getUint8(o + 14) !== SCALAR_F32 || v.getUint8(o + 15) !== KEY_U64 || v.getUint8(o + 16) !== SLOT_U32) return 'not a float32 index with 64-bit keys and 32-bit slots';
  const present = u64(o + 17);
  const deleted = u64(o + 25);
  const dims = u64(o + 33);
  const multi = v.getUint8(o + 41);
  if (present !== expect.count || deleted !== 0) return `header counts ${present} vectors (${deleted} deleted), the model has ${expect.count} items`;
  if (dims !== expect.dim) return `header says ${dims} dimensions, the model ${expect.dim}`;
  if (multi !== 0) return 'a multi-key index';
  o += HEAD;
  const size = u64(o);
  const conn = u64(o + 8);
  const connBase = u64(o + 16);
  const maxLevel = u64(o + 24);
  const entry = u64(o + 32);
  if (size !== expect.count) return `graph holds ${size} nodes, the model has ${expect.count} items`;
  if (!(conn >= 2 && conn <= MAX_CONNECTIVITY) || !(connBase >= conn && connBase <= 2 * MAX_CONNECTIVITY)) return `graph connectivity ${conn}/${connBase} out of range`;
  if (expect.connectivity !== undefined && conn !== expect.connectivity) return `graph connectivity ${conn}, the manifest says ${expect.connectivity}`;
  if (maxLevel > MAX_LEVEL) return `graph has ${maxLevel} levels (at most ${MAX_LEVEL})`;
  if (size > 0 && entry >= size) return `entry node ${entry} out of range`;
  o += GRAPH_HEADER;
  const levelsAt = o;
  if (levelsAt + 2 * size > len) return 'truncated in the node levels';
  const levels = new Int16Array(size);
  let expectBytes = levelsAt + 2 * size;
  const nodeBase = 10 + 4 + 4 * connBase;
  const perLevel = 4 + 4 * conn;
  let top = -1;
  for (let i = 0; i < size; i++) {
    const l = v.getInt16(levelsAt + 2 * i, true);
    if (l < 0 || l > maxLevel) return `node ${i} has level ${l}, outside 0..${maxLevel}`;
    levels[i] = l;
    if (l > top) top = l;
    expectBytes += nodeBase + perLevel * l;
  }
  if (size > 0 && top !== maxLevel) return `graph header says ${maxLevel} levels, the nodes reach ${top}`;
  if (size > 0 && levels[entry] !== maxLevel) return `entry node ${entry} is not on the top level`;
  if (expectBytes !== len) return `${len} bytes, the graph implies ${expectBytes}`;
  const seen = new Uint8Array(size);
  o = levelsAt + 2 * size;
  for (let i = 0; i < size; i++) {
    const key = u64(o);
    if (key >= size || seen[key]) return `node ${i} has key ${key}, out of range or repeated`;
    seen[key] = 1;
    if (v.getInt16(o + 8, true) !== levels[i]) return `node ${i}: level ${v.getInt16(o + 8, true)} disagrees with the level table (${levels[i]})`;
    o += 10;
    for (let l = 0; l <= levels[i]; l++) {
      const cap = l === 0 ? connBase : conn;
      const n = v.getUint32(o, true);
      if (n > cap) return `node ${i} level ${l}: ${n} neighbours, at most ${cap}`;
      for (let k = 0; k < n; k++) {
        const s = v.getUint32(o + 4 + 4 * k, true);
        if (s >= size) return `node ${i} level ${l}: neighbour slot ${s} out of range`;
        if (levels[s] < l) return `node ${i} level ${l}: neighbour ${s} is not on level ${l}`;
      }
      o += 4 + 4 * cap;
    }
  }
  return null;
}
