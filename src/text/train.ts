/**
 * Training of a text dual encoder: optional self-supervised pre-training on the corpus itself, then the
 * supervised (query, relevant document) pairs of the train qrels.
 *  - 'ict' (inverse cloze task, Lee et al. 2019): a random sentence of a document is the query, the rest of
 *    the document (title included) the positive; the sentence is left in its context 10 % of the time so the
 *    model also learns plain lexical matching.
 *  - 'title': a document's title is the query, a random chunk of its body the positive.
 * Hard negatives (optional): per training query, a pool of BM25's top documents minus its positives
 * (selectHardNegatives of src/mine/filter.ts); each step draws `hardNegatives` of them per query.
 * A positive or negative document is represented by a random one of its chunks.
 */
import type { Backend } from '../compute/backend.ts';
import { selectHardNegatives } from '../mine/filter.ts';
import { Rng } from '../util/rng.ts';
import type { Qrels } from './beir.ts';
import type { Bm25Index } from './bm25.ts';
import type { ChunkSet } from './chunk.ts';
import { sentences, type TextCorpus } from './corpus.ts';
import type { DualEncoder } from './dual-encoder.ts';

export type PretrainKind = 'ict' | 'title' | 'none';

export interface TextTrainOptions {
  epochs: number;
  batchSize: number;
  temperature: number;
  pretrain: PretrainKind;
  pretrainEpochs: number;
  /** Hard negatives per query per step (0 = in-batch negatives only). */
  hardNegatives: number;
  /** Size of each query's hard-negative pool (BM25 top-ranked non-positives). */
  hardPool: number;
  seed: number;
  log?: (line: string) => void;
}

export const defaultTextTrain: TextTrainOptions = {
  epochs: 10,
  batchSize: 64,
  temperature: 0.05,
  pretrain: 'none',
  pretrainEpochs: 2,
  hardNegatives: 0,
  hardPool: 20,
  seed: 1,
};

interface Pair {
  q: Int32Array;
  pos: Int32Array;
  doc: number;
  query: number;
}

export interface TextTrainResult {
  steps: number;
  seconds: number;
  pretrainSeconds: number;
  /** Mean loss per epoch, pre-training epochs first. */
  history: Array<{ phase: 'pretrain' | 'train'; epoch: number; loss: number }>;
}

