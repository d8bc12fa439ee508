/**
 * IVF-Flat approximate nearest-neighbour search: spherical k-means splits the items into `lists` clusters;
 * a query scores every centroid, then scans only the items of its `nprobe` best lists exactly. The items are
 * stored re-ordered so each list is one contiguous block, which a query streams through once; with ~1000
 * items per list and nprobe ≪ lists this reads far less memory than a graph walk, and needs no graph build.
 *
 * Search runs in the native addon (native/ivf.cc, AVX2) when it loads, else in a JS path with the same
 * algorithm and tie-breaking (scores agree to float rounding). Scores are similarities (higher is better):
 * inner products ('ip') or cosines ('cos', vectors and query normalised).
 */
import type { Backend } from '../compute/backend.ts';
import { nativeIvfSearch } from '../compute/native.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Hits, IndexMetric } from './ann-index.ts';

export interface IvfConfig {
  kind: 'ivf';
  metric: IndexMetric;
  /** Number of k-means clusters (inverted lists). */
  lists: number;
  /** Lists scanned per query: recall against latency (nprobe = lists is exact search). */
  nprobe: number;
}

/** About √N·2 lists, so a list holds ~√N/2 items and centroid scoring costs about as much as one list. */
export function defaultIvfLists(n: number): number {
  return Math.max(1, Math.min(n, Math.round(2 * Math.sqrt(n))));
}

export interface IvfBuildOptions {
  seed?: number;
  /** Lloyd iterations on the training sample. */
  iterations?: number;
  /** Training sample size per list (the sample is capped at n). */
  samplePerList?: number;
  progress?: (m: string) => void;
  /** Use the JS search path even when the addon loads (tests compare the two). */
  portable?: boolean;
}

const MAGIC = 'TLIVF\0\0\x01';
const HEADER_BYTES = 32;
const FORMAT_VERSION = 1;

export class IvfIndex {
  readonly size: number;
  readonly lists: number;
  private readonly native: ReturnType<typeof nativeIvfSearch>;

  private constructor(
    readonly dim: number,
    readonly config: IvfConfig,
    /** lists×dim, unit length. */
    private readonly centroids: Float32Array,
    /** List l holds rows offsets[l] .. offsets[l+1]−1 of `vectors`. */
    private readonly offsets: Int32Array,
    /** n×dim, grouped by list (normalised for 'cos'). */
    private readonly vectors: Float32Array,
    /** Item index of each stored row. */
    private readonly ids: Int32Array,
    portable: boolean,
  ) {
    this.size = ids.length;
    this.lists = offsets.length - 1;
    this.native = portable ? null : nativeIvfSearch();
  }

  /** Whether searches run in the native kernel. */
  get isNative(): boolean {
    return this.native !== null;
  }

  /** The same index searching `nprobe` lists (shares the data). */
  withNprobe(nprobe: number, portable = !this.isNative): IvfIndex {
    return new IvfIndex(this.dim, { ...this.config, nprobe }, this.centroids, this.offsets, this.vectors, this.ids, portable);
  }

