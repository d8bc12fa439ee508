/**
 * Text retrieval for the library API: train a dual encoder from in-memory (query, document) pairs, then encode
 * and search with new query texts. The pairs become an in-memory BEIR set (documents deduplicated by text,
 * a seeded tenth of the queries held out as test) and go through runTextExperiment, so the model and its
 * metrics (beside BM25) are exactly what `towerlab text` gives on a folder.
 */
import type { Backend } from '../compute/backend.ts';
import { getBackend, type BackendChoice } from '../compute/index.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MANIFEST, readTensorDir } from '../model/tensor-file.ts';
import { defaultBm25Options } from '../text/bm25.ts';
import type { BeirData, Qrels } from '../text/beir.ts';
import { TextCorpus } from '../text/corpus.ts';
import { DualEncoder, FORMAT as TEXT_FORMAT, rankDocuments, type DualEncoderConfig } from '../text/dual-encoder.ts';
import { defaultDualEncoder, defaultTowerOptim, runTextExperiment, type TextExperimentResult } from '../text/experiment.ts';
import type { TextMetrics } from '../text/metrics.ts';
import { defaultTextTrain, type TextTrainOptions } from '../text/train.ts';
import { loadRecipe, parseRecipe, type Recipe } from '../recipe/schema.ts';
import type { ChunkSet } from '../text/chunk.ts';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { Recommendation } from './model.ts';

export type TextDocument = string | { id: string | number; text: string; title?: string };

/** Query/document text pairs (each a relevant match), optionally with more documents to search among. */
export interface TextPairs {
  pairs: ReadonlyArray<{ query: string; document: TextDocument }>;
  documents?: readonly TextDocument[];
}

export interface TextTrainOptionsApi {
  data: TextPairs;
  /** Overrides of the dual encoder (tower 'boe' | 'transformer', dim, …) and of its training (epochs, batchSize, …). */
  model?: Partial<DualEncoderConfig>;
  train?: Partial<TextTrainOptions>;
  /**
   * The negatives recipe (any recipe: logQ, queue, same-tower, …; an object or a JSON file path through
   * `train()`); default: the text recipe (recipes/text.json).
   */
  recipe?: Recipe | Record<string, unknown> | string;
  /** Fraction of the queries held out for the test metrics (default 0.1; at least one query). */
  testFraction?: number;
  backend?: BackendChoice;
}

export function isTextPairs(d: unknown): d is TextPairs {
  return typeof d === 'object' && d !== null && !Array.isArray(d) && Array.isArray((d as TextPairs).pairs);
}

function toBeir(d: TextPairs, testFraction: number, seed: number): BeirData {
  const docIds: string[] = [];
  const titles: string[] = [];
  const texts: string[] = [];
  const byId = new Map<string, number>();
  const byText = new Map<string, number>();
  const addDoc = (doc: TextDocument, where: string): number => {
    const o = typeof doc === 'string' ? { id: undefined, text: doc, title: '' } : doc;
    if (typeof o !== 'object' || o === null || typeof o.text !== 'string') throw new UserError(`${where}: a document is a string or { id, text, title? }`);
    if (o.id !== undefined && byId.has(String(o.id))) return byId.get(String(o.id))!;
    const key = `${o.title ?? ''}\u0000${o.text}`;
    if (o.id === undefined && byText.has(key)) return byText.get(key)!;
    const i = docIds.length;
    const id = o.id !== undefined ? String(o.id) : `d${i}`;
    docIds.push(id);
    titles.push(o.title ?? '');
    texts.push(o.text);
    byId.set(id, i);
    byText.set(key, i);
    return i;
  };
  (d.documents ?? []).forEach((doc, i) => addDoc(doc, `documents[${i}]`));
  const queries: string[] = [];
  const qIndex = new Map<string, number>();
  const q: number[] = [];
  const dc: number[] = [];
  d.pairs.forEach((p, i) => {
    if (typeof p?.query !== 'string' || p.query.trim() === '') throw new UserError(`pairs[${i}].query: must be a non-empty string`);
    let qi = qIndex.get(p.query);
    if (qi === undefined) {
      qi = queries.length;
      queries.push(p.query);
      qIndex.set(p.query, qi);
    }
    q.push(qi);
    dc.push(addDoc(p.document, `pairs[${i}].document`));
  });
  if (queries.length < 2) throw new UserError('pairs: need at least 2 distinct queries (one is held out for the test metrics)');
  const nTest = Math.max(1, Math.round(queries.length * testFraction));
  const order = new Rng(seed).shuffle(Int32Array.from({ length: queries.length }, (_, i) => i));
  const isTest = new Uint8Array(queries.length);
  for (let k = 0; k < nTest; k++) isTest[order[k]] = 1;
  const part = (t: number): Qrels => {
    const rows = q.map((_, r) => r).filter((r) => isTest[q[r]] === t);
    return { query: Int32Array.from(rows, (r) => q[r]), doc: Int32Array.from(rows, (r) => dc[r]), grade: new Int32Array(rows.length).fill(1) };
  };
  return { dir: 'in-memory pairs', docIds, titles, texts, queryIds: queries.map((_, i) => `q${i}`), queries, qrels: new Map([['train', part(0)], ['test', part(1)]]) };
}

export class TextModel {
  private chunks: ChunkSet;
  private chunkEmb: Float32Array | null = null;
  private readonly docIndex: Map<string, number>;

