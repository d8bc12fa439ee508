/**
 * The id + feature two-tower model as an EncoderPair: rows are users (the batch input is their ids), items are
 * embedded by the item tower; the momentum copy of the item side is a MomentumTower (MoCo's key encoder).
 */
import type { Backend } from '../compute/backend.ts';
import type { NamedArray, StateArrays } from '../util/state.ts';
import type { EncoderBatch, EncoderPair, MomentumItems } from './encoder.ts';
import { MomentumTower } from './momentum.ts';
import type { TwoTowerModel } from './two-tower.ts';

export class TwoTowerPair implements EncoderPair<Int32Array> {
  constructor(readonly model: TwoTowerModel) {}

  get dim(): number {
    return this.model.dim;
  }

  get numItems(): number {
    return this.model.item.config.vocabSize;
  }

  forward(b: Backend, batch: EncoderBatch<Int32Array>, ids: Int32Array): { q: Float32Array; c: Float32Array } {
    const q = this.model.user.forward(b, batch.input);
    const c = this.model.item.forward(b, ids);
    return { q, c };
  }

  backward(b: Backend, dq: Float32Array, dc: Float32Array): void {
    this.model.user.backward(b, dq);
    this.model.item.backward(b, dc);
  }

  step(b: Backend): void {
    this.model.user.stepDense(b);
    this.model.item.stepDense(b);
  }

  setLrScale(factor: number): void {
    this.model.setLrScale(factor);
  }

  embedQueries(b: Backend, batch: EncoderBatch<Int32Array>, out: Float32Array): void {
    this.model.user.embed(b, batch.input, out);
  }

  embedItems(b: Backend, ids: Int32Array, out: Float32Array): void {
    this.model.item.embed(b, ids, out);
  }

  momentumItems(m: number): MomentumItems {
    return new MomentumTower(this.model.item, m);
  }

  stateArrays(withOptimizer: boolean): StateArrays {
    return this.model.tensors(withOptimizer);
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    for (const [name, dst] of this.model.tensors(true)) {
      const src = get(name);
      if (!src) throw new RangeError(`checkpoint has no '${name}'`);
      if (src.length !== dst.length) throw new RangeError(`checkpoint tensor '${name}' does not match the configured model`);
      dst.set(src as Float32Array);
    }
  }
}

/** A two-tower batch: users are the rows' input. */
export function twoTowerBatch(users: Int32Array, items: Int32Array): EncoderBatch<Int32Array> {
  return { input: users, rows: users.length, users, items };
}
