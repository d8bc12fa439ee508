/**
 * Next-item objectives over every token of a packed batch (row t: history up to t, target = the next item),
 * all trained by the one contrastive step (train/contrastive-step.ts) through the sequence tower's
 * EncoderPair (pair.ts); scores s(t, j) = ⟨h_t, e_j⟩ (or cosine / τ for the softmax with `score: 'cosine'`):
 *  - softmax: the recipe — every source (in-batch, uniform, popularity, stratified, queue with or without
 *    momentum, neighbourhood, mined from a file), same-tower negatives, logQ, the masks, false-negative
 *    masking, InfoNCE / debiased / gBCE, symmetric — exactly as for the two-tower model; or, with a
 *    'full-catalogue' source, exact cross-entropy over every item ("SASRec+") through Backend.fullSoftmax;
 *  - bce (SASRec, Kang & McAuley 2018): one uniform negative j⁻ ∉ user's training items per row;
 *  - bpr (GNNO's loss, Fan et al. 2023): K negatives per row — `uniform {n}` (∉ the user's training items) and
 *    `neighbourhood {n}` hard negatives drawn for the row's target (loss/pairwise.ts for both).
 * An objective is the step's configuration: stepFor(pair) builds the step; run() is the same step on given
 * outputs H and item table E (tests, and anything that has no tower).
 */