function shuffle<T>(a: T[], rng: Rng): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export class TextTrainer {
  readonly chunks: ChunkSet;
  private readonly firstChunk: Int32Array;
  private readonly rng: Rng;
  private sentenceWords: string[][][] | null = null;

  constructor(
    readonly b: Backend,
    readonly enc: DualEncoder,
    readonly corpus: TextCorpus,
    readonly opts: TextTrainOptions,
  ) {
    this.chunks = corpus.chunks(enc.config.window, enc.config.stride);
    const n = corpus.docWords.length;
    this.firstChunk = new Int32Array(n + 1);
    for (const d of this.chunks.doc) this.firstChunk[d + 1]++;
    for (let d = 0; d < n; d++) this.firstChunk[d + 1] += this.firstChunk[d];
    this.rng = new Rng(opts.seed * 7 + 3);
  }

  /** A random chunk of document d as a tower input. */
  docInput(d: number): Int32Array {
    const c0 = this.firstChunk[d];
    const c = c0 + this.rng.int(this.firstChunk[d + 1] - c0);
    return this.corpus.input(this.enc.kind, this.corpus.docWords[d], this.enc.config.window, this.chunks.lo[c], this.chunks.hi[c]);
  }

  private queryInput(words: string[]): Int32Array {
    return this.corpus.input(this.enc.kind, words, this.enc.config.queryMaxLen);
  }

  /** One epoch of self-supervised pairs (a fresh random draw each call). */
  pretrainPairs(kind: PretrainKind): Pair[] {
    const c = this.corpus;
    const out: Pair[] = [];
    const win = this.enc.config.window;
    if (kind === 'title') {
      for (let d = 0; d < c.docWords.length; d++) {
        if (!c.titleWords[d].length || !c.bodyWords[d].length) continue;
        const body = c.bodyWords[d];
        const lo = body.length > win ? this.rng.int(body.length - win + 1) : 0;
        out.push({ q: this.queryInput(c.titleWords[d]), pos: c.input(this.enc.kind, body, win, lo, body.length), doc: d, query: -1 });
      }
    } else if (kind === 'ict') {
      this.sentenceWords ??= c.data.texts.map((t) => sentences(t).map((s) => c.tokenizer.words(s)).filter((w) => w.length >= 4));
      for (let d = 0; d < c.docWords.length; d++) {
        const S = this.sentenceWords[d];
        if (S.length < 2) continue;
        const i = this.rng.int(S.length);
        const keep = this.rng.next() < 0.1;
        const ctx = c.titleWords[d].concat(...S.filter((_, j) => keep || j !== i));
        // A window of the context that contains the sentence's neighbourhood: start a little before it.
        let before = 0;
        for (let j = 0; j < i; j++) before += S[j].length;
        const lo = Math.max(0, Math.min(ctx.length - win, c.titleWords[d].length + before - (win >> 1)));
        out.push({ q: this.queryInput(S[i]), pos: c.input(this.enc.kind, ctx, win, lo, ctx.length), doc: d, query: -1 });
      }
    }
    return out;
  }

  private epoch(pairs: Pair[], negPool: Map<number, Int32Array> | null): number {
    const B = this.opts.batchSize;
    const H = negPool ? this.opts.hardNegatives : 0;
    shuffle(pairs, this.rng);
    let total = 0;
    let steps = 0;
    for (let i = 0; i + 1 < pairs.length; i += B) {
      const part = pairs.slice(i, i + B);
      const q = part.map((p) => p.q);
      const c = part.map((p) => p.pos);
      const colDoc = part.map((p) => p.doc);
      const colQuery = part.map((p) => p.query);
      if (H > 0) {
        for (const p of part) {
          const pool = negPool!.get(p.query);
          if (!pool || !pool.length) continue;
          for (let h = 0; h < H; h++) {
            const d = pool[this.rng.int(pool.length)];
            c.push(this.docInput(d));
            colDoc.push(d);
            colQuery.push(-1);
          }
        }
      }
      total += this.enc.step(
        this.b, q, c,
        Int32Array.from(part, (p) => p.doc), Int32Array.from(colDoc),
        Int32Array.from(part, (p) => p.query), Int32Array.from(colQuery),
        this.opts.temperature,
      );
      steps++;
    }
    this.steps += steps;
    return total / Math.max(1, steps);
  }

  steps = 0;

  /** BM25 hard-negative pools of the training queries (their positives removed). */
  minePools(bm25: Bm25Index, rel: Map<number, Map<number, number>>): Map<number, Int32Array> {
    const qs = Int32Array.from(rel.keys());
    const lists = bm25.search(Array.from(qs, (q) => this.corpus.queryWords[q]), this.opts.hardPool + 10);
    const neg = selectHardNegatives(lists, (r) => Array.from(rel.get(qs[r])!.keys()), null, { n: this.opts.hardPool });
    const out = new Map<number, Int32Array>();
    for (let r = 0; r < qs.length; r++) {
      const row = Array.from(neg.ids.subarray(r * neg.k, (r + 1) * neg.k)).filter((d) => d >= 0);
      out.set(qs[r], Int32Array.from(row));
    }
    return out;
  }

  /**
   * pools: hard-negative pools mined elsewhere (e.g. from an ensemble, src/text/mine-rounds.ts) — used instead
   * of BM25's when given (and hardNegatives > 0).
   */
  run(train: Qrels, bm25: Bm25Index | null, pools: Map<number, Int32Array> | null = null): TextTrainResult {
    const o = this.opts;
    const history: TextTrainResult['history'] = [];
    const t0 = performance.now();
    if (o.pretrain !== 'none') {
      for (let e = 1; e <= o.pretrainEpochs; e++) {
        const loss = this.epoch(this.pretrainPairs(o.pretrain), null);
        history.push({ phase: 'pretrain', epoch: e, loss });
        o.log?.(`pretrain (${o.pretrain}) epoch ${e}/${o.pretrainEpochs}: loss ${loss.toFixed(4)}`);
      }
    }
    const t1 = performance.now();
    const rel = new Map<number, Map<number, number>>();
    const base: Array<{ query: number; doc: number }> = [];
    for (let i = 0; i < train.query.length; i++) {
      if (train.grade[i] <= 0) continue;
      base.push({ query: train.query[i], doc: train.doc[i] });
      if (!rel.has(train.query[i])) rel.set(train.query[i], new Map());
      rel.get(train.query[i])!.set(train.doc[i], train.grade[i]);
    }
    if (o.hardNegatives > 0 && !pools && bm25) pools = this.minePools(bm25, rel);
    if (o.hardNegatives <= 0) pools = null;
    for (let e = 1; e <= o.epochs; e++) {
      const pairs: Pair[] = base.map((p) => ({ q: this.queryInput(this.corpus.queryWords[p.query]), pos: this.docInput(p.doc), doc: p.doc, query: p.query }));
      const loss = this.epoch(pairs, pools);
      history.push({ phase: 'train', epoch: e, loss });
      o.log?.(`train epoch ${e}/${o.epochs}: loss ${loss.toFixed(4)}`);
    }
    const t2 = performance.now();
    return { steps: this.steps, seconds: (t2 - t0) / 1000, pretrainSeconds: (t1 - t0) / 1000, history };
  }
}
