/**
 * One optimisation step of a sequence tower on a packed batch: forward over every token, the objective's loss
 * and gradients, backward, then one sparse update of the item table with the input-side (history) and
 * output-side (targets, negatives) row gradients together, and Adam on the dense parameters.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';
import type { SeqObjective } from './objectives.ts';
import type { PackedBatch } from './packed.ts';
import type { SeqTower } from './tower.ts';

export class SeqStep {
  step = 0;
  private dH = new Float32Array(0);
  private ids = new Int32Array(0);
  private grads = new Float32Array(0);

  constructor(
    private readonly backend: Backend,
    readonly tower: SeqTower,
    readonly objective: SeqObjective,
  ) {}

  /** Trains on `batch`; returns the loss. */
  run(batch: PackedBatch, rng: Rng): number {
    const b = this.backend;
    const t = this.tower;
    const d = t.dim;
    const R = batch.tokens;
    this.step++;
    const H = t.forward(b, batch, true, rng);
    if (this.dH.length < R * d) this.dH = new Float32Array(Math.ceil(R * 1.25) * d);
    const dH = this.dH.subarray(0, R * d);
    const out = this.objective.run(b, { batch, H, E: t.items.data, rng, step: this.step }, dH);
    t.backward(b, dH);
    const n = R + out.ids.length;
    if (this.ids.length < n) {
      this.ids = new Int32Array(Math.ceil(n * 1.25));
      this.grads = new Float32Array(this.ids.length * d);
    }
    this.ids.set(batch.items);
    this.ids.set(out.ids, R);
    this.grads.set(t.inputGrads());
    this.grads.set(out.grads.subarray(0, out.ids.length * d), R * d);
    t.items.applyGradients(b, this.ids.subarray(0, n), this.grads.subarray(0, n * d));
    t.stepDense(b);
    return out.loss;
  }
}
