/**
 * Text training data in the engine's terms (src/model/encoder.ts, src/sampling/build.ts): a training row is a
 * (query, relevant document) pair of the train qrels; the catalogue is the corpus (item id = document index,
 * numItems = documents), the row's user key is its query id, so the recipe's masks remove another row's
 * positive that is the same document (maskSameItem) and the same query's other positives (maskSameUser), and
 * every source — in-batch, uniform, popularity, queue, mined — draws documents.
 *
 * Mined negatives: BM25's hard negatives are the recipe's `mined` source with `from: "bm25"` — per query, a
 * pool of its best BM25-ranked documents minus its positives (src/sampling/hard-negative-filter.ts selectHardNegatives); each
 * row takes `n` of its query's pool (`sample: "random"`: a fresh draw every step). `rankRange [a, b)` sets the
 * pool: the b − a best non-positives from BM25 rank a on (default text recipe: [0, 20], as the text trainer's
 * hard-pool 20). Pools mined elsewhere (src/text/mine-rounds.ts: a previous dense round, an ensemble) are
 * passed in the same way under their own name; a JSONL file of `towerlab mine` (user = query id, items =
 * document ids) works as for the recommenders.
 *
 * Self-supervised pre-training pairs (ICT, title → body) have no query id: their rows carry user key −1 (no
 * same-query masking, no mined pool) and bring their positives' inputs with the batch.
 */
import type { EncoderBatch } from '../model/encoder.ts';
import type { MinedSpec } from '../sampling/mined.ts';
import { selectHardNegatives } from '../sampling/hard-negative-filter.ts';
import type { Rng } from '../util/rng.ts';
import { UserError } from '../util/errors.ts';
import type { Qrels } from './beir.ts';
import { Bm25Index } from './bm25.ts';
import { sentences } from './corpus.ts';
import type { TextBatchInput, TextDocuments } from './text-pair.ts';

export type PretrainKind = 'ict' | 'title' | 'none';

/** Rows that make batches: the supervised pairs, or one epoch of pre-training pairs. */
export interface TextRows {
  /** Query id of each row (−1 for pre-training pairs). */
  readonly users: Int32Array;
  /** Positive document of each row. */
  readonly items: Int32Array;
  batch(rows: ArrayLike<number>): EncoderBatch<TextBatchInput>;
}

/** The supervised pairs of a qrels split (grade > 0), with everything buildSources needs about them. */
export class TextTrainingSet implements TextRows {
  readonly users: Int32Array;
  readonly items: Int32Array;
  /** Query → its positive documents. */
  readonly relevant = new Map<number, Map<number, number>>();
  private readonly pools = new Map<string, Map<number, Int32Array>>();

  constructor(
    readonly docs: TextDocuments,
    train: Qrels,
    private bm25: Bm25Index | null = null,
  ) {
    const q: number[] = [];
    const d: number[] = [];
    for (let i = 0; i < train.query.length; i++) {
      if (train.grade[i] <= 0) continue;
      q.push(train.query[i]);
      d.push(train.doc[i]);
      if (!this.relevant.has(train.query[i])) this.relevant.set(train.query[i], new Map());
      this.relevant.get(train.query[i])!.set(train.doc[i], train.grade[i]);
    }
    this.users = Int32Array.from(q);
    this.items = Int32Array.from(d);
  }

  get numItems(): number {
    return this.docs.numDocs;
  }

  batch(rows: ArrayLike<number>): EncoderBatch<TextBatchInput> {
    const users = Int32Array.from(rows, (r) => this.users[r]);
    return { input: { queries: Array.from(users, (u) => this.docs.queryInput(u)), positives: null }, rows: users.length, users, items: Int32Array.from(rows, (r) => this.items[r]) };
  }

  /** Adds hard-negative pools under a name a recipe's mined source can use as `from` (e.g. a dense round's). */
  addPools(name: string, pools: Map<number, Int32Array>): void {
    this.pools.set(name, pools);
  }

  /** What buildSources needs from text data (src/sampling/build.ts SourceContext). */
  sourceContext(): { numItems: number; trainItems: Int32Array; trainUsers: Int32Array; userIds: string[]; itemIds: string[]; namedPools: (from: string, spec: MinedSpec, field: string) => Map<number, Int32Array> | null } {
    const data = this.docs.corpus.data;
    return {
      numItems: this.numItems,
      trainItems: this.items,
      trainUsers: this.users,
      userIds: data.queryIds,
      itemIds: data.docIds,
      namedPools: (from, spec, field) => this.namedPools(from, spec, field),
    };
  }

