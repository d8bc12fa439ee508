/**
 * Neighbourhood hard negatives (GNNO, Fan et al., SIGIR 2023) as a negative source usable from any recipe:
 * for every row, `n` items drawn from p(j | positive) ∝ exp(J/τ)·1[J ≤ h_t] on the item transition graph
 * (see graph/neighbour-sampler.ts), the cap h_t following the curriculum (graph/curriculum.ts). The draws of
 * all rows become shared softmax columns (a row's own hard negatives sit among the batch's).
 * Expected count per batch: E[count(j)] = n · Σ_r p(j | positive_r), so logQ can correct for it.
 *
 * Epoch for the curriculum: beginEpoch (every training loop calls it) sets it; a source sampled outside a
 * loop estimates it from the step as (step − 1) · B / |train|.
 */
import type { Csr } from '../data/csr.ts';
import { buildNeighbourhood, type NeighbourhoodStats } from '../graph/build.ts';
import { hardnessAt, type CurriculumSpec } from '../graph/curriculum.ts';
import type { NeighbourSampler } from '../graph/neighbour-sampler.ts';
import { UserError } from '../util/errors.ts';
import type { BatchContext, Candidates, EpochContext, NegativeSource } from './source.ts';
import type { SourceLimits } from '../recipe/limits.ts';

/** The recipe fields of a `neighbourhood` source (see recipe/schema.ts). */
export interface NeighbourhoodSpec {
  n: number;
  window: number;
  weight: 'bool' | 'weight';
  candidates: 'all' | 'overlap';
  temperature: number;
  excludeTop: number;
  maxCandidates: number;
  curriculum: CurriculumSpec;
}

export class NeighbourhoodSource implements NegativeSource {
  readonly name = 'neighbourhood';
  readonly usesPositives = false;

  /** Memory estimate of the recipe's sizes (recipe/limits.ts). */
  static limits(s: NeighbourhoodSpec, lim: SourceLimits, field: (k: string) => string): void {
    const { N, B } = lim;
    if (s.n > N) lim.fail(field('n'), `${s.n} negatives per row, but the catalogue has ${N} items`);
    lim.check(field('n'), `${s.n} negatives per row (${s.n * B} per batch of ${B})`, lim.columnBytes(s.n * B), s.n * B * Math.max(lim.d, B));
    if (s.excludeTop > N) lim.fail(field('excludeTop'), `${s.excludeTop} excluded per item, but the catalogue has ${N} items`);
    const cand = s.maxCandidates > 0 ? Math.min(s.maxCandidates, N) : N;
    lim.check(field('maxCandidates'), `${cand} overlap candidates for each of ${N} items`, N * cand * 8, N * cand);
  }
  /** Current epoch for the curriculum (null: estimate from the step). */
  epoch: number | null = null;
  private ids = new Int32Array(0);
  private logq = new Float32Array(0);
  private targets = new Int32Array(0);

  constructor(
    readonly sampler: NeighbourSampler,
    readonly n: number,
    readonly curriculum: CurriculumSpec,
    /** Training rows per epoch, for the step-based epoch estimate. */
    readonly trainSize: number,
    /** Build statistics of the transition graph. */
    readonly graph: NeighbourhoodStats | null = null,
  ) {}

  beginEpoch(ctx: EpochContext): void {
    this.epoch = ctx.epoch;
  }

  stats(): Record<string, number> {
    return { epoch: this.epoch ?? -1, ...(this.graph ?? {}) };
  }

  /** The hardness cap at the current epoch (and applies it to the sampler). */
  hardnessFor(ctx: BatchContext): number {
    const B = ctx.items.length;
    const e = this.epoch ?? ((ctx.step - 1) * B) / Math.max(1, this.trainSize);
    const h = hardnessAt(this.curriculum, e);
    this.sampler.setHardness(h);
    return h;
  }

  sample(ctx: BatchContext): Candidates {
    this.hardnessFor(ctx);
    const B = ctx.items.length;
    const N = B * this.n;
    if (this.ids.length !== N) {
      this.ids = new Int32Array(N);
      this.logq = new Float32Array(N);
    }
    if (this.targets.length !== B) this.targets = new Int32Array(B);
    this.targets.set(ctx.items);
    for (let r = 0; r < B; r++) this.sampler.sampleInto(ctx.items[r], this.n, ctx.rng, this.ids, r * this.n);
    // logq costs O(Σ_rows |candidates|) and the loss chain asks logExpectedCount instead: computed on first read.
    const self = this;
    let filled = false;
    return {
      ids: this.ids,
      get logq(): Float32Array {
        if (!filled) {
          self.sampler.logExpectedCounts(self.targets, self.n, self.ids, self.logq);
          filled = true;
        }
        return self.logq;
      },
      userKey: null,
      embeddings: null,
    };
  }

  /** Uses the positives of the last sampled batch (ColumnBuilder calls this right after sample). */
  logExpectedCount(ids: Int32Array, _batchSize: number, out: Float32Array): void {
    this.sampler.logExpectedCounts(this.targets, this.n, ids, out);
  }
}

/** Each user's training items in row order (the time order for sequence files), as a CSR. */
export function sequencesFromRows(numUsers: number, users: Int32Array, items: Int32Array): Csr {
  const offsets = new Int32Array(numUsers + 1);
  for (let r = 0; r < users.length; r++) offsets[users[r] + 1]++;
  for (let u = 0; u < numUsers; u++) offsets[u + 1] += offsets[u];
  const fill = offsets.slice(0, numUsers);
  const cols = new Int32Array(users.length);
  for (let r = 0; r < users.length; r++) cols[fill[users[r]]++] = items[r];
  return { rows: numUsers, offsets, cols };
}

export interface NeighbourhoodContext {
  numItems: number;
  trainItems: Int32Array;
  /** Each user's training items in time order; or trainUsers to group trainItems by (row order). */
  trainSequences?: Csr;
  trainUsers?: Int32Array;
}

/** Builds the graph from the training sequences and the source; `where` names the recipe field in errors. */
export function neighbourhoodSource(spec: NeighbourhoodSpec, ctx: NeighbourhoodContext, where: string): NeighbourhoodSource {
  let seqs = ctx.trainSequences;
  if (!seqs && ctx.trainUsers) {
    let maxUser = -1;
    for (let r = 0; r < ctx.trainUsers.length; r++) if (ctx.trainUsers[r] > maxUser) maxUser = ctx.trainUsers[r];
    seqs = sequencesFromRows(maxUser + 1, ctx.trainUsers, ctx.trainItems);
  }
  if (!seqs) {
    throw new UserError(`recipe: field '${where}': neighbourhood negatives need each user's ordered training items (use 'towerlab seq', or pass trainSequences/trainUsers)`);
  }
  const { sampler, stats } = buildNeighbourhood(seqs, ctx.numItems, spec);
  return new NeighbourhoodSource(sampler, spec.n, spec.curriculum, ctx.trainItems.length, stats);
}
