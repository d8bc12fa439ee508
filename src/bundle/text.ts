/**
 * Text dual encoders in serving bundles. A saved text model (src/text/dual-encoder.ts, `towerlab text --out`
 * or the library's TextModel.save) is exported through the ordinary bundle writer, like sequence models
 * (seq.ts), by describing it as a two-tower model of bare tables:
 *   items:      the corpus's chunks (a document of n words is cut into window/stride spans, text/chunk.ts);
 *               item embeddings = the document tower's chunk embeddings, indexed like any item table;
 *   users:      none (a text query is not a known user).
 * What a text query needs travels along: the query tower's tensors (manifest `model.text`, arrays `text.q.*`
 * in weights/text-query.bin), its tokenizer settings (hashed: no vocabulary file), each chunk's document
 * (data/text.chunk-doc.bin) and the documents' ids and titles (vocab/documents.json). `POST /search` embeds
 * the query text, retrieves the best chunks (index or exact) and scores a document by its best chunk (MaxP,
 * as at evaluation time: text/dual-encoder.ts rankDocuments).
 */
import { existsSync } from 'node:fs';
import { z } from 'zod';
import type { Backend } from '../compute/backend.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import { MANIFEST, readTensorDir } from '../model/tensor-file.ts';
import { TwoTowerModel } from '../model/two-tower.ts';
import { loadBeir, type BeirData } from '../text/beir.ts';
import { TextCorpus } from '../text/corpus.ts';
import { DualEncoder, FORMAT as TEXT_FORMAT, type DualEncoderConfig } from '../text/dual-encoder.ts';
import { HashedTokenizer } from '../text/tokenize.ts';
import type { TowerOptim } from '../text/tower.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';

export const TEXT_FILE = 'weights/text-query.bin';
export const TEXT_PREFIX = 'text.q.';
export const CHUNK_DOC = 'text.chunk.doc';
export const CHUNK_DOC_FILE = 'data/text.chunk-doc.bin';
export const DOCUMENTS_FILE = 'vocab/documents.json';

/**
 * What the manifest records about the text model. Bounds keep a hostile manifest from making the server
 * allocate gigabytes before the (checksummed, size-checked) tensors are compared with the configuration.
 */
export const textManifestSchema = z.object({
  config: z.object({
    tower: z.enum(['boe', 'transformer']),
    shared: z.boolean(),
    dim: z.number().int().min(1).max(4096),
    proj: z.number().int().min(0).max(4096),
    pooling: z.enum(['mean', 'sqrt']),
    heads: z.number().int().min(1).max(64),
    blocks: z.number().int().min(0).max(64),
    window: z.number().int().min(1).max(1 << 16),
    stride: z.number().int().min(1).max(1 << 16),
    queryMaxLen: z.number().int().min(1).max(1 << 16),
    tokenizer: z.object({
      buckets: z.number().int().min(1).max(1 << 24),
      bigrams: z.boolean(),
      charNgrams: z.array(z.number().int().min(1).max(16)).max(8),
      stopwords: z.boolean(),
      stem: z.boolean(),
    }),
    seed: z.number(),
  }),
  optim: z.object({ lrSparse: z.number(), lrDense: z.number() }),
  documents: z.number().int().nonnegative(),
  chunks: z.number().int().positive(),
  /** Query-tower tensor names (without the `text.q.` prefix) stored in weights/text-query.bin, in order. */
  tensors: z.array(z.string()),
});
export type TextManifest = z.infer<typeof textManifestSchema>;

/** What the bundle writer needs beyond a two-tower model's artifacts. */
export interface TextBundlePart {
  manifest: TextManifest;
  /** The query tower's tensors, names prefixed with TEXT_PREFIX. */
  arrays: Array<[string, Float32Array]>;
  chunkDoc: Int32Array;
  docIds: string[];
  titles: string[];
  /** Chunk embeddings (chunks × dim, unit rows): the item table to store and index. */
  itemEmbeddings(backend: Backend): Float32Array;
  /** Query embeddings for measuring the index recall (n × dim): each a sampled document's opening words. */
  recallQueries(backend: Backend, n: number): Float32Array;
}

