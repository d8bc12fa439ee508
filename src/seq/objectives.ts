/**
 * Next-item objectives over every token of a packed batch (row t: history up to t, target = the next item),
 * scored s(t, j) = ⟨h_t, e_j⟩ (or cosine / τ for the softmax with `score: 'cosine'`):
 *  - bce (SASRec, Kang & McAuley 2018): one uniform negative j⁻ ∉ user's training items per row,
 *      L = (1/R) Σ_t [softplus(−s(t, j⁺)) + softplus(s(t, j⁻))];
 *  - bpr (GNNO's loss, Fan et al. 2023): K negatives per row — `uniform {n}` (∉ the user's training items) and
 *    `neighbourhood {n}` hard negatives drawn for the row's target — L = (1/RK) Σ_t Σ_k softplus(s(t, j_k) − s(t, j⁺));
 *  - softmax: the recipe's sampled softmax (columns = the sources' candidates, shared by all rows; masks, logQ,
 *    InfoNCE, debiased or gBCE loss), exactly as the two-tower step composes it; or, with a 'full-catalogue'
 *    source, exact cross-entropy over every item ("SASRec+") through the backend's tiled fullSoftmax kernel.
 * Each returns the loss, writes dL/dH and lists the output-side item rows with their gradients.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import { lossFunction, type LossFn } from '../loss/loss-function.ts';
import type { Recipe } from '../recipe/schema.ts';
import { BatchAssembler } from '../sampling/assembler.ts';
import { buildPerRowNegatives, buildSources, type SourceSet } from '../sampling/build.ts';
import type { NeighbourhoodSource } from '../sampling/neighbourhood.ts';
import { UserError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';
import { Buffers } from '../nn/buffers.ts';
import type { SeqData } from './data.ts';
import type { PackedBatch } from './packed.ts';

export type ScoreKind = 'dot' | 'cosine';

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
  /** Writes dL/dH into dH (tokens×d). */
  run(backend: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput;
  /** Called at the start of every epoch (curricula). */
  setEpoch(epoch: number): void;
}

export type ObjectiveSpec = { kind: 'bce' } | { kind: 'bpr'; recipe: Recipe } | { kind: 'softmax'; recipe: Recipe; score: ScoreKind };

export function buildObjective(spec: ObjectiveSpec, data: SeqData, dim: number): SeqObjective {
  if (spec.kind === 'bce') return new BceObjective(data, dim);
  if (spec.kind === 'bpr') return new BprObjective(data, dim, spec.recipe);
  return new SoftmaxObjective(data, dim, spec.recipe, spec.score);
}

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

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

function dot(a: Float32Array, ao: number, b: Float32Array, bo: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += a[ao + k] * b[bo + k];
  return s;
}

/** SASRec's binary cross-entropy with one uniform negative per position. */
export class BceObjective implements SeqObjective {
  readonly name = 'bce';
  private readonly buf = new Buffers();

  constructor(
    private readonly data: SeqData,
    private readonly d: number,
  ) {}

  setEpoch(): void {}

  run(_b: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput {
    const { batch, H, E, rng } = inp;
    const d = this.d;
    const R = batch.tokens;
    const ids = this.buf.i32('ids', 2 * R);
    const grads = this.buf.f32('grads', 2 * R * d);
    let loss = 0;
    for (let t = 0; t < R; t++) {
      const p = batch.targets[t];
      const q = uniformNotIn(this.data, batch.users[batch.seqOf[t]], rng);
      ids[t] = p;
      ids[R + t] = q;
      const ho = t * d;
      const sp = dot(H, ho, E, p * d, d);
      const sn = dot(H, ho, E, q * d, d);
      loss += softplus(-sp) + softplus(sn);
      const gp = (sigmoid(sp) - 1) / R;
      const gn = sigmoid(sn) / R;
      const po = p * d;
      const qo = q * d;
      for (let k = 0; k < d; k++) {
        dH[ho + k] = gp * E[po + k] + gn * E[qo + k];
        grads[ho + k] = gp * H[ho + k];
        grads[(R + t) * d + k] = gn * H[ho + k];
      }
    }
    return { loss: loss / R, ids, grads };
  }
}

/** BPR against per-row negatives: uniform (∉ history) and neighbourhood hard negatives (GNNO). */
export class BprObjective implements SeqObjective {
  readonly name = 'bpr';
  readonly uniform: number;
  readonly hard: NeighbourhoodSource | null;
  private readonly buf = new Buffers();

