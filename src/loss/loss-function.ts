/**
 * The last link of the loss chain, chosen by the recipe: InfoNCE (the backend's fused softmax kernel) or the
 * debiased contrastive loss. Both take the same arguments (logits inputs, bias, masks) and write the same
 * gradients, so every source and correction composes with either.
 */
import type { Backend, ContrastiveArgs } from '../compute/backend.ts';
import type { Recipe } from '../recipe/schema.ts';
import { DebiasedLoss } from './debiased.ts';

export type LossFn = (backend: Backend, args: ContrastiveArgs) => number;

export function lossFunction(recipe: Recipe): LossFn {
  if (recipe.loss.type === 'debiased') {
    const l = new DebiasedLoss(recipe.loss.tauPlus);
    return (b, a) => l.run(b, a);
  }
  return (b, a) => b.contrastive(a);
}
