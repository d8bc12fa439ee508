/**
 * One optimisation step of the two-tower model, composed from the recipe:
 *  1. lay out the item columns (positives + the sources' negatives; see loss/columns.ts);
 *  2. embed users and the tower-embedded columns; append fixed (queue) embeddings, and with same-tower
 *     negatives the batch's own queries (SamToNe: s(q_i, q_j) joins the denominator);
 *  3. run the loss chain scale → logQ → masks (accidental hits, same user, false-negative threshold) → loss
 *     (InfoNCE or debiased); with `symmetric`, also the item→user direction, the two losses averaged;
 *  4. back-propagate into both towers, update (sparse rows + dense Adam), refresh queue and frequency state.
 * Buffers are reused across steps (no per-step allocation once sizes are stable).
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import { ColumnBuilder, type Columns } from '../loss/columns.ts';
import { lossFunction, type LossFn } from '../loss/loss-function.ts';
import { MomentumTower } from '../model/momentum.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import type { Recipe } from '../recipe/schema.ts';
import type { SourceSet } from '../sampling/build.ts';
import type { NamedArray } from '../model/tensor-file.ts';
import { UserError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';
import type { StateArrays } from './training-state.ts';

export interface StepResult {
  loss: number;
  /** Number of softmax columns this step. */
  columns: number;
}

/** Grow-only scratch buffers. */
class Scratch {
  private readonly f = new Map<string, Float32Array>();
  private readonly i = new Map<string, Int32Array>();
  f32(name: string, n: number): Float32Array {
    let a = this.f.get(name);
    if (!a || a.length < n) this.f.set(name, (a = new Float32Array(Math.max(n, Math.ceil((a?.length ?? 0) * 1.5)))));
    return a.subarray(0, n);
  }
  i32(name: string, n: number): Int32Array {
    let a = this.i.get(name);
    if (!a || a.length < n) this.i.set(name, (a = new Int32Array(Math.max(n, Math.ceil((a?.length ?? 0) * 1.5)))));
    return a.subarray(0, n);
  }
}

export class TrainStep {
  private readonly cols: ColumnBuilder;
  private readonly loss: LossFn;
  private readonly withLogQ: boolean;
  private readonly s = new Scratch();
  private readonly momentum: MomentumTower | null;
  step = 0;
  /** Times each item has been a softmax column (for diagnostics); null = not counted. */
  columnCounts: Float64Array | null = null;

  constructor(
    private readonly backend: Backend,
    private readonly model: TwoTowerModel,
    private readonly recipe: Recipe,
    private readonly sources: SourceSet,
  ) {
    if (sources.fullCatalogue && (recipe.loss.symmetric || recipe.corrections.fnMask)) {
      // buildSources already refused other sources, logQ and non-softmax losses; these two would be ignored silently.
      throw new UserError(`recipe: a 'full-catalogue' source does not take ${recipe.loss.symmetric ? 'loss.symmetric' : 'corrections.fnMask'}`);
    }
    this.cols = new ColumnBuilder(sources.sources, model.dim);
    this.withLogQ = recipe.corrections.logQ !== false;
    this.loss = lossFunction(recipe);
    const m = sources.queue?.momentum ?? 0;
    this.momentum = m > 0 ? new MomentumTower(model.item, m) : null;
  }

  /** True when the recipe trains with the exact full-catalogue softmax (no sampled columns, no diagnostics). */
  get fullCatalogue(): boolean {
    return this.sources.fullCatalogue;
  }

