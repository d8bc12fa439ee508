/** Plain shuffling: a fresh random permutation of the instances every epoch, cut into consecutive batches. */
import type { Rng } from '../../util/rng.ts';
import type { BatchComposer } from './composer.ts';

export class ShuffleComposer implements BatchComposer {
  readonly type = 'shuffle';
  private readonly order: Int32Array;

  constructor(
    n: number,
    private readonly batchSize: number,
  ) {
    this.order = new Int32Array(n);
  }

  beginEpoch(_epoch: number, rng: Rng): void {
    // Exactly the draws the trainer made before composers existed, so runs stay bit-identical.
    const order = this.order;
    for (let i = 0; i < order.length; i++) order[i] = i;
    rng.shuffle(order);
  }

  batch(step: number): Int32Array {
    return this.order.subarray(step * this.batchSize, (step + 1) * this.batchSize);
  }

  stats(): Record<string, number> {
    return {};
  }
}
