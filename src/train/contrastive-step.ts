/**
 * The one contrastive training step, written only against an EncoderPair (model/encoder.ts), the batch
 * assembler (sampling/assembler.ts) and the loss chain; the same code trains the id + feature two-tower model,
 * the sequence towers and the text dual encoders:
 *  1. the assembler lays out the columns (positives + the sources' candidates, logQ mixture, mask keys);
 *  2. the pair embeds the rows' queries and the item-side columns (train mode);
 *  3. the loss chain scale → logQ → masks (accidental hits, same user, block, same-tower own query,
 *     false-negative threshold) → loss (InfoNCE, debiased or gBCE); with `symmetric` also the item→user
 *     direction, the two averaged; with same-tower negatives the queries' own block's gradient flows back
 *     into the queries;
 *  4. backward, one optimiser step, then every source's afterStep (queue enqueue + momentum, frequency).
 * A 'full-catalogue' source replaces 1–3 by the exact softmax over every item (Backend.fullSoftmax, tiled, no
 * rows × items logits). A per-row pairwise loss (BCE, BPR: loss/pairwise.ts) lays out each row's own
 * negatives instead of shared columns, through the same pair and the same optimiser step.
 * Buffers are reused across steps (no per-step allocation once sizes are stable).
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import { lossFunction, type LossFn } from '../loss/loss-function.ts';
import type { PairwiseLoss } from '../loss/pairwise.ts';
import type { EncoderBatch, EncoderPair } from '../model/encoder.ts';
import type { Recipe } from '../recipe/schema.ts';
import { BatchAssembler, Scratch, type Columns } from '../sampling/assembler.ts';
import type { SourceSet } from '../sampling/build.ts';
import type { NamedArray, StateArrays } from '../util/state.ts';
import type { Rng } from '../util/rng.ts';

export interface StepResult {
  loss: number;
  /** Number of softmax columns this step (per-row losses: item rows embedded). */
  columns: number;
}

export class ContrastiveStep<Input> {
  readonly assembler: BatchAssembler;
  private readonly loss: LossFn;
  private readonly s = new Scratch();
  private allItems = new Int32Array(0);
  step = 0;
  /** Times each item has been a softmax column (for diagnostics); null = not counted. */
  columnCounts: Float64Array | null = null;

  constructor(
    private readonly backend: Backend,
    readonly pair: EncoderPair<Input>,
    private readonly recipe: Recipe,
    readonly sources: SourceSet,
    /** A per-row pairwise loss (BCE, BPR) instead of the recipe's shared-column loss. */
    private readonly pairwise: PairwiseLoss | null = null,
  ) {
    this.assembler = new BatchAssembler(sources, recipe, pair.dim);
    this.loss = lossFunction(recipe, { numItems: pair.numItems });
    for (const s of sources.sources) s.bind?.(pair);
  }

  /** True when the recipe trains with the exact full-catalogue softmax (no sampled columns, no diagnostics). */
  get fullCatalogue(): boolean {
    return this.sources.fullCatalogue;
  }

  /** Start of an epoch (0-based): every source's beginEpoch. */
  beginEpoch(epoch: number): void {
    for (const s of this.sources.sources) s.beginEpoch?.({ epoch, step: this.step });
  }

  run(batch: EncoderBatch<Input>, rng: Rng): StepResult {
    if (this.pairwise) return this.runPairwise(batch, rng, this.pairwise);
    if (this.sources.fullCatalogue) return this.runFullCatalogue(batch, rng);
    const b = this.backend;
    const d = this.pair.dim;
    const B = batch.rows;
    this.step++;
    const cols = this.assembler.columns({ users: batch.users, items: batch.items, step: this.step, rng });
    if (this.columnCounts) for (let j = 0; j < cols.N; j++) this.columnCounts[cols.ids[j]]++;
    const { q, c: ct } = this.pair.forward(b, batch, cols.ids.subarray(0, cols.Nt), rng);
    const spec = this.assembler.logits(q, ct, cols, batch.users, batch.items);
    const a = spec.forward;
    const dq = this.s.f32('dq', B * d);
    const dcAll = this.s.f32('dc', a.N * d);
    a.dq = dq;
    a.dc = dcAll;
    let loss = this.loss(b, a);
    // Gradient w.r.t. the item-side columns, and extra query gradient from the same-tower block.
    const dct = this.s.f32('dct', cols.Nt * d);
    dct.set(dcAll.subarray(0, cols.Nt * d));
    if (spec.sameTower) addInto(dq, dcAll.subarray(cols.N * d, (cols.N + B) * d));
    const r = spec.reverse;
    if (r) {
      const dPos = this.s.f32('dpos', B * d);
      const dc2 = this.s.f32('dc2', r.N * d);
      r.dq = dPos;
      r.dc = dc2;
      loss = 0.5 * (loss + this.loss(b, r));
      // Columns of the reverse pass: [queries (B) ; positives' items (B) with same-tower].
      addInto(dq, dc2.subarray(0, B * d));
      addInto(dct.subarray(0, B * d), dPos);
      if (spec.sameTower) addInto(dct.subarray(0, B * d), dc2.subarray(B * d, 2 * B * d));
      scaleInPlace(dq, 0.5);
      scaleInPlace(dct, 0.5);
    }
    this.pair.backward(b, dq, dct);
    const positives = this.positives(ct, B * d);
    this.pair.step(b);
    this.afterStep(batch, positives);
    return { loss, columns: a.N };
  }

  /** The positives' item-side embeddings as the loss saw them, kept past the optimiser step (c may alias weights). */
  private positives(c: Float32Array, n: number): Float32Array {
    if (!this.sources.sources.some((s) => s.afterStep)) return c.subarray(0, 0);
    const p = this.s.f32('positives', n);
    p.set(c.subarray(0, n));
    return p;
  }