  /**
   * Clusters n row-major vectors (item indexes 0..n−1) with spherical k-means on a seeded sample, using the
   * backend's GEMM for the assignments, then assigns every vector to its closest centroid.
   */
  static build(backend: Backend, vectors: Float32Array, n: number, dim: number, config: IvfConfig, opts: IvfBuildOptions = {}): IvfIndex {
    if (vectors.length !== n * dim) throw new Error(`IvfIndex.build: ${vectors.length} values for ${n}×${dim}`);
    if (n < 1) throw new UserError('cannot build an IVF index over 0 items');
    const L = Math.max(1, Math.min(config.lists, n));
    const data = config.metric === 'cos' ? normalisedCopy(vectors, n, dim) : vectors;
    const rng = new Rng(opts.seed ?? 1);
    const iterations = opts.iterations ?? 10;

    // Training sample: a seeded partial Fisher–Yates shuffle of the row indexes.
    const m = Math.min(n, L * (opts.samplePerList ?? 32));
    const perm = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = 0; i < m; i++) {
      const j = i + rng.int(n - i);
      const t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    const sample = new Float32Array(m * dim);
    for (let i = 0; i < m; i++) sample.set(data.subarray(perm[i] * dim, (perm[i] + 1) * dim), i * dim);

    const cent = new Float32Array(L * dim);
    cent.set(sample.subarray(0, L * dim));
    normaliseRows(cent, L, dim);
    const assign = new Int32Array(m);
    for (let it = 0; it < iterations; it++) {
      assignRows(backend, sample, m, cent, L, dim, assign);
      const sums = new Float64Array(L * dim);
      const counts = new Int32Array(L);
      for (let i = 0; i < m; i++) {
        const c = assign[i];
        counts[c]++;
        const o = c * dim;
        const r = i * dim;
        for (let t = 0; t < dim; t++) sums[o + t] += sample[r + t];
      }
      let empty = 0;
      for (let c = 0; c < L; c++) {
        if (counts[c] === 0) {
          // Re-seed an empty list with a random sample row.
          empty++;
          const r = rng.int(m) * dim;
          for (let t = 0; t < dim; t++) cent[c * dim + t] = sample[r + t];
        } else for (let t = 0; t < dim; t++) cent[c * dim + t] = sums[c * dim + t];
      }
      normaliseRows(cent, L, dim);
      opts.progress?.(`  k-means iteration ${it + 1}/${iterations} on ${m} sampled items (${L} lists, ${empty} empty re-seeded)`);
    }

    // Assign every item, then group rows by list (ascending item index within a list).
    const all = new Int32Array(n);
    assignRows(backend, data, n, cent, L, dim, all);
    const offsets = new Int32Array(L + 1);
    for (let i = 0; i < n; i++) offsets[all[i] + 1]++;
    for (let c = 0; c < L; c++) offsets[c + 1] += offsets[c];
    const fill = offsets.slice(0, L);
    const ids = new Int32Array(n);
    const out = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      const p = fill[all[i]]++;
      ids[p] = i;
      out.set(data.subarray(i * dim, (i + 1) * dim), p * dim);
    }
    return new IvfIndex(dim, { ...config, lists: L }, cent, offsets, out, ids, opts.portable ?? false);
  }

  /** The k most similar items to q (best first); fewer when the scanned lists hold fewer. */
  search(q: Float32Array, k: number): Hits {
    const kk = Math.min(k, this.size);
    if (kk <= 0) return { ids: new Int32Array(0), scores: new Float32Array(0) };
    const query = this.config.metric === 'cos' ? normalisedCopy(q, 1, this.dim) : q;
    const ids = new Int32Array(kk);
    const scores = new Float32Array(kk);
    const nprobe = Math.min(this.config.nprobe, this.lists);
    const got = this.native
      ? this.native(query, this.centroids, this.lists, this.offsets, this.vectors, this.ids, this.dim, nprobe, kk, ids, scores)
      : this.searchJs(query, nprobe, kk, ids, scores);
    return { ids: ids.subarray(0, got), scores: scores.subarray(0, got) };
  }

  private searchJs(q: Float32Array, nprobe: number, k: number, outIds: Int32Array, outScores: Float32Array): number {
    const { dim, centroids, vectors, offsets, ids } = this;
    const probe = new TopK(nprobe);
    for (let l = 0; l < this.lists; l++) probe.offer(dotAt(q, centroids, l * dim, dim), l);
    const lists = new Int32Array(nprobe);
    const np = probe.drain(lists, new Float32Array(nprobe));
    const top = new TopK(k);
    for (let p = 0; p < np; p++) {
      const l = lists[p];
      for (let j = offsets[l]; j < offsets[l + 1]; j++) top.offer(dotAt(q, vectors, j * dim, dim), ids[j]);
    }
    return top.drain(outIds, outScores);
  }

  /** The saved form: a 32-byte header, then centroids, offsets, ids and vectors (little-endian). */
  toBytes(): Buffer {
    const { dim, lists, size } = this;
    const parts = [this.centroids, this.offsets, this.ids, this.vectors];
    const total = HEADER_BYTES + parts.reduce((s, p) => s + p.byteLength, 0);
    const buf = Buffer.alloc(total);
    buf.write(MAGIC, 0, 'latin1');
    const h = new Int32Array(buf.buffer, buf.byteOffset + 8, 6);
    h.set([FORMAT_VERSION, dim, lists, size, this.config.metric === 'cos' ? 1 : 0, this.config.nprobe]);
    let o = HEADER_BYTES;
    for (const p of parts) {
      buf.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
      o += p.byteLength;
    }
    return buf;
  }

  /**
   * Parses a saved index, checking its structure (sizes, list offsets, every item exactly once) and that it
   * matches the model (`dim`, `items`). `where` names the file in errors.
   */
  static fromBytes(bytes: Uint8Array, where: string, expect: { dim: number; items: number; nprobe?: number }): IvfIndex {
    const bad = (why: string): never => {
      throw new UserError(`${where}: not a valid IVF index: ${why}`);
    };
    if (bytes.length < HEADER_BYTES || Buffer.from(bytes.buffer, bytes.byteOffset, 8).toString('latin1') !== MAGIC) bad('bad header');
    // Typed views need 4-byte alignment; copy when the bytes are not aligned.
    const b = bytes.byteOffset % 4 === 0 ? bytes : new Uint8Array(bytes);
    const [version, dim, lists, n, metric, nprobe] = new Int32Array(b.buffer, b.byteOffset + 8, 6);
    if (version > FORMAT_VERSION) bad(`format version ${version} is newer than this Towerlab reads (${FORMAT_VERSION})`);
    if (dim !== expect.dim) throw new UserError(`${where}: index has ${dim} dimensions, the model ${expect.dim}`);
    if (n !== expect.items) throw new UserError(`${where}: index holds ${n} vectors, the model has ${expect.items} items`);
    if (!(lists >= 1 && lists <= n) || !(metric === 0 || metric === 1) || !(nprobe >= 1)) bad('bad header fields');
    const want = HEADER_BYTES + 4 * (lists * dim + lists + 1 + n + n * dim);
    if (b.length !== want) bad(`${b.length} bytes, expected ${want}`);
    let o = b.byteOffset + HEADER_BYTES;
    const take = <T extends Float32Array | Int32Array>(Ctor: new (buf: ArrayBufferLike, off: number, len: number) => T, len: number): T => {
      const v = new Ctor(b.buffer, o, len);
      o += 4 * len;
      return v;
    };
    const centroids = take(Float32Array, lists * dim);
    const offsets = take(Int32Array, lists + 1);
    const ids = take(Int32Array, n);
    const vectors = take(Float32Array, n * dim);
    if (offsets[0] !== 0 || offsets[lists] !== n) bad('list offsets do not cover the items');
    for (let l = 0; l < lists; l++) if (offsets[l + 1] < offsets[l]) bad(`list ${l} has a negative length`);
    const seen = new Uint8Array(n);
    for (let j = 0; j < n; j++) {
      const id = ids[j];
      if (!(id >= 0 && id < n) || seen[id]) bad(`item ${id} out of range or stored twice`);
      seen[id] = 1;
    }
    const config: IvfConfig = { kind: 'ivf', metric: metric === 1 ? 'cos' : 'ip', lists, nprobe: expect.nprobe ?? nprobe };
    return new IvfIndex(dim, config, centroids, offsets, vectors, ids, false);
  }
}

