/**
 * The encoder kinds the engine matrix test (test/engine-matrix.test.ts) runs every recipe module on. Each kind
 * builds, for a recipe, a fresh encoder (same seed every time) and the one contrastive step training it, plus
 * what the float64 reference needs: the score-space query vectors the next train-mode forward produces and the
 * score-space vector of any item read from the raw weights. A recipe the kind cannot train must throw a
 * UserError naming the field and the reason. To add an encoder (text towers), push a kind to ENCODER_KINDS.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../../src/compute/backend.ts';
import { Vocab } from '../../src/data/types.ts';
import type { EncoderBatch } from '../../src/model/encoder.ts';
import { liveRetrievers } from '../../src/mine/model-retriever.ts';
import { TwoTowerPair, twoTowerBatch } from '../../src/model/two-tower-pair.ts';
import { TwoTowerModel } from '../../src/model/two-tower.ts';
import type { Recipe } from '../../src/recipe/schema.ts';
import { buildSources } from '../../src/sampling/build.ts';
import { loadSeqData, buildTower, defaultSeqModel } from '../../src/seq/experiment.ts';
import { buildObjective } from '../../src/seq/objectives.ts';
import { PackedBuilder } from '../../src/seq/packed.ts';
import { SeqPair, seqBatch } from '../../src/seq/pair.ts';
import { ContrastiveStep } from '../../src/train/contrastive-step.ts';
import { Rng } from '../../src/util/rng.ts';
import { normRow64, type Vec } from './step64.ts';
import { textKind } from './text-kinds.ts';

export interface BuiltEncoder {
  step: ContrastiveStep<unknown>;
  /** The batch every step of the test trains on (rows, their users and positives). */
  batch: EncoderBatch<unknown>;
  numItems: number;
  /** Training items (the data the frequency estimates count). */
  trainItems: Int32Array;
  /** Score-space query vectors of the batch rows from the current weights (no dropout in these encoders). */
  queries(): Vec[];
  /** Score-space vector of item j read from the current raw weights. */
  item(j: number): Vec;
  /** The raw item-side table (row j = item j), for replaying queues and momentum copies. */
  itemTable(): Float32Array;
  /**
   * Item j's score-space vector from a snapshot of itemTable(), when that is not row j of it (text towers:
   * itemTable() holds every document-tower tensor; see test/helpers/text-kinds.ts). Default: normRow64(·, dim, j).
   */
  itemFrom?(weights: ArrayLike<number>, j: number): Vec;
  dim: number;
}

export interface EncoderKind {
  name: string;
  build(b: Backend, recipe: Recipe): Promise<BuiltEncoder>;
}

/** A temp directory for the kinds' files, removed by cleanup(). */
const dir = mkdtempSync(join(tmpdir(), 'towerlab-matrix-'));
export const cleanup = () => rmSync(dir, { recursive: true, force: true });

// ---- two-tower (id towers, no MLP: the output is the L2-normalised id row) ----
const TT_USERS = 10;
const TT_ITEMS = 20;
const DIM = 4;
const SEQS = [[0, 1, 2, 3], [1, 2, 9], [4, 3], [5], [3, 3, 7, 0], [10, 11, 3], [12, 8, 3, 5], [13, 14], [15, 16, 17], [18, 19, 6]];
const TT_TRAIN_USERS = Int32Array.from(SEQS.flatMap((s, u) => s.map(() => u)));
const TT_TRAIN_ITEMS = Int32Array.from(SEQS.flat());
/** The batch, with planted collisions: item 3 twice, user 1 three times. */
const TT_BATCH_USERS = Int32Array.from([0, 1, 1, 2, 1, 4, 5, 6]);
const TT_BATCH_ITEMS = Int32Array.from([3, 1, 2, 3, 9, 0, 11, 5]);
export const STRATUM = Int32Array.from({ length: TT_ITEMS }, (_, j) => j % 3);
const MINED = join(dir, 'mined.jsonl');
writeFileSync(
  MINED,
  Array.from(TT_BATCH_USERS, (u, r) => JSON.stringify({ user: `u${u}`, positive: `i${TT_BATCH_ITEMS[r]}`, negatives: [`i${(TT_BATCH_ITEMS[r] + 7) % TT_ITEMS}`, `i${(TT_BATCH_ITEMS[r] + 13) % TT_ITEMS}`] })).join('\n') + '\n',
);
export const MINED_FILE = MINED;