/** The folder of a saved text dual encoder, or null. */
export function textModelDir(dir: string): string | null {
  const p = join(dir, MANIFEST);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8'))?.format === TEXT_FORMAT ? dir : null;
  } catch {
    return null; // let the loader name the problem
  }
}

/**
 * Opens a saved text model with the corpus it searches: the documents saved with it (library models), else
 * `corpus` (a BEIR folder), else the BEIR folder it was trained on (`towerlab text` records it).
 */
export function openTextModel(dir: string, corpus?: string): { encoder: DualEncoder; corpus: TextCorpus; meta: Record<string, unknown> } {
  const { manifest } = readTensorDir(dir, TEXT_FORMAT, 1);
  const encoder = DualEncoder.load(dir);
  const docs = manifest.documents as { ids: string[]; titles?: string[]; texts: string[] } | undefined;
  let data: BeirData;
  if (corpus === undefined && docs && Array.isArray(docs.ids) && Array.isArray(docs.texts) && docs.ids.length === docs.texts.length) {
    data = { dir, docIds: docs.ids.map(String), titles: Array.isArray(docs.titles) ? docs.titles.map(String) : docs.ids.map(() => ''), texts: docs.texts.map(String), queryIds: [], queries: [], qrels: new Map() };
  } else {
    const from = corpus ?? (typeof manifest.data === 'string' ? manifest.data : undefined);
    if (from === undefined) throw new UserError(`${dir}: the text model carries no documents: give the corpus to search with --corpus <BEIR folder>`);
    if (!existsSync(from)) throw new UserError(`${from}: no such corpus folder${corpus === undefined ? ` (recorded in ${join(dir, MANIFEST)} as the training data; give --corpus <BEIR folder>)` : ''}`);
    data = loadBeir(from, ['train', 'dev', 'test']);
  }
  if (!data.docIds.length) throw new UserError(`${dir}: the corpus has no documents`);
  return { encoder, corpus: new TextCorpus(data, encoder.config.tokenizer), meta: manifest };
}

/** A text model and its corpus as bundle-writer input (a two-tower model of bare tables plus the text part). */
export function textAsArtifacts(enc: DualEncoder, corpus: TextCorpus, meta: Record<string, unknown> = {}): ModelArtifacts & { text: TextBundlePart } {
  const cfg = enc.config;
  const chunks = corpus.chunks(cfg.window, cfg.stride);
  const C = chunks.doc.length;
  const d = enc.qTower.outDim;
  const bare = (vocabSize: number) => ({ vocabSize, idDim: d, features: [], mlp: [] });
  const model = new TwoTowerModel({ user: bare(0), item: bare(C), sparseOptimizer: 'adagrad', sparseLr: 0, denseLr: 0, seed: 0 });
  const docIds = corpus.data.docIds;
  const titles = corpus.data.titles;
  const within = new Int32Array(docIds.length);
  const itemIds = Array.from(chunks.doc, (doc) => `${docIds[doc]}#${within[doc]++}`);
  const tensors = enc.qTower.tensors();
  return {
    model,
    userIds: [],
    itemIds,
    userFeatures: [],
    itemFeatures: [],
    itemCounts: new Float32Array(C),
    seen: { rows: 0, offsets: new Int32Array(1), cols: new Int32Array(0) },
    meta,
    itemNames: Array.from(chunks.doc, (doc) => titles[doc] || null),
    text: {
      manifest: { config: cfg, optim: enc.optim, documents: docIds.length, chunks: C, tensors: tensors.map(([n]) => n) },
      arrays: tensors.map(([n, t]) => [TEXT_PREFIX + n, t]),
      chunkDoc: chunks.doc,
      docIds,
      titles,
      itemEmbeddings: (backend) => enc.encode(backend, enc.dTower, enc.chunkInputs(corpus, chunks)),
      recallQueries: (backend, n) => {
        const count = Math.min(n, docIds.length);
        const rng = new Rng(1);
        const docs = Array.from({ length: count }, (_, i) => (count === docIds.length ? i : rng.int(docIds.length)));
        return enc.encode(backend, enc.qTower, docs.map((doc) => corpus.input(enc.kind, corpus.docWords[doc], cfg.queryMaxLen)));
      },
    },
  };
}