  run(users: Int32Array, items: Int32Array, rng: Rng): StepResult {
    if (this.sources.fullCatalogue) return this.runFullCatalogue(users, items);
    const b = this.backend;
    const m = this.model;
    const d = m.dim;
    const B = users.length;
    this.step++;
    const cols = this.cols.build({ users, items, step: this.step, rng }, this.withLogQ);
    if (this.columnCounts) for (let j = 0; j < cols.N; j++) this.columnCounts[cols.ids[j]]++;
    const q = m.user.forward(b, users);
    const ct = m.item.forward(b, cols.ids.subarray(0, cols.Nt));
    const a = this.forwardArgs(q, ct, users, items, cols);
    const dq = this.s.f32('dq', B * d);
    const dcAll = this.s.f32('dc', a.N * d);
    a.dq = dq;
    a.dc = dcAll;
    let loss = this.loss(b, a);
    // Gradient w.r.t. the item-tower columns, and extra query gradient from the same-tower block.
    const dct = this.s.f32('dct', cols.Nt * d);
    dct.set(dcAll.subarray(0, cols.Nt * d));
    if (this.sources.sameTower) addInto(dq, dcAll.subarray(cols.N * d, (cols.N + B) * d));
    if (this.recipe.loss.symmetric) {
      const r = this.reverseArgs(q, ct, users, items);
      const dPos = this.s.f32('dpos', B * d);
      const dc2 = this.s.f32('dc2', r.N * d);
      r.dq = dPos;
      r.dc = dc2;
      loss = 0.5 * (loss + this.loss(b, r));
      // Columns of the reverse pass: [users (B) ; positives' items (B) with same-tower].
      addInto(dq, dc2.subarray(0, B * d));
      addInto(dct.subarray(0, B * d), dPos);
      if (this.sources.sameTower) addInto(dct.subarray(0, B * d), dc2.subarray(B * d, 2 * B * d));
      scaleInPlace(dq, 0.5);
      scaleInPlace(dct, 0.5);
    }
    m.user.backward(b, dq);
    m.item.backward(b, dct);
    m.user.stepDense(b);
    m.item.stepDense(b);
    const queue = this.sources.queue;
    if (queue) {
      let emb = ct.subarray(0, B * d);
      if (this.momentum) {
        this.momentum.update();
        emb = this.s.f32('momentum', B * d);
        this.momentum.embed(b, items, emb);
      }
      queue.enqueue(items, users, emb);
    }
    this.sources.freq.observe(items, this.step);
    return { loss, columns: a.N };
  }

  /**
   * Exact softmax over every item: the item tower embeds the whole catalogue, the tiled kernel returns the loss,
   * dL/dq and dL/de without ever holding B × items logits, and every item row gets its gradient.
   */
  private runFullCatalogue(users: Int32Array, items: Int32Array): StepResult {
    const b = this.backend;
    const m = this.model;
    const d = m.dim;
    const B = users.length;
    const N = m.item.config.vocabSize;
    this.step++;
    let all = this.allItems;
    if (all.length !== N) all = this.allItems = Int32Array.from({ length: N }, (_, i) => i);
    const q = m.user.forward(b, users);
    const e = m.item.forward(b, all);
    const dq = this.s.f32('dq', B * d);
    const de = this.s.f32('de', N * d).fill(0);
    const loss = b.fullSoftmax({ q, e, R: B, N, d, target: items, scale: 1 / this.recipe.temperature, rowWeight: null, dq, de });
    if (this.columnCounts) for (let j = 0; j < N; j++) this.columnCounts[j]++;
    m.user.backward(b, dq);
    m.item.backward(b, de);
    m.user.stepDense(b);
    m.item.stepDense(b);
    this.sources.freq.observe(items, this.step);
    return { loss, columns: N };
  }

  private allItems = new Int32Array(0);

  /** The queue's contents and the momentum tower, for checkpoints (training-state.ts). */
  stateArrays(): StateArrays {
    const prefix = (arrays: StateArrays): StateArrays => arrays.map(([n, a]) => [`train.${n}`, a]);
    return [...prefix(this.sources.queue?.stateArrays() ?? []), ...prefix(this.momentum?.stateArrays() ?? [])];
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    const unprefixed = (n: string) => get(`train.${n}`);
    this.sources.queue?.restoreState(unprefixed);
    this.momentum?.restoreState(unprefixed);
  }

  /**
   * The user→item loss arguments of a batch computed with inference embeddings and without changing any state
   * (the queue is read, not filled): for diagnostics. Returns the args (without gradient outputs) and columns.
   */
  inspect(users: Int32Array, items: Int32Array, rng: Rng): { args: ContrastiveArgs; cols: Columns } {
    const b = this.backend;
    const m = this.model;
    const cols = this.cols.build({ users, items, step: this.step, rng }, this.withLogQ);
    const q = new Float32Array(users.length * m.dim);
    m.user.embed(b, users, q);
    const ct = new Float32Array(cols.Nt * m.dim);
    m.item.embed(b, cols.ids.subarray(0, cols.Nt), ct);
    const args = this.forwardArgs(q, ct, users, items, cols, true);
    return { args, cols };
  }

