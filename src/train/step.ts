/**
 * The two-tower model's view of the one contrastive step (contrastive-step.ts): a TwoTowerPair over the model,
 * batches given as (users, items). Used by the two-tower loop, its diagnostics, tests and benches.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import { TwoTowerPair, twoTowerBatch } from '../model/two-tower-pair.ts';
import type { TwoTowerModel } from '../model/two-tower.ts';
import type { Recipe } from '../recipe/schema.ts';
import type { Columns } from '../sampling/assembler.ts';
import type { SourceSet } from '../sampling/build.ts';
import type { NamedArray, StateArrays } from '../util/state.ts';
import type { Rng } from '../util/rng.ts';
import { ContrastiveStep, type StepResult } from './contrastive-step.ts';

export type { StepResult } from './contrastive-step.ts';

export class TrainStep {
  readonly inner: ContrastiveStep<Int32Array>;

  constructor(backend: Backend, model: TwoTowerModel, recipe: Recipe, sources: SourceSet) {
    this.inner = new ContrastiveStep(backend, new TwoTowerPair(model), recipe, sources);
  }

  get step(): number {
    return this.inner.step;
  }
  set step(s: number) {
    this.inner.step = s;
  }
  get columnCounts(): Float64Array | null {
    return this.inner.columnCounts;
  }
  set columnCounts(c: Float64Array | null) {
    this.inner.columnCounts = c;
  }
  get fullCatalogue(): boolean {
    return this.inner.fullCatalogue;
  }

  beginEpoch(epoch: number): void {
    this.inner.beginEpoch(epoch);
  }

  /** One step on rows (users[r], items[r]). */
  run(users: Int32Array, items: Int32Array, rng: Rng): StepResult {
    return this.inner.run(twoTowerBatch(users, items), rng);
  }

  /** The user→item loss arguments of a batch with inference embeddings, no state change (diagnostics). */
  inspect(users: Int32Array, items: Int32Array, rng: Rng): { args: ContrastiveArgs; cols: Columns } {
    return this.inner.inspect(twoTowerBatch(users, items), rng)!;
  }

  stateArrays(): StateArrays {
    return this.inner.stateArrays();
  }

  restoreState(get: (name: string) => NamedArray | undefined): void {
    this.inner.restoreState(get);
  }
}