/** The query side of a text bundle: tokenizer + query tower, rebuilt from the bundle's arrays. */
export class TextQueryTower {
  private readonly enc: DualEncoder;
  private readonly tok: HashedTokenizer;

  constructor(
    readonly m: TextManifest,
    get: (name: string) => Float32Array | undefined,
    where: string,
  ) {
    // The configuration sizes the tower's tables, allocated before the stored tensors are compared with them:
    // it must not claim more weights than the (size-checked, checksummed) file holds.
    const c = m.config;
    const stored_ = m.tensors.reduce((s, n) => s + (get(TEXT_PREFIX + n)?.length ?? 0), 0);
    const least = c.tokenizer.buckets * c.dim + (c.tower === 'transformer' ? Math.max(c.window, c.queryMaxLen) * c.dim + c.blocks * 4 * c.dim * c.dim : c.proj * c.dim);
    if (least > stored_) throw new UserError(`${where}: the text model's configuration implies at least ${least} weights, ${TEXT_FILE} holds ${stored_}`);
    // One tower only (shared): the document tower is not needed to answer queries.
    this.enc = new DualEncoder({ ...(m.config as DualEncoderConfig), shared: true }, m.optim as TowerOptim);
    const stored = new Set(m.tensors);
    const arrays = new Map<string, Float32Array>();
    for (const [name, target] of this.enc.qTower.tensors()) {
      const src = stored.has(name) ? get(TEXT_PREFIX + name) : undefined;
      if (!src) throw new UserError(`${where}: text query tower tensor '${name}' missing`);
      if (src.length !== target.length) throw new UserError(`${where}: text query tower tensor '${name}' has ${src.length} values, the model implies ${target.length}`);
      arrays.set(name, src);
    }
    this.enc.qTower.load(arrays);
    this.tok = new HashedTokenizer(m.config.tokenizer);
  }

  get dim(): number {
    return this.enc.qTower.outDim;
  }

  /** The query embedding of `text` into `out` (unit norm); false when the text has no word the tokenizer keeps. */
  embed(backend: Backend, text: string, out: Float32Array): boolean {
    const w = this.tok.words(text);
    if (!w.length) return false;
    const hi = Math.min(w.length, this.m.config.queryMaxLen);
    const input = this.enc.kind === 'features' ? this.tok.featuresOfWords(w, 0, hi) : this.tok.tokensOfWords(w, 0, hi);
    if (!input.length) return false;
    out.set(this.enc.encode(backend, this.enc.qTower, [input]));
    return true;
  }
}

/** A text bundle's query side as served: the tower, and chunk → document → id/title. */
export interface TextServing {
  tower: TextQueryTower;
  chunkDoc: Int32Array;
  docIds: string[];
  titles: string[];
}

/** Checks and parses vocab/documents.json and the chunk → document array against the manifest. */
export function textServing(m: TextManifest, chunkDoc: Int32Array, documents: unknown, get: (name: string) => Float32Array | undefined, where: string): TextServing {
  const docs = documents as { ids?: unknown; titles?: unknown } | null;
  if (!docs || !Array.isArray(docs.ids) || docs.ids.length !== m.documents || !Array.isArray(docs.titles) || docs.titles.length !== m.documents) {
    throw new UserError(`${where}: ${DOCUMENTS_FILE} must hold 'ids' and 'titles' of ${m.documents} documents`);
  }
  if (chunkDoc.length !== m.chunks) throw new UserError(`${where}: array '${CHUNK_DOC}' has ${chunkDoc.length} values, the model ${m.chunks} chunks`);
  for (let c = 0; c < chunkDoc.length; c++) if (chunkDoc[c] < 0 || chunkDoc[c] >= m.documents) throw new UserError(`${where}: array '${CHUNK_DOC}' holds document index ${chunkDoc[c]} out of range`);
  return { tower: new TextQueryTower(m, get, where), chunkDoc, docIds: docs.ids.map(String), titles: docs.titles.map((t) => (typeof t === 'string' ? t : '')) };
}
