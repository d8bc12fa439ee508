/**
 * The text dual encoder as an EncoderPair (src/model/encoder.ts), so the one contrastive step trains it with
 * any negatives recipe: rows are queries (the batch's `users` are query ids), catalogue items are the corpus
 * documents (item id = document index; a row's positive is its relevant document).
 *
 * A document's training input is one of its chunks (window/stride over words), drawn at random each time the
 * document becomes a column, as the text trainer always did: a long abstract shows the model all its parts
 * over the epochs. A batch may bring its own positive inputs (self-supervised pre-training pairs: ICT's
 * "rest of the document", title → body); they replace the chunk of column r when that column is row r's
 * positive (the step lays the B positives out first). Inference embeddings (embedItems, the momentum copy)
 * use the chunk a document last trained with in this pair's most recent forward, else its first chunk
 * (title + start), so a queued positive's momentum key is the view its query was trained against.
 *
 * Shared tower: queries and documents go through ONE packed forward and backward per step (one optimiser
 * step per batch, as DualEncoder.step did); two towers otherwise.
 */
import type { Backend } from '../compute/backend.ts';
import type { EncoderBatch, EncoderPair, MomentumItems } from '../model/encoder.ts';
import { Rng } from '../util/rng.ts';
import { restoreInto, type NamedArray, type StateArrays } from '../util/state.ts';
import type { ChunkSet } from './chunk.ts';
import type { TextCorpus } from './corpus.ts';
import type { DualEncoder } from './dual-encoder.ts';
import { packTexts, type TextTower } from './tower.ts';

/** What a text batch carries besides the ids: the rows' query inputs, and optionally their positives' inputs. */
export interface TextBatchInput {
  /** Row r's query as tower input (hashed features or tokens; see TextCorpus.input). */
  queries: Int32Array[];
  /** Row r's positive as tower input (pre-training pairs), or null: a random chunk of document items[r]. */
  positives: Int32Array[] | null;
}

/** The corpus side of a text pair: each document's chunks as tower inputs. */
export class TextDocuments {
  readonly chunks: ChunkSet;
  /** Chunks of document d are [firstChunk[d], firstChunk[d + 1]). */
  readonly firstChunk: Int32Array;
  readonly numDocs: number;

  constructor(
    readonly corpus: TextCorpus,
    readonly enc: DualEncoder,
  ) {
    this.chunks = corpus.chunks(enc.config.window, enc.config.stride);
    const n = (this.numDocs = corpus.docWords.length);
    this.firstChunk = new Int32Array(n + 1);
    for (const d of this.chunks.doc) this.firstChunk[d + 1]++;
    for (let d = 0; d < n; d++) this.firstChunk[d + 1] += this.firstChunk[d];
  }

  /** Chunk c (a global chunk index) as a document-tower input. */
  chunkInput(c: number): Int32Array {
    const d = this.chunks.doc[c];
    return this.corpus.input(this.enc.kind, this.corpus.docWords[d], this.enc.config.window, this.chunks.lo[c], this.chunks.hi[c]);
  }

  randomChunk(d: number, rng: Rng): number {
    const c0 = this.firstChunk[d];
    return c0 + rng.int(this.firstChunk[d + 1] - c0);
  }

  /** Query q (an index into corpus.queryWords) as a query-tower input. */
  queryInput(q: number): Int32Array {
    return this.corpus.input(this.enc.kind, this.corpus.queryWords[q], this.enc.config.queryMaxLen);
  }
}

/** Embeds inputs through a tower in inference mode, `batch` at a time, into out (n × outDim). */
function encodeInto(b: Backend, tower: TextTower, inputs: Int32Array[], out: Float32Array, rng: Rng, batch = 256): void {
  const D = tower.outDim;
  for (let i = 0; i < inputs.length; i += batch) {
    const part = inputs.slice(i, i + batch);
    out.set(tower.forward(b, packTexts(part), false, rng).subarray(0, part.length * D), i * D);
  }
}

export class TextEncoderPair implements EncoderPair<TextBatchInput> {
  readonly dim: number;
  readonly numItems: number;
  readonly docs: TextDocuments;
  /** The chunk each document was last a column with (−1 = never yet): the view embedItems encodes. */
  readonly lastChunk: Int32Array;
  private pendingRows = -1;
  private dY = new Float32Array(0);

