/**
 * Shuffled batches in which no item appears twice, so no row's positive is another row's in-batch negative
 * (no accidental hits to mask, every batch has batchSize distinct negatives).
 *
 * Each epoch walks a fresh permutation. An instance whose item is already in the batch being filled is
 * deferred; every batch first takes deferred instances (oldest first) whose item it lacks, then new ones.
 * Leftovers: an item can appear at most once per batch, so at most stepsPerEpoch of its instances fit in an
 * epoch; instances still deferred (or never reached) when the epoch's steps are done are skipped that epoch
 * (a different random subset each epoch: very popular items are down-sampled, as with shuffling's dropped
 * partial batch but concentrated on the head). When the permutation is exhausted and the deferred instances
 * all clash with the batch, the batch is completed with random instances of other items ("refills", already
 * seen this epoch). Counts of both are in stats().
 */
import { UserError } from '../../util/errors.ts';
import type { Rng } from '../../util/rng.ts';
import type { BatchComposer } from './composer.ts';

export class NoDuplicatesComposer implements BatchComposer {
  readonly type = 'no-duplicates';
  private readonly order: Int32Array;
  private readonly out: Int32Array;
  private deferred: Int32Array;
  private deferredLen = 0;
  private ptr = 0;
  /** stamp[item] === batchId when the item is in the batch being filled. */
  private readonly stamp: Int32Array;
  private batchId = 0;
  private rng: Rng | null = null;
  private epochRows = 0;
  private readonly counters = { skippedRows: 0, refillRows: 0, epochs: 0 };

  constructor(
    private readonly items: Int32Array,
    numItems: number,
    private readonly batchSize: number,
    private readonly stepsPerEpoch: number,
  ) {
    const n = items.length;
    this.order = new Int32Array(n);
    this.out = new Int32Array(batchSize);
    this.deferred = new Int32Array(Math.min(n, 1024));
    this.stamp = new Int32Array(numItems);
    const seen = new Uint8Array(numItems);
    let distinct = 0;
    for (let i = 0; i < n; i++) if (!seen[items[i]]) (seen[items[i]] = 1), distinct++;
    if (distinct < batchSize) {
      throw new UserError(`recipe: batchSampler 'no-duplicates' needs at least batch-size (${batchSize}) distinct training items, the data has ${distinct}; lower --batch-size`);
    }
  }

  beginEpoch(_epoch: number, rng: Rng): void {
    this.finishEpoch();
    for (let i = 0; i < this.order.length; i++) this.order[i] = i;
    rng.shuffle(this.order);
    this.rng = rng;
    this.ptr = 0;
    this.deferredLen = 0;
    this.epochRows = 0;
    this.counters.epochs++;
  }

  batch(step: number): Int32Array {
    const { out, order, items, stamp } = this;
    const B = this.batchSize;
    const id = ++this.batchId;
    let f = 0;
    // Deferred instances first (oldest first), compacting the ones that still clash.
    let keep = 0;
    for (let d = 0; d < this.deferredLen; d++) {
      const row = this.deferred[d];
      if (f < B && stamp[items[row]] !== id) {
        stamp[items[row]] = id;
        out[f++] = row;
      } else this.deferred[keep++] = row;
    }
    this.deferredLen = keep;
    while (f < B && this.ptr < order.length) {
      const row = order[this.ptr++];
      if (stamp[items[row]] === id) this.defer(row);
      else {
        stamp[items[row]] = id;
        out[f++] = row;
      }
    }
    this.epochRows += f;
    // Out of fresh instances: complete the batch with random rows of items it lacks.
    while (f < B) {
      const row = this.rng!.int(order.length);
      if (stamp[items[row]] === id) continue;
      stamp[items[row]] = id;
      out[f++] = row;
      this.counters.refillRows++;
    }
    if (step === this.stepsPerEpoch - 1) this.finishEpoch();
    return out;
  }

  stats(): Record<string, number> {
    return { ...this.counters };
  }

  private finishEpoch(): void {
    if (this.rng === null) return;
    this.counters.skippedRows += this.order.length - this.epochRows;
    this.rng = null;
  }

  private defer(row: number): void {
    if (this.deferredLen === this.deferred.length) {
      const grown = new Int32Array(this.deferred.length * 2);
      grown.set(this.deferred);
      this.deferred = grown;
    }
    this.deferred[this.deferredLen++] = row;
  }
}
