/**
 * Sequence models in serving bundles. A saved sequence model (src/seq/saved-model.ts) is exported through the
 * ordinary bundle writer by describing it as a two-tower model whose towers are bare tables:
 *   user tower: id table = each known user's sequence-tower output after their whole stored sequence
 *               (so `/recommend {user}` answers with the sequence model; the query is L2-normalised, which
 *               does not change a ranking);
 *   item tower: id table = the tower's item table; item embeddings = the table (dot) or its L2-normalised
 *               rows (cosine), whatever the model scores with.
 * The sequence tower itself travels along (manifest `model.sequence`, arrays `seq.*` in weights/seq.bin) so a
 * server can answer `/recommend {history}` with it: the history's items run through the tower and the output
 * at the last position is the query, as at training time. Its item-table input reuses the item embeddings
 * when they are the raw table (dot scoring) instead of storing the table twice.
 */
import type { Backend } from '../compute/backend.ts';
import { csrFromPairs } from '../data/csr.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import { TwoTowerModel } from '../model/two-tower.ts';
import { scoringItems, sequenceUserEmbeddings } from '../seq/evaluate.ts';
import { buildTower, type SeqModelOptions } from '../seq/experiment.ts';
import type { ScoreKind } from '../seq/objectives.ts';
import type { SeqArtifacts } from '../seq/saved-model.ts';
import type { SeqTower } from '../seq/tower.ts';
import { UserError } from '../util/errors.ts';

export const SEQ_FILE = 'weights/seq.bin';
export const SEQ_PREFIX = 'seq.';
const ITEM_TABLE = 'item.emb';

/** What the manifest records about the sequence tower. */
export interface SeqManifest {
  tower: 'sasrec' | 'meanpool';
  options: SeqModelOptions;
  score: ScoreKind;
  /** Tensor names (without the `seq.` prefix) stored in weights/seq.bin, in order. */
  tensors: string[];
  /** Where the tower's item-table input comes from. */
  itemInput: 'item.embeddings' | 'seq.item.emb';
}

/** What the bundle writer needs beyond a two-tower model's artifacts. */
export interface SeqBundlePart {
  manifest: SeqManifest;
  arrays: Array<[string, Float32Array]>;
  /** The item embeddings to store and index (what queries are scored against). */
  itemEmbeddings(backend: Backend): Float32Array;
  /** Fills the user tower's id table (numUsers × dim) with each user's sequence embedding. */
  fillUsers(backend: Backend, table: Float32Array): void;
}

/** A saved sequence model as bundle-writer input (a two-tower model of bare tables plus the tower). */
export function seqAsArtifacts(a: SeqArtifacts): ModelArtifacts & { sequence: SeqBundlePart } {
  const d = a.tower.dim;
  const bare = (vocabSize: number) => ({ vocabSize, idDim: d, features: [], mlp: [] });
  const model = new TwoTowerModel({ user: bare(a.userIds.length), item: bare(a.itemIds.length), sparseOptimizer: 'adagrad', sparseLr: 0, denseLr: 0, seed: 0 });
  model.item.idTable.data.set(a.tower.items.data.subarray(0, a.itemIds.length * d));
  const itemInput = a.score === 'dot' ? 'item.embeddings' : 'seq.item.emb';
  const tensors = a.tower.tensors().filter(([name]) => !(name === ITEM_TABLE && itemInput === 'item.embeddings'));
  const seen = csrFromPairs(a.userIds.length, rowsOf(a.sequences), a.sequences.cols, true);
  return {
    model,
    userIds: a.userIds,
    itemIds: a.itemIds,
    userFeatures: [],
    itemFeatures: [],
    itemCounts: a.itemCounts,
    seen,
    meta: a.meta,
    sequence: {
      manifest: { tower: a.options.tower, options: a.options, score: a.score, tensors: tensors.map(([n]) => n), itemInput },
      arrays: tensors.map(([n, t]) => [SEQ_PREFIX + n, t]),
      itemEmbeddings: (backend) => scoringItems(backend, a.tower, a.score).slice(),
      fillUsers: (backend, table) => {
        const users = Int32Array.from({ length: a.userIds.length }, (_, u) => u);
        sequenceUserEmbeddings(backend, a.tower, a.sequences)(users, table);
      },
    },
  };
}

function rowsOf(m: { rows: number; offsets: Int32Array; cols: Int32Array }): Int32Array {
  const r = new Int32Array(m.cols.length);
  for (let u = 0; u < m.rows; u++) r.fill(u, m.offsets[u], m.offsets[u + 1]);
  return r;
}

/** Rebuilds the sequence tower of a bundle from its arrays (`get` returns an array by bundle name). */
export function seqTowerFromBundle(s: SeqManifest, numItems: number, itemEmb: Float32Array, get: (name: string) => Float32Array | undefined, where: string): SeqTower {
  const tower = buildTower(s.options, numItems, true);
  const stored = new Set(s.tensors);
  for (const [name, target] of tower.tensors()) {
    let src: Float32Array | undefined;
    if (name === ITEM_TABLE && s.itemInput === 'item.embeddings') src = itemEmb;
    else if (stored.has(name)) src = get(SEQ_PREFIX + name);
    if (!src) throw new UserError(`${where}: sequence tower tensor '${name}' missing`);
    if (src.length !== target.length) throw new UserError(`${where}: sequence tower tensor '${name}' has ${src.length} values, the model implies ${target.length}`);
    target.set(src);
  }
  return tower;
}

/**
 * Answers history queries with a sequence tower: the query is the tower output after the history's known
 * items (oldest first, the last maxLen used), L2-normalised like every other query of the server.
 */
export class SeqHistoryQuery {
  private readonly seq: { rows: number; offsets: Int32Array; cols: Int32Array } = { rows: 1, offsets: new Int32Array(2), cols: new Int32Array(0) };
  private readonly run: (users: Int32Array, out: Float32Array) => void;
  private readonly one = Int32Array.of(0);

  constructor(
    readonly tower: SeqTower,
    backend: Backend,
  ) {
    this.run = sequenceUserEmbeddings(backend, tower, this.seq);
  }

  /** Writes the query of `items` (model indices, non-empty) into `out`. */
  embed(items: number[], out: Float32Array): void {
    this.seq.cols = Int32Array.from(items);
    this.seq.offsets[1] = items.length;
    this.run(this.one, out);
    let n = 0;
    for (let t = 0; t < out.length; t++) n += out[t] * out[t];
    n = Math.sqrt(n) || 1;
    for (let t = 0; t < out.length; t++) out[t] /= n;
  }
}
