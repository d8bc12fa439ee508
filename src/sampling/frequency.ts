/**
 * Item sampling-probability estimates for logQ correction, expressed as the log of the expected number of
 * times an item appears in one batch (log(B·p_j)): the per-batch "Q" of sampled softmax. A constant shift
 * of all columns does not change the softmax, so only relative values matter.
 */
export interface FrequencyEstimator {
  /** out[r] = log expected count of items[r] in a batch of `batchSize` rows, using the current estimate. */
  logExpectedCount(items: Int32Array, batchSize: number, out: Float32Array): void;
  /** Records the items of the batch just trained on (step is 1-based). */
  observe(items: Int32Array, step: number): void;
  /** Learned state for checkpoints (estimators with none omit these). */
  snapshot?(): FrequencyState;
  restore?(state: FrequencyState): void;
}

/** A streaming estimator's arrays, base64 of their float64 bytes, as stored in a checkpoint's meta. */
export interface FrequencyState {
  kind: 'streaming';
  slots: number;
  A: string;
  B: string;
}

const toBase64 = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
function fromBase64(s: string, into: Float64Array): void {
  const b = Buffer.from(s, 'base64');
  if (b.byteLength !== into.byteLength) throw new RangeError(`frequency state holds ${b.byteLength} bytes, expected ${into.byteLength}`);
  new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(b);
}

/** Fixed probabilities from training-set item counts (with add-one smoothing so no item has q = 0). */
export class TrainFrequency implements FrequencyEstimator {
  private readonly logp: Float32Array;

  constructor(trainItems: Int32Array, numItems: number) {
    const counts = new Float64Array(numItems).fill(1);
    for (let i = 0; i < trainItems.length; i++) counts[trainItems[i]]++;
    const total = trainItems.length + numItems;
    this.logp = new Float32Array(numItems);
    for (let j = 0; j < numItems; j++) this.logp[j] = Math.log(counts[j] / total);
  }

  logExpectedCount(items: Int32Array, batchSize: number, out: Float32Array): void {
    const lb = Math.log(batchSize);
    for (let r = 0; r < items.length; r++) out[r] = lb + this.logp[items[r]];
  }

  observe(): void {}
}

/**
 * Streaming frequency estimation (Yi et al., RecSys 2019, Algorithm 2). Two hashed arrays: A[h] = last step
 * the slot was hit, B[h] = running estimate of the number of steps between hits:
 *   B[h(y)] ← (1−α)·B[h(y)] + α·(t − A[h(y)]);  A[h(y)] ← t.
 * The expected number of occurrences per batch (one batch per step) is 1/B[h(y)], so log Q = −log B[h(y)].
 * Before a slot's first hit B holds the uniform prior numItems/batchSize, and the first hit only sets A.
 * hashSize 0 means one slot per item (no collisions).
 */
export class StreamingFrequency implements FrequencyEstimator {
  private readonly A: Float64Array;
  private readonly B: Float64Array;
  private readonly H: number;
  private initialised = false;

  constructor(
    private readonly numItems: number,
    private readonly alpha: number,
    hashSize = 0,
  ) {
    this.H = hashSize > 0 ? hashSize : numItems;
    this.A = new Float64Array(this.H);
    this.B = new Float64Array(this.H);
  }

  private slot(item: number): number {
    if (this.H === this.numItems) return item;
    // Multiplicative (Fibonacci) hashing spreads consecutive ids.
    return (Math.imul(item + 1, 0x9e3779b1) >>> 0) % this.H;
  }

  private init(batchSize: number): void {
    if (this.initialised) return;
    this.B.fill(Math.max(1, this.numItems / Math.max(1, batchSize)));
    this.initialised = true;
  }

  logExpectedCount(items: Int32Array, batchSize: number, out: Float32Array): void {
    this.init(batchSize);
    for (let r = 0; r < items.length; r++) out[r] = -Math.log(this.B[this.slot(items[r])]);
  }

  snapshot(): FrequencyState {
    return { kind: 'streaming', slots: this.H, A: toBase64(this.A), B: toBase64(this.B) };
  }

  restore(state: FrequencyState): void {
    if (state.kind !== 'streaming' || state.slots !== this.H) throw new RangeError(`frequency state has ${state.slots} slots, the recipe gives ${this.H}`);
    fromBase64(state.A, this.A);
    fromBase64(state.B, this.B);
    this.initialised = true;
  }

  observe(items: Int32Array, step: number): void {
    this.init(items.length);
    const a = this.alpha;
    for (let r = 0; r < items.length; r++) {
      const h = this.slot(items[r]);
      const last = this.A[h];
      if (last === step) continue; // an item twice in one batch counts once per step
      if (last > 0) this.B[h] = (1 - a) * this.B[h] + a * (step - last);
      this.A[h] = step;
    }
  }

  /** Current estimate of the probability that `item` is in a batch (for tests and diagnostics). */
  estimate(item: number): number {
    return 1 / this.B[this.slot(item)];
  }
}
