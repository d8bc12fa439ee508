/**
 * The text dual encoders (shared bag-of-embeddings tower, shared transformer tower) as encoder kinds of the
 * engine matrix test (test/engine-matrix.test.ts, test/helpers/engine-kinds.ts). Queries are users and
 * documents items, on a tiny corpus whose ids mirror the two-tower kind's (queries u0…u9, documents i0…i19,
 * train pairs = its training sequences, the same batch with its planted collisions), so the shared mined
 * file and the frequency counts apply unchanged. Every document fits one chunk, so an item's vector is a
 * function of the weights alone:
 *  - BoE (no dense layer): computed here from first principles, Σ rows / √n, L2-normalised, in float64;
 *  - transformer: the tower's own forward on the given weights (its gradients are checked against finite
 *    differences in test/text-towers.test.ts), so for it the matrix checks the composition — columns, masks,
 *    logQ, the same-tower block, both directions, queue and momentum replay.
 * `itemTable()` is every document-tower tensor back to back, so the matrix's momentum replay (an EMA of that
 * vector) is the EMA of every parameter, as TextMomentum keeps it.
 */
import type { Backend } from '../../src/compute/backend.ts';
import type { EncoderBatch } from '../../src/model/encoder.ts';
import type { Recipe } from '../../src/recipe/schema.ts';
import type { BeirData, Qrels } from '../../src/text/beir.ts';
import { TextCorpus } from '../../src/text/corpus.ts';
import { DualEncoder } from '../../src/text/dual-encoder.ts';
import { defaultDualEncoder } from '../../src/text/experiment.ts';
import { TextEncoderPair, type TextBatchInput } from '../../src/text/text-pair.ts';
import { packTexts } from '../../src/text/tower.ts';
import { textStep } from '../../src/text/train.ts';
import { TextTrainingSet } from '../../src/text/training-set.ts';
import type { ContrastiveStep } from '../../src/train/contrastive-step.ts';
import { Rng } from '../../src/util/rng.ts';
import type { BuiltEncoder } from './engine-kinds.ts';
import type { Vec } from './step64.ts';

/** What a text kind adds to the matrix's BuiltEncoder: an item's score-space vector from a weights snapshot. */
export type TextBuilt = BuiltEncoder & { itemFrom(weights: ArrayLike<number>, j: number): Vec };

const DIM = 4;
const NUM_DOCS = 20;
const NUM_QUERIES = 10;
// The two-tower kind's data: users' training sequences and the batch (item 3 twice, user 1 three times).
const SEQS = [[0, 1, 2, 3], [1, 2, 9], [4, 3], [5], [3, 3, 7, 0], [10, 11, 3], [12, 8, 3, 5], [13, 14], [15, 16, 17], [18, 19, 6]];
const BATCH_USERS = Int32Array.from([0, 1, 1, 2, 1, 4, 5, 6]);
const BATCH_ITEMS = Int32Array.from([3, 1, 2, 3, 9, 0, 11, 5]);
const TOK = { buckets: 48, bigrams: false, charNgrams: [], stopwords: false, stem: false };

function corpusData(): BeirData {
  const word = (k: number) => `w${String.fromCharCode(97 + (k % 26))}${String.fromCharCode(97 + Math.floor(k / 26))}`;
  const qrels: Qrels = {
    query: Int32Array.from(SEQS.flatMap((s, u) => s.map(() => u))),
    doc: Int32Array.from(SEQS.flat()),
    grade: new Int32Array(SEQS.flat().length).fill(1),
  };
  return {
    dir: 'engine-matrix-text',
    docIds: Array.from({ length: NUM_DOCS }, (_, j) => `i${j}`),
    titles: Array.from({ length: NUM_DOCS }, (_, j) => word(j)),
    texts: Array.from({ length: NUM_DOCS }, (_, j) => [word(j), word((3 * j + 1) % 30), word((7 * j + 2) % 30), word(30 + (j % 4))].join(' ')),
    queryIds: Array.from({ length: NUM_QUERIES }, (_, u) => `u${u}`),
    queries: Array.from({ length: NUM_QUERIES }, (_, u) => `${word(u)} ${word((5 * u + 3) % 30)} ${word(30 + (u % 4))}`),
    qrels: new Map([['train', qrels]]),
  };
}

/** BoE from first principles: Σ_t E[id_t] / √n, L2-normalised, in float64. */
function boe64(table: ArrayLike<number>, ids: Int32Array): Vec {
  const p = new Float64Array(DIM);
  for (const id of ids) for (let j = 0; j < DIM; j++) p[j] += table[id * DIM + j];
  let n = 0;
  for (let j = 0; j < DIM; j++) n += p[j] * p[j];
  n = Math.sqrt(n);
  return p.map((v) => v / n);
}

export function textKind(tower: 'boe' | 'transformer'): { name: string; build(b: Backend, recipe: Recipe): Promise<TextBuilt> } {
  return {
    name: tower === 'boe' ? 'text-boe' : 'text-transformer',
    async build(b, recipe) {
      const corpus = new TextCorpus(corpusData(), TOK);
      const enc = new DualEncoder({ ...defaultDualEncoder, tower, shared: true, dim: DIM, proj: 0, pooling: 'sqrt', heads: 1, blocks: 1, window: 32, stride: 32, queryMaxLen: 16, tokenizer: TOK, seed: 3 }, { lrSparse: 0.05, lrDense: 0.01 });
      const pair = new TextEncoderPair(enc, corpus);
      if (pair.docs.chunks.doc.length !== NUM_DOCS) throw new Error('text kind: every document must be one chunk');
      const set = new TextTrainingSet(pair.docs, corpus.data.qrels.get('train')!);
      const step = textStep(b, pair, set, recipe, BATCH_USERS.length) as ContrastiveStep<unknown>;
      const batch: EncoderBatch<TextBatchInput> = {
        input: { queries: Array.from(BATCH_USERS, (u) => pair.docs.queryInput(u)), positives: null },
        rows: BATCH_USERS.length,
        users: BATCH_USERS,
        items: BATCH_ITEMS,
      };
      const tensors = () => enc.dTower.tensors().map(([, a]) => a);
      const itemTable = () => {
        const ts = tensors();
        const out = new Float32Array(ts.reduce((n, a) => n + a.length, 0));
        let o = 0;
        for (const a of ts) (out.set(a, o), (o += a.length));
        return out;
      };
      const docInput = (j: number) => pair.docs.chunkInput(pair.docs.firstChunk[j]);
      // The transformer's reference forward runs on a scratch tower loaded with the snapshot.
      const scratch = tower === 'transformer' ? enc.newTower(0) : null;
      const viaTower = (weights: ArrayLike<number>, input: Int32Array): Vec => {
        let o = 0;
        for (const [, a] of scratch!.tensors()) for (let i = 0; i < a.length; i++) a[i] = weights[o++];
        return Float64Array.from(scratch!.forward(b, packTexts([input]), false, new Rng(0)).subarray(0, DIM));
      };
      const itemFrom = (weights: ArrayLike<number>, j: number): Vec => (scratch ? viaTower(weights, docInput(j)) : boe64(weights, docInput(j)));
      return {
        step,
        batch: batch as EncoderBatch<unknown>,
        numItems: NUM_DOCS,
        trainItems: set.items,
        queries: () => {
          const w = itemTable(); // shared tower: the query side reads the same weights
          return batch.input.queries.map((x) => (scratch ? viaTower(w, x) : boe64(w, x)));
        },
        item: (j) => itemFrom(itemTable(), j),
        itemTable,
        itemFrom,
        dim: DIM,
      };
    },
  };
}