  constructor(
    readonly enc: DualEncoder,
    corpus: TextCorpus,
  ) {
    this.docs = new TextDocuments(corpus, enc);
    this.dim = enc.qTower.outDim;
    this.numItems = this.docs.numDocs;
    this.lastChunk = new Int32Array(this.numItems).fill(-1);
  }

  get shared(): boolean {
    return this.enc.config.shared;
  }

  /** Column inputs of `ids`: the batch's own positive inputs where given, else a random chunk (recorded). */
  private columnInputs(batch: EncoderBatch<TextBatchInput>, ids: Int32Array, rng: Rng): Int32Array[] {
    const pos = batch.input.positives;
    return (this.lastColumnInputs = Array.from(ids, (d, j) => {
      if (pos && j < batch.rows && d === batch.items[j]) return pos[j];
      const c = this.docs.randomChunk(d, rng);
      this.lastChunk[d] = c;
      return this.docs.chunkInput(c);
    }));
  }

  /** The column inputs of the last forward (for tests and diagnostics). */
  lastColumnInputs: Int32Array[] = [];

  forward(b: Backend, batch: EncoderBatch<TextBatchInput>, ids: Int32Array, rng: Rng): { q: Float32Array; c: Float32Array } {
    const R = batch.rows;
    const D = this.dim;
    const qIn = batch.input.queries;
    if (qIn.length < R) throw new RangeError(`text pair: batch has ${R} rows but ${qIn.length} query inputs`);
    const cIn = this.columnInputs(batch, ids, rng);
    this.pendingRows = R;
    if (this.shared) {
      const Y = this.enc.qTower.forward(b, packTexts([...qIn.slice(0, R), ...cIn]), true, rng);
      return { q: Y.subarray(0, R * D), c: Y.subarray(R * D, (R + ids.length) * D) };
    }
    const q = this.enc.qTower.forward(b, packTexts(qIn.slice(0, R)), true, rng).subarray(0, R * D);
    const c = this.enc.dTower.forward(b, packTexts(cIn), true, rng).subarray(0, ids.length * D);
    return { q, c };
  }

  backward(b: Backend, dq: Float32Array, dc: Float32Array): void {
    if (this.pendingRows < 0) throw new Error('text pair: backward without a forward');
    const D = this.dim;
    const R = this.pendingRows;
    this.pendingRows = -1;
    if (this.shared) {
      const n = R * D + dc.length;
      if (this.dY.length < n) this.dY = new Float32Array(n);
      const dY = this.dY.subarray(0, n);
      dY.set(dq.subarray(0, R * D));
      dY.set(dc, R * D);
      this.enc.qTower.backward(b, dY);
    } else {
      this.enc.qTower.backward(b, dq);
      this.enc.dTower.backward(b, dc);
    }
  }

  step(b: Backend): void {
    this.enc.qTower.step(b);
    if (!this.shared) this.enc.dTower.step(b);
  }

  setLrScale(factor: number): void {
    this.enc.qTower.setLrScale(factor);
    if (!this.shared) this.enc.dTower.setLrScale(factor);
  }

  /** Inputs of documents `ids` for inference: the chunk each last trained with, else its first. */
  itemInputs(ids: ArrayLike<number>): Int32Array[] {
    return Array.from(ids, (d) => this.docs.chunkInput(this.lastChunk[d] >= 0 ? this.lastChunk[d] : this.docs.firstChunk[d]));
  }

  embedItems(b: Backend, ids: Int32Array, out: Float32Array): void {
    // The towers keep the last forward's activations for backward: an inference pass in between would clobber them.
    if (this.pendingRows >= 0) throw new Error('text pair: embedItems between forward and backward');
    encodeInto(b, this.enc.dTower, this.itemInputs(ids), out, NO_RNG);
  }

  /** Inference embeddings of the batch's queries (rows × dim), for diagnostics. */
  embedQueries(b: Backend, batch: EncoderBatch<TextBatchInput>, out: Float32Array): void {
    if (this.pendingRows >= 0) throw new Error('text pair: embedQueries between forward and backward');
    encodeInto(b, this.enc.qTower, batch.input.queries.slice(0, batch.rows), out, NO_RNG);
  }

  momentumItems(m: number): MomentumItems {
    return new TextMomentum(this, m);
  }