const twoTower: EncoderKind = {
  name: 'two-tower',
  async build(b, recipe) {
    const model = new TwoTowerModel({
      user: { vocabSize: TT_USERS, idDim: DIM, features: [], mlp: [] },
      item: { vocabSize: TT_ITEMS, idDim: DIM, features: [], mlp: [] },
      sparseOptimizer: 'adagrad',
      sparseLr: 0.05,
      denseLr: 0.01,
      seed: 3,
    });
    model.init();
    for (const t of [model.user.idTable, model.item.idTable]) for (let i = 0; i < t.data.length; i++) t.data[i] *= 10;
    const set = buildSources(recipe, {
      numItems: TT_ITEMS,
      trainItems: TT_TRAIN_ITEMS,
      trainUsers: TT_TRAIN_USERS,
      itemFeatures: [{ name: 'cat', vocab: Vocab.from(['?', 'a', 'b', 'c']), values: STRATUM }],
      dim: DIM,
      liveRetriever: liveRetrievers(b, model),
      userIds: Array.from({ length: TT_USERS }, (_, u) => `u${u}`),
      itemIds: Array.from({ length: TT_ITEMS }, (_, j) => `i${j}`),
    });
    const step = new ContrastiveStep(b, new TwoTowerPair(model), recipe, set) as ContrastiveStep<unknown>;
    return {
      step,
      batch: twoTowerBatch(TT_BATCH_USERS, TT_BATCH_ITEMS) as EncoderBatch<unknown>,
      numItems: TT_ITEMS,
      trainItems: TT_TRAIN_ITEMS,
      queries: () => Array.from(TT_BATCH_USERS, (u) => normRow64(model.user.idTable.data, DIM, u)),
      item: (j) => normRow64(model.item.idTable.data, DIM, j),
      itemTable: () => model.item.idTable.data,
      dim: DIM,
    };
  },
};

// ---- sequence towers (cosine score, no dropout): rows = the tokens of 4 histories ----
const SEQ_FILE = join(dir, 'seq.txt');
// 8 users × 7 items over 12 items, with repeats across users (accidental hits) and within a history.
const SEQ_LOG = Array.from({ length: 8 }, (_, u) => Array.from({ length: 7 }, (_, t) => (u * 2 + t * (1 + (u % 3))) % 12));
writeFileSync(SEQ_FILE, SEQ_LOG.flatMap((s, u) => s.map((j) => `${u + 1} ${j + 1}`)).join('\n') + '\n');

function seqKind(tower: 'sasrec' | 'meanpool', name: string): EncoderKind {
  return {
    name,
    async build(b, recipe) {
      const { data } = await loadSeqData({ path: SEQ_FILE });
      const t = buildTower({ ...defaultSeqModel, tower, dim: DIM, maxLen: 5, blocks: 1, heads: 1, dropout: 0, lr: 0.01, seed: 3 }, data.numItems);
      const pair = new SeqPair(t, 'cosine');
      const objective = buildObjective({ kind: 'softmax', score: 'cosine', recipe }, data, DIM);
      const step = objective.stepFor(b, pair) as ContrastiveStep<unknown>;
      const packed = new PackedBuilder(5).training(data.train, Int32Array.from([0, 1, 2, 3]));
      const batch = seqBatch(packed);
      return {
        step,
        batch: batch as EncoderBatch<unknown>,
        numItems: data.numItems,
        trainItems: data.train.cols,
        queries: () => {
          const Q = pair.inferQueries(b, packed, new Rng(0));
          return Array.from({ length: batch.rows }, (_, r) => normRow64(Q, DIM, r));
        },
        item: (j) => normRow64(t.items.data, DIM, j),
        itemTable: () => t.items.data,
        dim: DIM,
      };
    },
  };
}

/** Every encoder kind of the matrix (the text towers: test/helpers/text-kinds.ts). */
export const ENCODER_KINDS: EncoderKind[] = [twoTower, seqKind('sasrec', 'sasrec'), seqKind('meanpool', 'mean-pool'), textKind('boe'), textKind('transformer')];