  constructor(
    readonly encoder: DualEncoder,
    /** The searchable documents (and the tokenizer). */
    readonly corpus: TextCorpus,
    readonly backend: Backend,
    /** Test metrics of the dense model (and BM25 beside it) when trained here. */
    readonly metrics: Partial<Record<'dense' | 'bm25', TextMetrics>> = {},
  ) {
    this.chunks = corpus.chunks(encoder.config.window, encoder.config.stride);
    this.docIndex = new Map(corpus.data.docIds.map((id, i) => [id, i]));
  }

  get dim(): number {
    return this.encoder.qTower.outDim;
  }

  get itemIds(): readonly string[] {
    return this.corpus.data.docIds;
  }

  /** Query embeddings of texts, n×dim. */
  encodeQueries(texts: readonly string[]): Float32Array {
    const enc = this.encoder;
    const inputs = texts.map((t) => this.corpus.input(enc.kind, this.corpus.tokenizer.words(String(t)), enc.config.queryMaxLen));
    return enc.encode(this.backend, enc.qTower, inputs);
  }

  /** Document embeddings (of each document's first window of words), n×dim: known ids or new `{ text, title? }`. */
  encodeItems(docs: ReadonlyArray<string | number | { text: string; title?: string }>): Float32Array {
    const enc = this.encoder;
    const inputs = docs.map((d) => {
      let words: string[];
      if (typeof d === 'object') words = this.corpus.tokenizer.words(`${d.title ?? ''} ${d.text}`);
      else {
        const i = this.docIndex.get(String(d));
        if (i === undefined) throw new UserError(`unknown document '${d}'; embed a new one as { text }`);
        words = this.corpus.docWords[i];
      }
      return this.corpus.input(enc.kind, words, enc.config.window);
    });
    return enc.encode(this.backend, enc.dTower, inputs);
  }

  /** The k best documents for a query text (cosine, max over each document's chunks), best first. */
  recommend(query: string, k = 10): Recommendation[] {
    if (typeof query !== 'string') throw new UserError('recommend: a text model takes a query string');
    if (!Number.isInteger(k) || k < 1) throw new UserError(`recommend: k must be an integer >= 1, got ${k}`);
    this.chunkEmb ??= this.encoder.encode(this.backend, this.encoder.dTower, this.encoder.chunkInputs(this.corpus, this.chunks));
    const n = this.corpus.docWords.length;
    const lists = rankDocuments(this.backend, this.encodeQueries([query]), 1, this.chunkEmb, this.chunks, n, this.dim, Math.min(k, n));
    const out: Recommendation[] = [];
    for (let r = 0; r < lists.k; r++) if (lists.ids[r] >= 0) out.push({ item: this.corpus.data.docIds[lists.ids[r]], score: lists.scores[r] });
    return out;
  }

  /** Writes the dual encoder (the `towerlab text --out` format) with the documents, so load(dir) can search again. */
  save(dir: string): void {
    const d = this.corpus.data;
    this.encoder.save(dir, { metrics: this.metrics, documents: { ids: d.docIds, titles: d.titles, texts: d.texts } });
  }
}

export async function trainText(o: TextTrainOptionsApi): Promise<TextModel> {
  const model: DualEncoderConfig = { ...defaultDualEncoder, ...o.model };
  const train: TextTrainOptions = { ...defaultTextTrain, ...o.train };
  const r: TextExperimentResult = await runTextExperiment({
    beir: toBeir(o.data, o.testFraction ?? 0.1, train.seed),
    model,
    optim: defaultTowerOptim,
    train,
    recipe: o.recipe === undefined ? undefined : typeof o.recipe === 'string' ? loadRecipe(o.recipe) : parseRecipe(o.recipe),
    bm25: defaultBm25Options,
    rrfK: 60,
    weights: [1, 1],
    backend: o.backend,
  });
  return new TextModel(r.encoder, r.corpus, await getBackend(o.backend), { dense: r.metrics.dense, bm25: r.metrics.bm25 });
}

export function isTextModelDir(dir: string): boolean {
  try {
    return JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')).format === TEXT_FORMAT;
  } catch {
    return false;
  }
}

/** Opens a text dual encoder saved by TextModel.save (it keeps the documents to search). */
export async function loadTextModel(dir: string, options: { backend?: BackendChoice } = {}): Promise<TextModel> {
  const backend = options.backend;
  const manifest: Record<string, unknown> = readTensorDir(dir, TEXT_FORMAT, 1).manifest;
  const docs = manifest.documents as { ids: string[]; titles: string[]; texts: string[] } | undefined;
  if (!docs || !Array.isArray(docs.ids) || !Array.isArray(docs.texts) || docs.ids.length !== docs.texts.length) {
    throw new UserError(`${dir}: a text model without its documents (saved by 'towerlab text'?); only models saved by the library can search`);
  }
  const enc = DualEncoder.load(dir);
  const data: BeirData = { dir, docIds: docs.ids, titles: docs.titles ?? docs.ids.map(() => ''), texts: docs.texts, queryIds: [], queries: [], qrels: new Map() };
  return new TextModel(enc, new TextCorpus(data, enc.config.tokenizer), await getBackend(backend), (manifest.metrics ?? {}) as TextModel['metrics']);
}