/** Assigns each of n rows to its best centroid (max inner product) in GEMM-sized chunks. */
function assignRows(backend: Backend, x: Float32Array, n: number, cent: Float32Array, L: number, dim: number, out: Int32Array): void {
  const chunk = Math.max(1, Math.min(n, Math.floor((4 << 20) / L)));
  const scores = new Float32Array(chunk * L);
  const val = new Float32Array(chunk);
  for (let s = 0; s < n; s += chunk) {
    const rows = Math.min(chunk, n - s);
    const sc = scores.subarray(0, rows * L);
    backend.gemm(false, true, rows, L, dim, 1, x.subarray(s * dim, (s + rows) * dim), cent, 0, sc);
    backend.topkRows(sc, rows, L, 1, out.subarray(s, s + rows), val.subarray(0, rows));
    // A row of NaN scores (a NaN embedding) gets no top-1: put it in list 0 rather than out of range.
    for (let i = s; i < s + rows; i++) if (out[i] < 0) out[i] = 0;
  }
}

function normaliseRows(x: Float32Array, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let t = 0; t < dim; t++) ss += x[r * dim + t] ** 2;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let t = 0; t < dim; t++) x[r * dim + t] *= inv;
  }
}

function normalisedCopy(x: Float32Array, rows: number, dim: number): Float32Array {
  const y = Float32Array.from(x);
  normaliseRows(y, rows, dim);
  return y;
}

function dotAt(q: Float32Array, m: Float32Array, o: number, dim: number): number {
  let s = 0;
  for (let t = 0; t < dim; t++) s += q[t] * m[o + t];
  return Math.fround(s);
}

/** Size-k min-heap keeping the best hits; ties go to the lower id (as the native kernel does). */
class TopK {
  private v: Float64Array;
  private i: Int32Array;
  private n = 0;
  constructor(private readonly k: number) {
    this.v = new Float64Array(k);
    this.i = new Int32Array(k);
  }
  private worse(a: number, b: number): boolean {
    return this.v[a] < this.v[b] || (this.v[a] === this.v[b] && this.i[a] > this.i[b]);
  }
  private swap(a: number, b: number): void {
    const tv = this.v[a];
    this.v[a] = this.v[b];
    this.v[b] = tv;
    const ti = this.i[a];
    this.i[a] = this.i[b];
    this.i[b] = ti;
  }
  offer(v: number, id: number): void {
    if (!(v > -Infinity)) return;
    if (this.n < this.k) {
      let x = this.n++;
      this.v[x] = v;
      this.i[x] = id;
      while (x > 0) {
        const p = (x - 1) >> 1;
        if (!this.worse(x, p)) break;
        this.swap(x, p);
        x = p;
      }
      return;
    }
    if (v < this.v[0] || (v === this.v[0] && id > this.i[0])) return;
    this.v[0] = v;
    this.i[0] = id;
    for (let x = 0; ; ) {
      const l = 2 * x + 1;
      const r = l + 1;
      let w = x;
      if (l < this.k && this.worse(l, w)) w = l;
      if (r < this.k && this.worse(r, w)) w = r;
      if (w === x) break;
      this.swap(x, w);
      x = w;
    }
  }
  /** Best first; returns the count. */
  drain(ids: Int32Array, scores: Float32Array): number {
    const order = Array.from({ length: this.n }, (_, x) => x).sort((a, b) => this.v[b] - this.v[a] || this.i[a] - this.i[b]);
    order.forEach((x, r) => {
      ids[r] = this.i[x];
      scores[r] = this.v[x];
    });
    return this.n;
  }
}