  constructor(
    private readonly data: SeqData,
    private readonly d: number,
    recipe: Recipe,
  ) {
    const { uniform, hard } = buildPerRowNegatives(recipe, { numItems: data.numItems, trainItems: data.train.cols, trainSequences: data.train });
    if (uniform + (hard?.n ?? 0) === 0) throw new UserError("recipe: field 'sources': the bpr loss needs at least one negative per row");
    this.uniform = uniform;
    this.hard = hard;
  }

  setEpoch(epoch: number): void {
    if (this.hard) this.hard.epoch = epoch;
  }

  run(_b: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput {
    const { batch, H, E, rng } = inp;
    const d = this.d;
    const R = batch.tokens;
    const nh = this.hard?.n ?? 0;
    const K = this.uniform + nh;
    const negs = this.buf.i32('negs', R * K);
    for (let t = 0; t < R; t++) {
      const u = batch.users[batch.seqOf[t]];
      for (let k = 0; k < this.uniform; k++) negs[t * K + k] = uniformNotIn(this.data, u, rng);
    }
    if (this.hard) {
      const users = this.buf.i32('users', R);
      for (let t = 0; t < R; t++) users[t] = batch.users[batch.seqOf[t]];
      this.hard.hardnessFor({ users, items: batch.targets, step: inp.step, rng });
      for (let t = 0; t < R; t++) this.hard.sampler.sampleInto(batch.targets[t], nh, rng, negs, t * K + this.uniform);
    }
    const ids = this.buf.i32('ids', R * (K + 1));
    const grads = this.buf.f32('grads', R * (K + 1) * d);
    let loss = 0;
    const inv = 1 / (R * K);
    for (let t = 0; t < R; t++) {
      const p = batch.targets[t];
      const ho = t * d;
      const po = p * d;
      const sp = dot(H, ho, E, po, d);
      for (let k = 0; k < d; k++) dH[ho + k] = 0;
      let gPos = 0;
      for (let k = 0; k < K; k++) {
        const q = negs[t * K + k];
        const qo = q * d;
        const diff = sp - dot(H, ho, E, qo, d);
        loss += softplus(-diff);
        const g = (sigmoid(diff) - 1) * inv; // dL/d diff
        gPos += g;
        const row = R + t * K + k;
        ids[row] = q;
        for (let z = 0; z < d; z++) {
          dH[ho + z] += g * (E[po + z] - E[qo + z]);
          grads[row * d + z] = -g * H[ho + z];
        }
      }
      ids[t] = p;
      for (let z = 0; z < d; z++) grads[ho + z] = gPos * H[ho + z];
    }
    return { loss: loss * inv, ids, grads };
  }
}

/** The recipe's sampled softmax over shared columns (in-batch positives first, then the sources' draws). */
export class SoftmaxObjective implements SeqObjective {
  readonly name = 'softmax';
  readonly sources: SourceSet;
  private readonly asm: BatchAssembler;
  private readonly loss: LossFn;
  private readonly buf = new Buffers();

  constructor(
    private readonly data: SeqData,
    private readonly d: number,
    private readonly recipe: Recipe,
    private readonly score: ScoreKind,
  ) {
    if (recipe.loss.symmetric) throw new UserError("recipe: field 'loss.symmetric': not supported for sequential training");
    this.sources = buildSources(recipe, { numItems: data.numItems, trainItems: data.train.cols, trainSequences: data.train, dim: d });
    // The sequential step has no second query tower to fill a queue from or to draw same-tower negatives with.
    if (this.sources.sources.some((s) => s.afterStep && !s.usesPositives)) throw new UserError("recipe: field 'sources': a 'queue' source is not supported for sequential training (in-batch, uniform, popularity, neighbourhood, full-catalogue are)");
    if (this.sources.sameTower) throw new UserError("recipe: field 'sources': 'same-tower' negatives are not supported for sequential training (in-batch, uniform, popularity, neighbourhood, full-catalogue are)");
    this.asm = new BatchAssembler(this.sources, recipe, d);
    this.loss = lossFunction(recipe, { numItems: data.numItems });
  }