  /** User→item direction: rows = queries, columns = [items (tower) ; fixed ; queries (same-tower)]. */
  private forwardArgs(q: Float32Array, ct: Float32Array, users: Int32Array, items: Int32Array, cols: Columns, fresh = false): ContrastiveArgs {
    const d = this.model.dim;
    const B = users.length;
    const same = this.sources.sameTower;
    const N = cols.N + (same ? B : 0);
    const tag = fresh ? 'i.' : '';
    const c = fresh ? new Float32Array(N * d) : this.s.f32('c', N * d);
    c.set(ct.subarray(0, cols.Nt * d));
    if (cols.fixed) c.set(cols.fixed, cols.Nt * d);
    if (same) c.set(q.subarray(0, B * d), cols.N * d);
    const corr = this.recipe.corrections;
    const masks: ContrastiveArgs['masks'] = [];
    // Item key: accidental hits among item columns; always on for the query block (it masks the row's own query).
    if (corr.maskSameItem || same) {
      const key = this.s.i32(tag + 'itemKey', N);
      if (corr.maskSameItem) key.set(cols.ids);
      else key.fill(-1, 0, cols.N);
      if (same) key.set(items, cols.N);
      masks.push({ rowKey: items, colKey: key });
    }
    if (cols.blockKey) {
      const key = this.s.i32(tag + 'blockKey', N);
      key.set(cols.blockKey);
      key.fill(-1, cols.N, N);
      masks.push({ rowKey: this.s.i32('zeros', B).fill(0), colKey: key });
    } else if (corr.maskSameUser) {
      const key = this.s.i32(tag + 'userKey', N);
      key.set(cols.userKey);
      if (same) key.set(users, cols.N);
      masks.push({ rowKey: users, colKey: key });
    }
    let colBias: Float32Array | null = null;
    if (this.withLogQ) {
      colBias = this.s.f32(tag + 'bias', N);
      for (let j = 0; j < cols.N; j++) colBias[j] = -cols.logq[j];
      colBias.fill(0, cols.N, N); // queries are not sampled items: no logQ term
    }
    return {
      q,
      c,
      B,
      N,
      d,
      pos: this.positions(B),
      scale: 1 / this.recipe.temperature,
      colBias,
      masks,
      fnMask: corr.fnMask ? { absThreshold: corr.fnMask.threshold, margin: corr.fnMask.margin } : null,
      rowWeight: null,
      dq: null,
      dc: null,
      maskedCount: this.s.i32(tag + 'masked', B),
    };
  }

  /** Item→user direction: rows = the positives' item embeddings, columns = [queries ; items (same-tower)]. */
  private reverseArgs(q: Float32Array, ct: Float32Array, users: Int32Array, items: Int32Array): ContrastiveArgs {
    const d = this.model.dim;
    const B = users.length;
    const same = this.sources.sameTower;
    const N = same ? 2 * B : B;
    const c = this.s.f32('c2', N * d);
    c.set(q.subarray(0, B * d));
    if (same) c.set(ct.subarray(0, B * d), B * d);
    const itemKey = this.s.i32('r.itemKey', N);
    const userKey = this.s.i32('r.userKey', N);
    itemKey.set(items);
    userKey.set(users);
    if (same) {
      itemKey.set(items, B);
      userKey.set(users, B);
    }
    const corr = this.recipe.corrections;
    const fn = corr.fnMask;
    return {
      q: ct.subarray(0, B * d),
      c,
      B,
      N,
      d,
      pos: this.positions(B),
      scale: 1 / this.recipe.temperature,
      colBias: null,
      // Another row with the same item or the same user is a positive pair in this direction too.
      masks: [
        { rowKey: items, colKey: itemKey },
        { rowKey: users, colKey: userKey },
      ],
      fnMask: fn ? { absThreshold: fn.threshold, margin: fn.margin } : null,
      rowWeight: null,
      dq: null,
      dc: null,
      maskedCount: null,
    };
  }

  private positions(B: number): Int32Array {
    const p = this.s.i32('pos', B);
    if (p[B - 1] !== B - 1 || p[0] !== 0) for (let i = 0; i < B; i++) p[i] = i;
    return p;
  }
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] += src[i];
}

function scaleInPlace(a: Float32Array, f: number): void {
  for (let i = 0; i < a.length; i++) a[i] *= f;
}
