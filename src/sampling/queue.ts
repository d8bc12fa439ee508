/**
 * Cross-batch memory (MoCo-style queue): the item embeddings of the last `size` positives, kept as fixed
 * vectors (no gradient) and reused as negatives, so the number of negatives no longer depends on the batch
 * size. Filled after each step with the batch's positives, embedded by the item tower or by its momentum
 * (EMA) copy. The queue holds past positives, drawn with the data's frequency: logq = log(size·p_j).
 * The users of those rows travel along so same-user masking applies to the queue too. The queue owns its
 * momentum copy of the item side (taken from the encoder pair it is bound to) and refreshes it after each step.
 */
import { restoreInto, type NamedArray, type StateArrays, type Stateful } from '../util/state.ts';
import type { FrequencyEstimator } from './frequency.ts';
import type { AfterStepContext, BatchContext, Candidates, ItemEncoder, MomentumEmbedder, NegativeSource } from './source.ts';
import type { SourceLimits } from '../recipe/limits.ts';

export class QueueSource implements NegativeSource, Stateful {
  readonly name = 'queue';
  readonly usesPositives = false;

  /** Memory estimate of the recipe's sizes (recipe/limits.ts). */
  static limits(s: { size: number }, lim: SourceLimits, field: (k: string) => string): void {
    lim.check(field('size'), `a queue of ${s.size} embeddings`, lim.columnBytes(s.size) + s.size * (4 * lim.d + 12), s.size * Math.max(lim.d, lim.B));
  }
  private readonly ids: Int32Array;
  private readonly users: Int32Array;
  private readonly emb: Float32Array;
  private readonly logq: Float32Array;
  private head = 0;
  private filled = 0;
  private momentumCopy: MomentumEmbedder | null = null;
  private momentumEmb = new Float32Array(0);

  constructor(
    readonly size: number,
    readonly dim: number,
    private readonly freq: FrequencyEstimator,
    /** EMA coefficient of the momentum item tower (0 = embed with the online tower). */
    readonly momentum: number,
  ) {
    this.ids = new Int32Array(size);
    this.users = new Int32Array(size);
    this.emb = new Float32Array(size * dim);
    this.logq = new Float32Array(size);
  }

  /** With momentum, takes the EMA copy of the encoder's item side (initialised to its current weights). */
  bind(encoder: ItemEncoder): void {
    if (encoder.dim !== this.dim) throw new RangeError(`queue of ${this.dim}-vectors bound to an encoder of ${encoder.dim}`);
    this.momentumCopy = this.momentum > 0 ? encoder.momentumItems(this.momentum) : null;
  }

  /**
   * Enqueues the batch's positives: their train-mode embeddings, or with momentum their embeddings by the
   * momentum copy after its EMA update; then records them in the (streaming) frequency estimate.
   */
  afterStep(ctx: AfterStepContext): void {
    let emb = ctx.positives;
    if (this.momentumCopy) {
      this.momentumCopy.update();
      const n = ctx.items.length * this.dim;
      if (this.momentumEmb.length < n) this.momentumEmb = new Float32Array(n);
      emb = this.momentumEmb.subarray(0, n);
      this.momentumCopy.embed(ctx.backend, ctx.items, emb);
    }
    this.enqueue(ctx.items, ctx.users, emb);
    this.freq.observe(ctx.items, ctx.step);
  }

  stats(): Record<string, number> {
    return { filled: this.filled, size: this.size };
  }

  /** The current contents (oldest entries are overwritten first; order does not matter to the loss). */
  sample(_ctx: BatchContext): Candidates {
    const n = this.filled;
    const ids = this.ids.subarray(0, n);
    this.freq.logExpectedCount(ids, this.size, this.logq);
    return { ids, logq: this.logq.subarray(0, n), userKey: this.users.subarray(0, n), embeddings: this.emb.subarray(0, n * this.dim) };
  }

  logExpectedCount(ids: Int32Array, _b: number, out: Float32Array): void {
    this.freq.logExpectedCount(ids, this.size, out);
  }

  stateArrays(): StateArrays {
    return [
      ['queue.ids', this.ids],
      ['queue.users', this.users],
      ['queue.emb', this.emb],
      ['queue.cursor', Int32Array.of(this.head, this.filled)],
      ...(this.momentumCopy?.stateArrays() ?? []),
    ];
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    restoreInto(get, 'queue.ids', this.ids);
    restoreInto(get, 'queue.users', this.users);
    restoreInto(get, 'queue.emb', this.emb);
    const cursor = new Int32Array(2);
    restoreInto(get, 'queue.cursor', cursor);
    [this.head, this.filled] = cursor;
    this.momentumCopy?.restoreState(get);
  }

  /** Adds a batch (ids, users, embeddings n×dim), overwriting the oldest entries. */
  enqueue(items: Int32Array, users: Int32Array, emb: Float32Array): void {
    const d = this.dim;
    for (let r = 0; r < items.length; r++) {
      const h = this.head;
      this.ids[h] = items[r];
      this.users[h] = users[r];
      this.emb.set(emb.subarray(r * d, r * d + d), h * d);
      this.head = (h + 1) % this.size;
      if (this.filled < this.size) this.filled++;
    }
  }
}
