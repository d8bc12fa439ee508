/**
 * Approximate nearest-neighbour search over item embeddings: an HNSW graph from usearch, keyed by item index.
 * Scores are returned as similarities (higher is better), so callers can mix ANN and exact results:
 * usearch reports distances 1 − x·y ('ip') and 1 − cos(x, y) ('cos').
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import type usearchModule from 'usearch';
import { UserError } from '../util/errors.ts';
import { usearchProblem } from './hnsw-check.mjs';

// usearch's ESM build cannot find its native binary under plain Node (it looks for __dirname, absent in ESM, and
// recurses up to a stack overflow); its CommonJS build can. Loaded this way, `import 'towerlab'` works without tsx.
const usearch = createRequire(import.meta.url)('usearch') as typeof usearchModule;

export type IndexMetric = 'ip' | 'cos';

export interface AnnConfig {
  /** Absent in indexes saved before IVF existed (src/index/ivf-index.ts). */
  kind?: 'hnsw';
  metric: IndexMetric;
  /** HNSW graph degree (M). */
  connectivity: number;
  /** Candidate list size while inserting (efConstruction). */
  expansionAdd: number;
  /** Candidate list size while searching (ef); the search never looks at fewer than k candidates. */
  expansionSearch: number;
}

export const defaultAnnConfig: AnnConfig = { metric: 'ip', connectivity: 16, expansionAdd: 128, expansionSearch: 64 };

export interface Hits {
  ids: Int32Array;
  scores: Float32Array;
}

export class AnnIndex {
  /** Vector count, cached: asking the native index costs a call per use. */
  readonly size: number;
  private readonly sizeKey: bigint;

  private constructor(
    private readonly idx: InstanceType<typeof usearch.Index>,
    readonly dim: number,
    readonly config: AnnConfig,
  ) {
    this.size = idx.size();
    this.sizeKey = BigInt(this.size);
  }

  private static make(dim: number, c: AnnConfig) {
    return new usearch.Index({
      dimensions: dim,
      metric: c.metric as any,
      connectivity: c.connectivity,
      expansion_add: c.expansionAdd,
      expansion_search: c.expansionSearch,
      quantization: 'f32' as any,
      multi: false,
    });
  }

  /**
   * Indexes n row-major vectors (keys 0..n−1). Inserts in chunks so `progress` can report; `threads` 0 lets
   * usearch use every core.
   */
  static build(vectors: Float32Array, n: number, dim: number, config: AnnConfig, opts: { threads?: number; progress?: (done: number, total: number) => void } = {}): AnnIndex {
    if (vectors.length !== n * dim) throw new Error(`AnnIndex.build: ${vectors.length} values for ${n}×${dim}`);
    const idx = AnnIndex.make(dim, config);
    const chunk = 65536;
    for (let s = 0; s < n; s += chunk) {
      const e = Math.min(n, s + chunk);
      const keys = new BigUint64Array(e - s);
      for (let i = s; i < e; i++) keys[i - s] = BigInt(i);
      idx.add(keys, vectors.subarray(s * dim, e * dim), opts.threads ?? 0);
      opts.progress?.(e, n);
    }
    return new AnnIndex(idx, dim, config);
  }

  /**
   * Loads a saved index and checks it holds `expectedCount` vectors of `dim` dimensions. The file's structure
   * is validated first (hnsw-check.mjs): usearch trusts what it reads, and a crafted header or neighbour slot
   * would crash the process. `shown` names the file in errors (the user's path, not a private copy).
   */
  static load(path: string, dim: number, config: AnnConfig, expectedCount: number, shown = path): AnnIndex {
    AnnIndex.validate(path, dim, config, expectedCount, shown);
    const idx = AnnIndex.make(dim, config);
    try {
      idx.load(path);
    } catch (e) {
      throw new UserError(`${shown}: not a readable usearch index: ${oneLine((e as Error).message, path, shown)}`);
    }
    return AnnIndex.checked(idx, dim, config, expectedCount, shown);
  }

  /**
   * Memory-maps a saved index instead of copying it into the heap: near-instant (loading a million-item
   * index blocks for over a second), and the pages are shared with the file cache. The file must never
   * change while mapped: callers map a private copy (see bundle/read.ts). `validated`: the caller already
   * ran the structural check on exactly these bytes (the bundle reader does, off the serving thread).
   */
  static view(path: string, dim: number, config: AnnConfig, expectedCount: number, shown = path, validated = false): AnnIndex {
    if (!validated) AnnIndex.validate(path, dim, config, expectedCount, shown);
    else if (!existsSync(path) || !statSync(path).isFile()) throw new UserError(`${shown}: index file missing`);
    const idx = AnnIndex.make(dim, config);
    try {
      idx.view(path);
    } catch (e) {
      throw new UserError(`${shown}: not a readable usearch index: ${oneLine((e as Error).message, path, shown)}`);
    }
    return AnnIndex.checked(idx, dim, config, expectedCount, shown);
  }

  private static validate(path: string, dim: number, config: AnnConfig, expectedCount: number, shown: string): void {
    if (!existsSync(path) || !statSync(path).isFile()) throw new UserError(`${shown}: index file missing`);
    const problem = usearchProblem(readFileSync(path), { dim, count: expectedCount, metric: config.metric, connectivity: config.connectivity });
    if (problem) throw new UserError(`${shown}: not a valid HNSW index: ${problem}`);
  }

  private static checked(idx: InstanceType<typeof usearch.Index>, dim: number, config: AnnConfig, expectedCount: number, shown: string): AnnIndex {
    if (idx.dimensions() !== dim) throw new UserError(`${shown}: index has ${idx.dimensions()} dimensions, the model ${dim}`);
    if (idx.size() !== expectedCount) throw new UserError(`${shown}: index holds ${idx.size()} vectors, the model has ${expectedCount} items`);
    return new AnnIndex(idx, dim, config);
  }

  save(path: string): void {
    this.idx.save(path);
  }

  /** The k nearest items to q (best first); fewer when the index holds fewer. Runs on the calling thread. */
  search(q: Float32Array, k: number): Hits {
    const kk = Math.min(k, this.size);
    if (kk <= 0) return { ids: new Int32Array(0), scores: new Float32Array(0) };
    const m = this.idx.search(q, kk, 1);
    const n = m.keys.length;
    const ids = new Int32Array(n);
    const scores = new Float32Array(n);
    let w = 0;
    for (let i = 0; i < n; i++) {
      // usearch pads missing results with the max key; keep only real ones.
      const key = m.keys[i];
      if (key >= this.sizeKey || !Number.isFinite(m.distances[i])) continue;
      ids[w] = Number(key);
      scores[w] = 1 - m.distances[i];
      w++;
    }
    return { ids: ids.subarray(0, w), scores: scores.subarray(0, w) };
  }
}

/** A native error message on one line, naming the user's path instead of a private one. */
const oneLine = (msg: string, path: string, shown: string) => msg.split(path).join(shown).replace(/\s+/g, ' ').trim();
