/**
 * Full-ranking evaluation of a sequence tower through eval/ranking.ts: a user's embedding is the tower's output
 * at the last position of their history (the training sequence for validation, training + validation for
 * test, truncated to the model's max length), scored against every item's embedding (dot product, or cosine
 * when the model was trained so). Protocol: leave-last-one-out, HR@K and NDCG@K over ALL items; by default
 * nothing is excluded (the reference SASRec-family full-ranking protocol, e.g. ICLRec), or with
 * `excludeHistory` the user's history items (except the target itself) are removed before ranking.
 */
import type { Backend } from '../compute/backend.ts';
import { csrRow, type Csr } from '../data/csr.ts';
import { evaluateRanking, type EvalResult } from '../eval/ranking.ts';
import { embeddingScorer, popularityScorer, type Scorer, type UserEmbeddingFn } from '../eval/scorer.ts';
import { Rng } from '../util/rng.ts';
import { targetsCsr, type SeqData } from './data.ts';
import type { ScoreKind } from './objectives.ts';
import { PackedBuilder } from './packed.ts';
import type { SeqTower } from './tower.ts';

/** Scorer whose user embedding is the tower output at the last token of `history(u)`. */
export function sequenceScorer(backend: Backend, tower: SeqTower, history: Csr, score: ScoreKind): Scorer {
  return embeddingScorer(backend, sequenceUserEmbeddings(backend, tower, history), scoringItems(backend, tower, score), tower.dim, tower.items.rows);
}

/** The item side of scoring: the tower's item table, L2-normalised for cosine scoring. */
export function scoringItems(backend: Backend, tower: SeqTower, score: ScoreKind): Float32Array {
  const d = tower.dim;
  const n = tower.items.rows;
  const items = tower.items.data.subarray(0, n * d);
  if (score !== 'cosine') return items;
  const normed = new Float32Array(n * d);
  backend.l2normForward(items, normed, new Float32Array(n), n, d);
  return normed;
}

/** User embeddings = the tower output at the last token of `history(u)` (zeros for an empty history). */
export function sequenceUserEmbeddings(backend: Backend, tower: SeqTower, history: Csr): UserEmbeddingFn {
  const d = tower.dim;
  const builder = new PackedBuilder(tower.maxLen);
  const rng = new Rng(0);
  const userEmb = (users: Int32Array, out: Float32Array) => {
    // Chunks bound the activations (tokens ≤ chunk × maxLen).
    const chunk = 512;
    for (let s = 0; s < users.length; s += chunk) {
      const part = users.subarray(s, Math.min(users.length, s + chunk));
      const batch = builder.inference(part, (u) => csrRow(history, u));
      const H = tower.forward(backend, batch, false, rng);
      for (let k = 0; k < part.length; k++) {
        const lo = batch.offsets[k];
        const hi = batch.offsets[k + 1];
        const o = (s + k) * d;
        if (hi === lo) out.fill(0, o, o + d);
        else out.set(H.subarray((hi - 1) * d, hi * d), o);
      }
    }
  };
  return userEmb;
}

export interface SeqEvalOptions {
  ks: number[];
  /** Remove each user's input-history items from the ranking (default false: exclude nothing). */
  excludeHistory: boolean;
  score: ScoreKind;
  /** Evaluate these users only (default: all with a target). */
  users?: Int32Array;
}

/** HR/NDCG@K (and the rest of ranking.ts' metrics) on the validation or test targets. */
export function evaluateSeq(backend: Backend, tower: SeqTower, data: SeqData, part: 'val' | 'test', o: SeqEvalOptions): EvalResult {
  const history = part === 'val' ? data.train : data.trainVal;
  const test = targetsCsr(part === 'val' ? data.valItem : data.testItem);
  const exclude = o.excludeHistory ? dedupeRows(history) : null;
  return evaluateRanking({
    backend,
    scorer: sequenceScorer(backend, tower, history, o.score),
    test,
    exclude,
    ks: o.ks,
    itemPopularity: data.itemCounts,
    users: o.users,
  });
}

/**
 * The most-popular baseline under exactly the protocol of evaluateSeq (same targets, same exclusion): every
 * user gets the items ranked by training count. A sequential model that does not beat it has learnt nothing.
 */
export function evaluateSeqPopularity(backend: Backend, data: SeqData, part: 'val' | 'test', o: Omit<SeqEvalOptions, 'score'>): EvalResult {
  const history = part === 'val' ? data.train : data.trainVal;
  return evaluateRanking({
    backend,
    scorer: popularityScorer(data.itemCounts),
    test: targetsCsr(part === 'val' ? data.valItem : data.testItem),
    exclude: o.excludeHistory ? dedupeRows(history) : null,
    ks: o.ks,
    itemPopularity: data.itemCounts,
    users: o.users,
  });
}

function dedupeRows(m: Csr): Csr {
  const seen = new Set<number>();
  const offsets = new Int32Array(m.rows + 1);
  const cols: number[] = [];
  for (let u = 0; u < m.rows; u++) {
    seen.clear();
    for (const j of csrRow(m, u)) if (!seen.has(j)) {
      seen.add(j);
      cols.push(j);
    }
    offsets[u + 1] = cols.length;
  }
  return { rows: m.rows, offsets, cols: Int32Array.from(cols) };
}
