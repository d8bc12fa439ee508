/**
 * A text dual encoder: a query tower and a document tower (one shared tower, or two). It trains through the one
 * contrastive step with any negatives recipe as an EncoderPair (src/text/text-pair.ts, src/text/train.ts).
 * Documents are encoded per chunk (window/stride over words); a document scores the max over its chunks.
 */
import type { Backend } from '../compute/backend.ts';
import type { RankedLists, Retriever } from '../mine/types.ts';
import { buildFromManifest, readTensorDir, writeTensorDir } from '../model/tensor-file.ts';
import { Rng } from '../util/rng.ts';
import { BoeTower } from './boe-tower.ts';
import { maxOverChunks, type ChunkSet } from './chunk.ts';
import type { InputKind, TextCorpus } from './corpus.ts';
import type { TokenizerOptions } from './tokenize.ts';
import { topkRow } from './topk.ts';
import { packTexts, type TextTower, type TowerOptim } from './tower.ts';
import { TransformerTower } from './transformer-tower.ts';

export interface DualEncoderConfig {
  tower: 'boe' | 'transformer';
  /** One tower for queries and documents (true) or two. */
  shared: boolean;
  dim: number;
  /** BoE: dense layer after pooling (output size; 0 = none). */
  proj: number;
  pooling: 'mean' | 'sqrt';
  heads: number;
  blocks: number;
  /** Chunk window and stride, in words. */
  window: number;
  stride: number;
  /** Queries are truncated to this many words. */
  queryMaxLen: number;
  tokenizer: TokenizerOptions;
  seed: number;
}

export const FORMAT = 'towerlab-text-dual-encoder';

export class DualEncoder {
  readonly qTower: TextTower;
  readonly dTower: TextTower;
  readonly kind: InputKind;

  constructor(
    readonly config: DualEncoderConfig,
    readonly optim: TowerOptim,
  ) {
    this.kind = config.tower === 'boe' ? 'features' : 'tokens';
    this.qTower = this.newTower(config.seed);
    this.dTower = config.shared ? this.qTower : this.newTower(config.seed + 7919);
  }

  /** A fresh tower of this encoder's configuration (the towers, and momentum copies of them). */
  newTower(seed: number): TextTower {
    const c = this.config;
    return c.tower === 'boe'
      ? new BoeTower({ buckets: c.tokenizer.buckets, dim: c.dim, pooling: c.pooling, proj: c.proj, seed }, this.optim)
      : new TransformerTower({ buckets: c.tokenizer.buckets, dim: c.dim, heads: c.heads, blocks: c.blocks, maxLen: Math.max(c.window, c.queryMaxLen), seed }, this.optim);
  }

  /** Embeddings (n × outDim) of inputs through a tower, in batches. */
  encode(b: Backend, tower: TextTower, inputs: Int32Array[], batch = 256): Float32Array {
    const D = tower.outDim;
    const out = new Float32Array(inputs.length * D);
    for (let i = 0; i < inputs.length; i += batch) {
      const part = inputs.slice(i, i + batch);
      out.set(tower.forward(b, packTexts(part), false, new Rng(0)).subarray(0, part.length * D), i * D);
    }
    return out;
  }

  queryInputs(corpus: TextCorpus, queries: ArrayLike<number>): Int32Array[] {
    return Array.from(queries, (q) => corpus.input(this.kind, corpus.queryWords[q], this.config.queryMaxLen));
  }

  chunkInputs(corpus: TextCorpus, chunks: ChunkSet): Int32Array[] {
    return Array.from(chunks.doc, (d, c) => corpus.input(this.kind, corpus.docWords[d], this.config.window, chunks.lo[c], chunks.hi[c]));
  }

  save(dir: string, meta: Record<string, unknown>): void {
    const arrays: Array<[string, Float32Array]> = this.qTower.tensors().map(([n, a]) => [`q.${n}`, a]);
    if (!this.config.shared) for (const [n, a] of this.dTower.tensors()) arrays.push([`d.${n}`, a]);
    writeTensorDir(dir, FORMAT, 1, { config: this.config, optim: this.optim, ...meta }, arrays);
  }

