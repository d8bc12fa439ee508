/**
 * One optimisation step of the two-tower model: embed the batch's users, lay out the softmax columns
 * (positives + the recipe's negatives), embed them with the item tower, run the loss chain, back-propagate
 * through both towers and update (sparse rows + dense Adam). Allocation-free after the first step.
 */
import type { Backend } from '../compute/backend.ts';
import { ColumnBuilder } from '../loss/columns.ts';
import { SampledSoftmax } from '../loss/sampled-softmax.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import type { Recipe } from '../recipe/schema.ts';
import type { SourceSet } from '../sampling/build.ts';
import type { Rng } from '../util/rng.ts';

export interface StepResult {
  loss: number;
  /** Number of softmax columns this step (B + sampled negatives). */
  columns: number;
}

export class TrainStep {
  private readonly cols: ColumnBuilder;
  private readonly loss: SampledSoftmax;
  private readonly withLogQ: boolean;
  step = 0;

  constructor(
    private readonly backend: Backend,
    private readonly model: TwoTowerModel,
    recipe: Recipe,
    private readonly sources: SourceSet,
  ) {
    this.cols = new ColumnBuilder(sources.sources);
    this.withLogQ = recipe.corrections.logQ !== false;
    this.loss = new SampledSoftmax({
      temperature: recipe.temperature,
      logQ: this.withLogQ,
      maskSameItem: recipe.corrections.maskSameItem,
      maskSameUser: recipe.corrections.maskSameUser,
    });
  }

  run(users: Int32Array, items: Int32Array, rng: Rng): StepResult {
    const b = this.backend;
    const m = this.model;
    this.step++;
    const cols = this.cols.build({ users, items, step: this.step, rng }, this.withLogQ);
    const q = m.user.forward(b, users);
    const c = m.item.forward(b, cols.ids);
    const loss = this.loss.run(b, q, c, m.dim, users, items, cols);
    m.user.backward(b, this.loss.dq);
    m.item.backward(b, this.loss.dc);
    m.user.stepDense(b);
    m.item.stepDense(b);
    this.sources.freq.observe(items, this.step);
    return { loss, columns: cols.N };
  }

  /** Masked candidates per row in the last step (accidental hits etc.), for diagnostics. */
  lastMaskedCount(): Int32Array {
    return this.loss.maskedCount;
  }
}