  private namedPools(from: string, spec: MinedSpec, field: string): Map<number, Int32Array> | null {
    if (from === 'online') throw new UserError(`recipe: field '${field}': online mining is not available for text models (mine from 'bm25', pools of a previous round, or a \`towerlab mine\` file)`);
    const given = this.pools.get(from);
    if (given) return given;
    if (from !== 'bm25') return null;
    // No index given: BM25 over the corpus with the default parameters (built once, on first use).
    this.bm25 ??= new Bm25Index(this.docs.corpus.docWords);
    const key = `bm25:${spec.rankRange[0]}:${spec.rankRange[1]}`;
    let pools = this.pools.get(key);
    if (!pools) this.pools.set(key, (pools = this.bm25Pools(spec.rankRange[0], spec.rankRange[1])));
    return pools;
  }

  /** Each training query's BM25 top documents minus its positives: the (end − start) best from rank start on. */
  bm25Pools(start: number, end: number): Map<number, Int32Array> {
    const n = end - start;
    const qs = Int32Array.from(this.relevant.keys());
    const words = this.docs.corpus.queryWords;
    const lists = this.bm25!.search(Array.from(qs, (q) => words[q]), end + 10);
    const neg = selectHardNegatives(lists, (r) => Array.from(this.relevant.get(qs[r])!.keys()), null, { n, rankStart: start });
    const out = new Map<number, Int32Array>();
    for (let r = 0; r < qs.length; r++) out.set(qs[r], Int32Array.from(Array.from(neg.ids.subarray(r * neg.k, (r + 1) * neg.k)).filter((d) => d >= 0)));
    return out;
  }
}

/**
 * One epoch of self-supervised pairs over the corpus (a fresh random draw each call):
 *  - 'ict' (inverse cloze task, Lee et al. 2019): a random sentence of a document is the query, the rest of the
 *    document (title included) the positive; the sentence is left in its context 10 % of the time so the model
 *    also learns plain lexical matching;
 *  - 'title': a document's title is the query, a random window of its body the positive.
 */
export class PretrainRows implements TextRows {
  readonly users: Int32Array;
  readonly items: Int32Array;
  readonly queries: Int32Array[] = [];
  readonly positives: Int32Array[] = [];

  constructor(docs: TextDocuments, kind: Exclude<PretrainKind, 'none'>, rng: Rng, sentenceCache: SentenceCache) {
    const c = docs.corpus;
    const enc = docs.enc;
    const win = enc.config.window;
    const qIn = (w: string[]) => c.input(enc.kind, w, enc.config.queryMaxLen);
    const doc: number[] = [];
    if (kind === 'title') {
      for (let d = 0; d < c.docWords.length; d++) {
        if (!c.titleWords[d].length || !c.bodyWords[d].length) continue;
        const body = c.bodyWords[d];
        const lo = body.length > win ? rng.int(body.length - win + 1) : 0;
        this.queries.push(qIn(c.titleWords[d]));
        this.positives.push(c.input(enc.kind, body, win, lo, body.length));
        doc.push(d);
      }
    } else {
      const S_all = sentenceCache.get(docs);
      for (let d = 0; d < c.docWords.length; d++) {
        const S = S_all[d];
        if (S.length < 2) continue;
        const i = rng.int(S.length);
        const keep = rng.next() < 0.1;
        const ctx = c.titleWords[d].concat(...S.filter((_, j) => keep || j !== i));
        // A window of the context that contains the sentence's neighbourhood: start a little before it.
        let before = 0;
        for (let j = 0; j < i; j++) before += S[j].length;
        const lo = Math.max(0, Math.min(ctx.length - win, c.titleWords[d].length + before - (win >> 1)));
        this.queries.push(qIn(S[i]));
        this.positives.push(c.input(enc.kind, ctx, win, lo, ctx.length));
        doc.push(d);
      }
    }
    this.items = Int32Array.from(doc);
    this.users = new Int32Array(doc.length).fill(-1);
  }

  batch(rows: ArrayLike<number>): EncoderBatch<TextBatchInput> {
    const idx = Array.from(rows);
    return {
      input: { queries: idx.map((r) => this.queries[r]), positives: idx.map((r) => this.positives[r]) },
      rows: idx.length,
      users: Int32Array.from(idx, (r) => this.users[r]),
      items: Int32Array.from(idx, (r) => this.items[r]),
    };
  }
}

/** Each document's sentences as word lists (≥ 4 words), computed once per corpus for ICT. */
export class SentenceCache {
  private words: string[][][] | null = null;
  get(docs: TextDocuments): string[][][] {
    const c = docs.corpus;
    this.words ??= c.data.texts.map((t) => sentences(t).map((s) => c.tokenizer.words(s)).filter((w) => w.length >= 4));
    return this.words;
  }
}