import type { Backend } from '../compute/backend.ts';
import { PerRowLoss, type PairwiseLoss } from '../loss/pairwise.ts';
import type { EncoderBatch, EncoderPair, MomentumItems } from '../model/encoder.ts';
import { Buffers } from '../nn/buffers.ts';
import { defaultRecipe, type Recipe } from '../recipe/schema.ts';
import { buildPerRowNegatives, buildSources, type SourceSet } from '../sampling/build.ts';
import { TrainFrequency } from '../sampling/frequency.ts';
import type { NeighbourhoodSource } from '../sampling/neighbourhood.ts';
import type { BatchContext } from '../sampling/source.ts';
import { ContrastiveStep } from '../train/contrastive-step.ts';
import { UserError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';
import type { StateArrays } from '../util/state.ts';
import type { SeqData } from './data.ts';
import type { PackedBatch } from './packed.ts';
import { ScoreSpace, seqBatch, TableMomentum, type ScoreKind } from './pair.ts';

export type { ScoreKind } from './pair.ts';

export interface ObjectiveInput {
  batch: PackedBatch;
  /** tokens×d tower outputs. */
  H: Float32Array;
  /** Item embedding table (numItems×d). */
  E: Float32Array;
  rng: Rng;
  /** 1-based optimisation step. */
  step: number;
}

export interface ObjectiveOutput {
  loss: number;
  /** Output-side item rows touched and their gradients (ids.length × d). */
  ids: Int32Array;
  grads: Float32Array;
}

export interface SeqObjective {
  readonly name: string;
  readonly recipe: Recipe;
  readonly sources: SourceSet;
  readonly score: ScoreKind;
  /** True when this objective is the exact softmax over every item. */
  readonly fullCatalogue: boolean;
  /** The one contrastive step configured for this objective, training `pair`. */
  stepFor<I>(backend: Backend, pair: EncoderPair<I>): ContrastiveStep<I>;
  /** The same step on given outputs H and table E: the loss, dL/dH into dH, the output-side row gradients. */
  run(backend: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput;
  /** Start of an epoch (0-based): the sources' curricula. */
  setEpoch(epoch: number): void;
}

export type ObjectiveSpec = { kind: 'bce' } | { kind: 'bpr'; recipe: Recipe } | { kind: 'softmax'; recipe: Recipe; score: ScoreKind };

export function buildObjective(spec: ObjectiveSpec, data: SeqData, dim: number): StepObjective {
  if (spec.kind === 'bce') return new BceObjective(data, dim);
  if (spec.kind === 'bpr') return new BprObjective(data, dim, spec.recipe);
  return new SoftmaxObjective(data, dim, spec.recipe, spec.score);
}

/** A uniform item not among user u's training items (SASRec's random_neq); any item if u has them all. */
export function uniformNotIn(data: SeqData, u: number, rng: Rng): number {
  const n = data.numItems;
  const { offsets, cols } = data.trainSet;
  const lo0 = offsets[u];
  const hi0 = offsets[u + 1] - 1;
  if (hi0 - lo0 + 1 >= n) return rng.int(n);
  for (;;) {
    const j = rng.int(n);
    let lo = lo0;
    let hi = hi0;
    let found = false;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      const v = cols[m];
      if (v === j) {
        found = true;
        break;
      }
      if (v < j) lo = m + 1;
      else hi = m - 1;
    }
    if (!found) return j;
  }
}

/** The step's configuration for a sequential objective (see the header). */
export class StepObjective implements SeqObjective {
  private fixed: { pair: MatrixPair; step: ContrastiveStep<PackedBatch> } | null = null;

  constructor(
    readonly name: string,
    protected readonly data: SeqData,
    protected readonly d: number,
    readonly recipe: Recipe,
    readonly sources: SourceSet,
    readonly score: ScoreKind,
    readonly pairwise: PairwiseLoss | null,
  ) {}

  get fullCatalogue(): boolean {
    return this.sources.fullCatalogue;
  }

  stepFor<I>(backend: Backend, pair: EncoderPair<I>): ContrastiveStep<I> {
    return new ContrastiveStep(backend, pair, this.recipe, this.sources, this.pairwise);
  }

  setEpoch(epoch: number): void {
    for (const s of this.sources.sources) s.beginEpoch?.({ epoch, step: 0 });
  }

  run(b: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput {
    if (!this.fixed) {
      const pair = new MatrixPair(this.d, this.data.numItems, this.score);
      this.fixed = { pair, step: this.stepFor(b, pair) };
    }
    const { pair, step } = this.fixed;
    pair.use(inp.H, inp.E, dH);
    step.step = inp.step - 1;
    const { loss } = step.run(seqBatch(inp.batch), inp.rng);
    return { loss, ids: pair.outIds, grads: pair.outGrads };
  }
}

/** The sources of an objective that draws no shared columns (only per-row negatives, or none). */
function perRowSet(data: SeqData, sources: NeighbourhoodSource[]): SourceSet {
  return { sources, freq: new TrainFrequency(data.train.cols, data.numItems), sameTower: false, fullCatalogue: false };
}

/** SASRec's binary cross-entropy with one uniform negative (∉ the user's training items) per position. */
export class BceObjective extends StepObjective {
  constructor(data: SeqData, d: number) {
    const draw = (ctx: BatchContext, _k: number, out: Int32Array) => {
      for (let t = 0; t < ctx.items.length; t++) out[t] = uniformNotIn(data, ctx.users[t], ctx.rng);
    };
    super('bce', data, d, defaultRecipe, perRowSet(data, []), 'dot', new PerRowLoss('bce', 1, draw));
  }
}

/** BPR against per-row negatives: uniform (∉ history) and neighbourhood hard negatives (GNNO). */
export class BprObjective extends StepObjective {
  readonly uniform: number;
  readonly hard: NeighbourhoodSource | null;

  constructor(data: SeqData, d: number, recipe: Recipe) {
    const { uniform, hard } = buildPerRowNegatives(recipe, { numItems: data.numItems, trainItems: data.train.cols, trainSequences: data.train });
    if (uniform + (hard?.n ?? 0) === 0) throw new UserError("recipe: field 'sources': the bpr loss needs at least one negative per row");
    const nh = hard?.n ?? 0;
    const draw = (ctx: BatchContext, K: number, out: Int32Array) => {
      const R = ctx.items.length;
      for (let t = 0; t < R; t++) for (let k = 0; k < uniform; k++) out[t * K + k] = uniformNotIn(data, ctx.users[t], ctx.rng);
      if (hard) {
        hard.hardnessFor(ctx);
        for (let t = 0; t < R; t++) hard.sampler.sampleInto(ctx.items[t], nh, ctx.rng, out, t * K + uniform);
      }
    };
    super('bpr', data, d, recipe, perRowSet(data, hard ? [hard] : []), 'dot', new PerRowLoss('bpr', uniform + nh, draw));
    this.uniform = uniform;
    this.hard = hard;
  }
}

/** The recipe's softmax over shared columns (or the full catalogue), as for every other encoder. */
export class SoftmaxObjective extends StepObjective {
  constructor(data: SeqData, d: number, recipe: Recipe, score: ScoreKind) {
    // The false-negative mask's threshold and margin are cosine similarities ([-1, 1]); on unbounded dot products
    // "within margin of the positive, or above it" drops most hard negatives of an untrained model for good, and
    // training then lowers the loss without learning to rank (measured on Beauty: NDCG@10 stayed at .008).
    if (recipe.corrections.fnMask && score !== 'cosine') {
      throw new UserError("recipe: field 'corrections.fnMask': false-negative masking compares cosine similarities, but this sequence objective scores by unnormalised dot product; train with --score cosine, or drop fnMask");
    }
    const sources = buildSources(recipe, { numItems: data.numItems, trainItems: data.train.cols, trainSequences: data.train, dim: d });
    super('softmax', data, d, recipe, sources, score, null);
  }
}

/**
 * A pair over given arrays: queries are the rows of H, items the rows of E (score space applied); backward
 * writes dL/dH into the caller's buffer and keeps the output-side row gradients; step changes nothing.
 */
class MatrixPair implements EncoderPair<PackedBatch> {
  private H: Float32Array = new Float32Array(0);
  private E: Float32Array = new Float32Array(0);
  private dH: Float32Array = new Float32Array(0);
  private readonly space: ScoreSpace;
  private readonly buf = new Buffers();
  private R = 0;
  outIds: Int32Array = new Int32Array(0);
  outGrads: Float32Array = new Float32Array(0);

  constructor(
    readonly dim: number,
    readonly numItems: number,
    score: ScoreKind,
  ) {
    this.space = new ScoreSpace(score === 'cosine');
  }

  use(H: Float32Array, E: Float32Array, dH: Float32Array): void {
    this.H = H;
    this.E = E;
    this.dH = dH;
  }

  forward(b: Backend, batch: EncoderBatch<PackedBatch>, ids: Int32Array): { q: Float32Array; c: Float32Array } {
    const d = this.dim;
    this.R = batch.rows;
    this.outIds = ids.slice();
    const c = this.buf.f32('c', ids.length * d);
    b.gatherRows(this.E, ids, c, d);
    return { q: this.space.out(b, 'q', this.H, this.R, d), c: this.space.out(b, 'c', c, ids.length, d) };
  }

  backward(b: Backend, dq: Float32Array, dc: Float32Array): void {
    const d = this.dim;
    const n = this.outIds.length;
    this.space.back(b, 'q', dq, this.dH, this.R, d);
    this.outGrads = new Float32Array(n * d);
    this.space.back(b, 'c', dc, this.outGrads, n, d);
  }

  step(): void {}
  setLrScale(): void {}

  embedItems(b: Backend, ids: Int32Array, out: Float32Array): void {
    const d = this.dim;
    const c = this.buf.f32('ec', ids.length * d);
    b.gatherRows(this.E, ids, c, d);
    out.set(this.space.out(b, 'ec.n', c, ids.length, d).subarray(0, ids.length * d));
  }

  momentumItems(m: number): MomentumItems {
    return new TableMomentum({ data: this.E, rows: this.numItems, dim: this.dim }, m, this.space.cosine);
  }

  stateArrays(): StateArrays {
    return [];
  }

  restoreState(): void {}
}
