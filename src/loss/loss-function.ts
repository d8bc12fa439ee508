/**
 * The last link of the loss chain, chosen by the recipe: InfoNCE (the backend's fused softmax kernel), the
 * debiased contrastive loss, or gBCE. Both take the same arguments (logits inputs, bias, masks) and write the same
 * gradients, so every source and correction composes with either.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import type { Recipe } from '../recipe/schema.ts';
import { DebiasedLoss } from './debiased.ts';
import { gbceLoss } from './gbce.ts';
import { UserError } from '../util/errors.ts';

export type LossFn = (backend: Backend, args: ContrastiveArgs) => number;

/** `numItems`: catalogue size, needed by gBCE's calibration (α = negatives / (numItems − 1)). */
export function lossFunction(recipe: Recipe, ctx: { numItems?: number } = {}): LossFn {
  if (recipe.loss.type === 'gbce') {
    const n = ctx.numItems;
    if (!n) throw new UserError("recipe: field 'loss.type': 'gbce' is not supported here (it needs the catalogue size; use it with `towerlab seq`)");
    const { t, reduction } = recipe.loss;
    return (b, a) => gbceLoss(b, a, t, n, reduction);
  }
  if (recipe.loss.type === 'debiased') {
    const l = new DebiasedLoss(recipe.loss.tauPlus);
    return (b, a) => l.run(b, a);
  }
  return (b, a) => b.contrastive(a);
}