  private afterStep(batch: EncoderBatch<Input>, positives: Float32Array): void {
    const ctx = { backend: this.backend, users: batch.users, items: batch.items, step: this.step, positives };
    // Queue enqueue + momentum update, streaming-frequency counts: each source's own business.
    for (const s of this.sources.sources) s.afterStep?.(ctx);
  }

  /** Every item id (the full catalogue's columns). */
  private everyItem(): Int32Array {
    const N = this.pair.numItems;
    if (this.allItems.length !== N) this.allItems = Int32Array.from({ length: N }, (_, i) => i);
    return this.allItems;
  }

  /**
   * Exact softmax over every item: the item side embeds the whole catalogue, the tiled kernel returns the loss,
   * dL/dq and dL/de without ever holding rows × items logits, and every item row gets its gradient.
   */
  private runFullCatalogue(batch: EncoderBatch<Input>, rng: Rng): StepResult {
    const b = this.backend;
    const d = this.pair.dim;
    const B = batch.rows;
    const N = this.pair.numItems;
    this.step++;
    const { q, c: e } = this.pair.forward(b, batch, this.everyItem(), rng);
    const dq = this.s.f32('dq', B * d);
    const de = this.s.f32('de', N * d).fill(0);
    const precision = this.sources.fullCataloguePrecision ?? 'fp32';
    const loss = b.fullSoftmax({ q, e, R: B, N, d, target: batch.items, scale: 1 / this.recipe.temperature, rowWeight: null, dq, de, precision });
    if (this.columnCounts) for (let j = 0; j < N; j++) this.columnCounts[j]++;
    this.pair.backward(b, dq, de);
    this.pair.step(b);
    this.afterStep(batch, new Float32Array(0)); // a full-catalogue recipe has no other source (build.ts)
    return { loss, columns: N };
  }

  /** A per-row pairwise loss: item rows [positives (R) ; each row's negatives (R × K)]. */
  private runPairwise(batch: EncoderBatch<Input>, rng: Rng, pl: PairwiseLoss): StepResult {
    const b = this.backend;
    const d = this.pair.dim;
    const R = batch.rows;
    this.step++;
    const ctx = { users: batch.users, items: batch.items, step: this.step, rng };
    const ids = pl.layout(ctx);
    const { q, c } = this.pair.forward(b, batch, ids, rng);
    const dq = this.s.f32('dq', R * d);
    const dc = this.s.f32('dc', ids.length * d);
    const loss = pl.loss(b, q, c, R, d, dq, dc);
    this.pair.backward(b, dq, dc);
    const positives = this.positives(c, R * d);
    this.pair.step(b);
    this.afterStep(batch, positives);
    return { loss, columns: ids.length };
  }

  /**
   * The sampled loss of this recipe on rows whose query vectors `q` are given (inference embeddings), with the
   * item side embedded by inference too, without gradients or any state change (sources are sampled, not
   * stepped): the quantity compared with the exact full-catalogue loss (fullLoss) in validation.
   */
  sampledLoss(q: Float32Array, users: Int32Array, items: Int32Array, rng: Rng): number {
    const d = this.pair.dim;
    const cols = this.assembler.columns({ users, items, step: this.step, rng }, 'eval.');
    const ct = new Float32Array(cols.Nt * d);
    this.pair.embedItems(this.backend, cols.ids.subarray(0, cols.Nt), ct);
    const spec = this.assembler.logits(q, ct, cols, users, items, true);
    return this.loss(this.backend, spec.forward);
  }

  /** The exact full-catalogue softmax loss of query rows `q` against `items` (inference item embeddings). */
  fullLoss(q: Float32Array, items: Int32Array): number {
    const d = this.pair.dim;
    const N = this.pair.numItems;
    const e = new Float32Array(N * d);
    this.pair.embedItems(this.backend, this.everyItem(), e);
    return this.backend.fullSoftmax({ q, e, R: items.length, N, d, target: items, scale: 1 / this.recipe.temperature, rowWeight: null, dq: null, de: null });
  }

  /** Every source's learned state (queue contents, momentum copy), prefixed `train.`, for checkpoints. */
  stateArrays(): StateArrays {
    return this.sources.sources.flatMap((s) => (s.stateArrays?.() ?? []).map(([n, a]): [string, NamedArray] => [`train.${n}`, a]));
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    for (const s of this.sources.sources) s.restoreState?.((n) => get(`train.${n}`));
  }

  /**
   * The user→item loss arguments of a batch computed with inference embeddings and without changing any state
   * (sources are sampled, not stepped): for diagnostics. Null when the pair has no inference query embedding.
   */
  inspect(batch: EncoderBatch<Input>, rng: Rng): { args: ContrastiveArgs; cols: Columns } | null {
    const embedQueries = this.pair.embedQueries?.bind(this.pair);
    if (!embedQueries) return null;
    const b = this.backend;
    const d = this.pair.dim;
    const cols = this.assembler.columns({ users: batch.users, items: batch.items, step: this.step, rng });
    const q = new Float32Array(batch.rows * d);
    embedQueries(b, batch, q);
    const ct = new Float32Array(cols.Nt * d);
    this.pair.embedItems(b, cols.ids.subarray(0, cols.Nt), ct);
    return { args: this.assembler.logits(q, ct, cols, batch.users, batch.items, true).forward, cols };
  }
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] += src[i];
}

function scaleInPlace(a: Float32Array, f: number): void {
  for (let i = 0; i < a.length; i++) a[i] *= f;
}