  /** True when this objective is the exact softmax over every item. */
  get fullCatalogue(): boolean {
    return this.sources.fullCatalogue;
  }

  /** Every item id, for the full catalogue's output-side gradient rows. */
  private allIds(): Int32Array {
    const n = this.data.numItems;
    const ids = this.buf.i32('allIds', n);
    if (n > 0 && ids[n - 1] !== n - 1) for (let j = 0; j < n; j++) ids[j] = j;
    return ids;
  }

  /**
   * The exact full-catalogue loss of rows H against targets (no gradients): the quantity every sampled recipe
   * approximates. Same score (dot or cosine / τ) as training.
   */
  fullLoss(b: Backend, H: Float32Array, E: Float32Array, targets: Int32Array, R: number): number {
    const d = this.d;
    const N = this.data.numItems;
    let q = H;
    let e = E;
    if (this.score === 'cosine') {
      q = new Float32Array(R * d);
      b.l2normForward(H, q, new Float32Array(R), R, d);
      e = new Float32Array(N * d);
      b.l2normForward(E, e, new Float32Array(N), N, d);
    }
    return b.fullSoftmax({ q, e, R, N, d, target: targets.subarray(0, R), scale: 1 / this.recipe.temperature, rowWeight: null, dq: null, de: null });
  }

  private runFull(b: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput {
    const { batch, H, E } = inp;
    const d = this.d;
    const R = batch.tokens;
    const N = this.data.numItems;
    const cosine = this.score === 'cosine';
    let q = H;
    let e = E;
    if (cosine) {
      q = this.buf.f32('qn', R * d);
      b.l2normForward(H, q, this.buf.f32('qnorm', R), R, d);
      e = this.buf.f32('en', N * d);
      b.l2normForward(E, e, this.buf.f32('enorm', N), N, d);
    }
    const dq = this.buf.f32('dq', R * d);
    const de = this.buf.f32('de', N * d).fill(0);
    const loss = b.fullSoftmax({ q, e, R, N, d, target: batch.targets.subarray(0, R), scale: 1 / this.recipe.temperature, rowWeight: null, dq, de });
    if (cosine) {
      b.l2normBackward(q, this.buf.f32('qnorm', R), dq, dH, R, d);
      b.l2normBackward(e, this.buf.f32('enorm', N), de, de, N, d);
    } else dH.set(dq);
    return { loss, ids: this.allIds(), grads: de };
  }

  setEpoch(epoch: number): void {
    for (const s of this.sources.sources) s.beginEpoch?.({ epoch, step: 0 });
  }

  run(b: Backend, inp: ObjectiveInput, dH: Float32Array): ObjectiveOutput {
    if (this.sources.fullCatalogue) return this.runFull(b, inp, dH);
    const { batch, H, E, rng } = inp;
    const d = this.d;
    const R = batch.tokens;
    const users = this.buf.i32('users', R);
    for (let t = 0; t < R; t++) users[t] = batch.users[batch.seqOf[t]];
    const cols = this.asm.columns({ users, items: batch.targets, step: inp.step, rng });
    const N = cols.Nt;
    const ids = cols.ids.subarray(0, N);
    const c = this.buf.f32('c', N * d);
    b.gatherRows(E, ids, c, d);
    const cosine = this.score === 'cosine';
    let q = H;
    let cn = c;
    if (cosine) {
      q = this.buf.f32('qn', R * d);
      b.l2normForward(H, q, this.buf.f32('qnorm', R), R, d);
      cn = this.buf.f32('cn', N * d);
      b.l2normForward(c, cn, this.buf.f32('cnorm', N), N, d);
    }
    const args = this.asm.logits(q, cn, cols, users, batch.targets).forward;
    const dq = this.buf.f32('dq', R * d);
    const dc = this.buf.f32('dc', N * d);
    args.dq = dq;
    args.dc = dc;
    args.maskedCount = null;
    const loss = this.loss(b, args);
    if (cosine) {
      b.l2normBackward(q, this.buf.f32('qnorm', R), dq, dH, R, d);
      b.l2normBackward(cn, this.buf.f32('cnorm', N), dc, dc, N, d);
    } else dH.set(dq);
    return { loss, ids, grads: dc };
  }
}