  stateArrays(withOptimizer: boolean): StateArrays {
    const out: StateArrays = [];
    const towers: Array<[string, TextTower]> = [['q', this.enc.qTower]];
    if (!this.shared) towers.push(['d', this.enc.dTower]);
    for (const [p, t] of towers) {
      for (const [n, a] of t.tensors()) out.push([`${p}.${n}`, a]);
      if (withOptimizer) for (const [n, a] of t.optimizerState()) out.push([`${p}.${n}`, a]);
    }
    if (withOptimizer) out.push(['docs.lastChunk', this.lastChunk]);
    return out;
  }

  /** Restores weights, and optimiser state when the checkpoint has it (it was saved with withOptimizer). */
  restoreState(get: (name: string) => NamedArray | undefined): void {
    const towers: Array<[string, TextTower]> = [['q', this.enc.qTower]];
    if (!this.shared) towers.push(['d', this.enc.dTower]);
    const withOptimizer = get('docs.lastChunk') !== undefined;
    for (const [p, t] of towers) {
      const sub = (n: string) => get(`${p}.${n}`);
      for (const [n, a] of t.tensors()) restoreInto(sub, n, a);
      if (withOptimizer) t.restoreOptimizer(sub);
    }
    if (withOptimizer) restoreInto(get, 'docs.lastChunk', this.lastChunk);
  }

  /** A fresh tower of the document tower's configuration (for the momentum copy). */
  newDocTower(): TextTower {
    return this.enc.newTower(this.enc.config.seed + 104729);
  }
}

/** Towers take an Rng for dropout; inference draws nothing from it. */
const NO_RNG = new Rng(0);

/**
 * An EMA copy of the document tower (of the shared tower when shared): θ_m ← m·θ_m + (1 − m)·θ after each step.
 * Dense tensors are averaged every update; the hashed embedding table (≈ 10⁵ rows) lazily, when a document's
 * tokens are read: a row last synchronised k updates ago becomes m^k·row_m + (1 − m^k)·row (exact when the
 * online row did not move in between; a close approximation otherwise, as model/momentum.ts does for id tables).
 */
export class TextMomentum implements MomentumItems {
  readonly shadow: TextTower;
  private readonly online: TextTower;
  private readonly lastSync: Int32Array;
  private readonly emb: [Float32Array, Float32Array];
  private readonly dense: Array<[Float32Array, Float32Array]>;
  private readonly rowDim: number;
  private step = 0;

  constructor(
    private readonly pair: TextEncoderPair,
    readonly m: number,
  ) {
    this.online = pair.enc.dTower;
    this.shadow = pair.newDocTower();
    const on = new Map(this.online.tensors());
    const sh = this.shadow.tensors();
    for (const [n, a] of sh) a.set(on.get(n)!);
    this.emb = [sh.find(([n]) => n === 'emb')![1], on.get('emb')!];
    this.dense = sh.filter(([n]) => n !== 'emb').map(([n, a]) => [a, on.get(n)!]);
    this.rowDim = pair.enc.config.dim;
    this.lastSync = new Int32Array(this.emb[0].length / this.rowDim);
  }

  update(): void {
    this.step++;
    const m = this.m;
    for (const [s, o] of this.dense) for (let i = 0; i < s.length; i++) s[i] = m * s[i] + (1 - m) * o[i];
  }

  embed(b: Backend, ids: Int32Array, out: Float32Array): void {
    const inputs = this.pair.itemInputs(ids);
    const [dst, src] = this.emb;
    const d = this.rowDim;
    for (const x of inputs) {
      for (let t = 0; t < x.length; t++) {
        const row = x[t];
        const k = this.step - this.lastSync[row];
        if (k <= 0) continue;
        const f = Math.pow(this.m, k);
        const o = row * d;
        for (let j = 0; j < d; j++) dst[o + j] = f * dst[o + j] + (1 - f) * src[o + j];
        this.lastSync[row] = this.step;
      }
    }
    encodeInto(b, this.shadow, inputs, out, NO_RNG);
  }

  stateArrays(): StateArrays {
    const out: StateArrays = [['momentum.step', Int32Array.of(this.step)], ['momentum.sync', this.lastSync]];
    for (const [n, a] of this.shadow.tensors()) out.push([`momentum.${n}`, a]);
    return out;
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    const step = new Int32Array(1);
    restoreInto(get, 'momentum.step', step);
    this.step = step[0];
    restoreInto(get, 'momentum.sync', this.lastSync);
    for (const [n, a] of this.shadow.tensors()) restoreInto(get, `momentum.${n}`, a);
  }
}