  static load(dir: string): DualEncoder {
    const { manifest, arrays } = readTensorDir(dir, FORMAT, 1);
    return buildFromManifest(dir, () => {
      const enc = new DualEncoder(manifest.config as DualEncoderConfig, manifest.optim as TowerOptim);
      const pick = (prefix: string) => new Map([...arrays].filter(([n]) => n.startsWith(prefix)).map(([n, a]) => [n.slice(prefix.length), a]));
      enc.qTower.load(pick('q.'));
      if (!enc.config.shared) enc.dTower.load(pick('d.'));
      return enc;
    });
  }
}

/**
 * Top-k documents per query row from query embeddings Q (rows × D) and chunk embeddings (chunks × D):
 * cosine per chunk, max over each document's chunks, top-k.
 */
export function rankDocuments(b: Backend, Q: Float32Array, rows: number, chunkEmb: Float32Array, chunks: ChunkSet, numDocs: number, D: number, k: number): RankedLists {
  const C = chunks.doc.length;
  const ids = new Int32Array(rows * k);
  const scores = new Float32Array(rows * k);
  const block = 64;
  const S = new Float32Array(block * C);
  const docS = new Float32Array(block * numDocs);
  const heap = new Int32Array(k);
  for (let r0 = 0; r0 < rows; r0 += block) {
    const m = Math.min(block, rows - r0);
    b.gemm(false, true, m, C, D, 1, Q.subarray(r0 * D, (r0 + m) * D), chunkEmb, 0, S.subarray(0, m * C));
    maxOverChunks(S, m, chunks.doc, numDocs, docS);
    for (let r = 0; r < m; r++) {
      const o = (r0 + r) * k;
      topkRow(docS.subarray(r * numDocs, (r + 1) * numDocs), k, ids.subarray(o, o + k), scores.subarray(o, o + k), -Infinity, heap);
    }
  }
  return { rows, k, ids, scores };
}

/** The dual encoder as an ensemble member: encodes the corpus chunks once, then queries on demand. */
export class DualEncoderRetriever implements Retriever {
  private chunkEmb: Float32Array | null = null;
  readonly chunks: ChunkSet;

  constructor(
    readonly name: string,
    readonly enc: DualEncoder,
    readonly corpus: TextCorpus,
    readonly backend: Backend,
  ) {
    this.chunks = corpus.chunks(enc.config.window, enc.config.stride);
  }

  /** Re-encode the corpus (after training further). */
  refresh(): void {
    this.chunkEmb = this.enc.encode(this.backend, this.enc.dTower, this.enc.chunkInputs(this.corpus, this.chunks));
  }

  /** Every document's score for each query (rows × numDocs, max cosine over its chunks), for features/margins. */
  scoreAll(queries: Int32Array): Float32Array {
    if (!this.chunkEmb) this.refresh();
    const D = this.enc.qTower.outDim;
    const Q = this.enc.encode(this.backend, this.enc.qTower, this.enc.queryInputs(this.corpus, queries));
    const C = this.chunks.doc.length;
    const N = this.corpus.docWords.length;
    const out = new Float32Array(queries.length * N);
    const block = 64;
    const S = new Float32Array(block * C);
    for (let r0 = 0; r0 < queries.length; r0 += block) {
      const m = Math.min(block, queries.length - r0);
      this.backend.gemm(false, true, m, C, D, 1, Q.subarray(r0 * D, (r0 + m) * D), this.chunkEmb!, 0, S.subarray(0, m * C));
      maxOverChunks(S, m, this.chunks.doc, N, out.subarray(r0 * N, (r0 + m) * N));
    }
    return out;
  }

  retrieve(queries: Int32Array, k: number): RankedLists {
    if (!this.chunkEmb) this.refresh();
    const D = this.enc.qTower.outDim;
    const Q = this.enc.encode(this.backend, this.enc.qTower, this.enc.queryInputs(this.corpus, queries));
    return rankDocuments(this.backend, Q, queries.length, this.chunkEmb!, this.chunks, this.corpus.docWords.length, D, k);
  }
}
