/**
 * Turns a recipe's `sources` and logQ settings into negative-source modules and the frequency estimator
 * they share, and dispatches each source's size estimate (recipe/limits.ts). The only place besides the
 * schema that reads source type names (test/type-names.test.ts fails if another file does).
 */
import type { Csr } from '../data/csr.ts';
import type { CategoricalFeature } from '../data/types.ts';
import type { Recipe, SourceSpec } from '../recipe/schema.ts';
import { checkRecipeLimits, type RecipeData, type SourceLimits } from '../recipe/limits.ts';
import { UserError } from '../util/errors.ts';
import { StreamingFrequency, TrainFrequency, type FrequencyEstimator } from './frequency.ts';
import { InBatchSource } from './in-batch.ts';
import { MinedSource, type MinedContext } from './mined.ts';
import { neighbourhoodSource, NeighbourhoodSource } from './neighbourhood.ts';
import { PopularitySource } from './popularity.ts';
import { QueueSource } from './queue.ts';
import type { NegativeSource } from './source.ts';
import { StratifiedSource } from './stratified.ts';
import { UniformSource } from './uniform.ts';

export interface SourceContext {
  numItems: number;
  trainItems: Int32Array;
  /** Item categorical features of the data (for stratified sources). */
  itemFeatures?: CategoricalFeature[];
  /** Output size of the towers (for the queue). */
  dim?: number;
  /** Each user's training items in time order (for neighbourhood negatives). */
  trainSequences?: Csr;
  /** User of each training row, when trainSequences is not given (rows grouped by user in row order). */
  trainUsers?: Int32Array;
  /** A retriever over the live model, for online mined negatives (see sampling/live-retriever.ts). */
  liveRetriever?: MinedContext['liveRetriever'];
  /** The data's user and item ids by index (for mined negatives read from a file). */
  userIds?: string[];
  itemIds?: string[];
  /** Rows per batch, for the memory estimate of the recipe's sizes (recipe/limits.ts). */
  batchSize?: number;
  /** Named mined-negative pools of the data (text: 'bm25'), see sampling/mined.ts. */
  namedPools?: MinedContext['namedPools'];
}

export interface SourceSet {
  /** Sources of item candidates, in recipe order (each owns its state: see source.ts). */
  sources: NegativeSource[];
  freq: FrequencyEstimator;
  /** Same-tower negatives (SamToNe): a query-side correction the assembler applies, not a source of items. */
  sameTower: boolean;
  /**
   * Exact softmax over the full catalogue requested (a 'full-catalogue' source): the step calls the backend's
   * fullSoftmax instead of composing columns, and `sources` is empty.
   */
  fullCatalogue: boolean;
  /** The full-catalogue source's `precision` (fp32 when absent). */
  fullCataloguePrecision?: 'fp32' | 'bf16';
}

/** Each source's own size estimate, by type (recipe/limits.ts). */
function sourceLimits(s: SourceSpec, field: (k: string) => string, lim: SourceLimits): void {
  switch (s.type) {
    case 'uniform':
      return UniformSource.limits(s, lim, field);
    case 'popularity':
      return PopularitySource.limits(s, lim, field);
    case 'stratified':
      return StratifiedSource.limits(s, lim, field);
    case 'queue':
      return QueueSource.limits(s, lim, field);
    case 'neighbourhood':
      return NeighbourhoodSource.limits(s, lim, field);
    case 'mined':
      return MinedSource.limits(s, lim, field);
    case 'in-batch':
    case 'same-tower':
    case 'full-catalogue':
      return;
  }
}

/**
 * Every size the recipe names, against this data and this machine's memory, before anything is allocated:
 * one UserError naming the field (recipe/limits.ts; `where` names the recipe file).
 */
export function checkRecipeSizes(recipe: Recipe, data: RecipeData, where = 'recipe'): void {
  checkRecipeLimits(recipe, data, where, sourceLimits);
}

export function buildSources(recipe: Recipe, ctx: SourceContext): SourceSet {
  const { numItems, trainItems } = ctx;
  checkRecipeSizes(recipe, { numItems, numInstances: trainItems.length, numUsers: ctx.trainSequences?.rows, dim: ctx.dim ?? 64, batchSize: ctx.batchSize });
  const lq = recipe.corrections.logQ;
  const freq: FrequencyEstimator =
    lq && lq.estimator === 'streaming' ? new StreamingFrequency(numItems, lq.alpha, lq.hashSize) : new TrainFrequency(trainItems, numItems);
  let counts: Float64Array | null = null;
  const itemCounts = () => {
    if (!counts) {
      counts = new Float64Array(numItems);
      for (let i = 0; i < trainItems.length; i++) counts[trainItems[i]]++;
    }
    return counts;
  };
  let queued = false;
  let sameTower = false;
  const fullCatalogue = recipe.sources.some((s) => s.type === 'full-catalogue');
  if (fullCatalogue && recipe.sources.length > 1) {
    throw new UserError("recipe: field 'sources': a 'full-catalogue' source already scores every item, so it takes no other source");
  }
  if (fullCatalogue && recipe.corrections.logQ) throw new UserError("recipe: field 'corrections.logQ': a 'full-catalogue' softmax samples nothing, so logQ does not apply");
  if (fullCatalogue && recipe.loss.type !== 'infonce') throw new UserError(`recipe: field 'loss.type': a 'full-catalogue' source is exact cross-entropy ('infonce'), not '${recipe.loss.type}'`);
  if (fullCatalogue && recipe.loss.symmetric) throw new UserError("recipe: field 'loss.symmetric': a 'full-catalogue' source does not take loss.symmetric (the exact softmax has no item→user direction)");
  if (fullCatalogue && recipe.corrections.fnMask) throw new UserError("recipe: field 'corrections.fnMask': a 'full-catalogue' source does not take corrections.fnMask (the exact softmax masks nothing)");
  const sources: NegativeSource[] = [];
  recipe.sources.forEach((s, idx) => {
    switch (s.type) {
      case 'in-batch':
        sources.push(new InBatchSource(freq));
        break;
      case 'uniform':
        sources.push(new UniformSource(numItems, s.n));
        break;
      case 'popularity':
        sources.push(new PopularitySource(itemCounts(), s.n, s.alpha));
        break;
      case 'stratified': {
        const f = ctx.itemFeatures?.find((x) => x.name === s.column);
        if (!f) {
          const have = ctx.itemFeatures?.map((x) => x.name).join(', ') || 'none';
          throw new UserError(`recipe: field 'sources.${idx}.column': no item feature '${s.column}' in the data (item features: ${have}; load it with --item-features)`);
        }
        sources.push(new StratifiedSource(f.values, s.n));
        break;
      }
      case 'queue':
        if (queued) throw new UserError(`recipe: field 'sources.${idx}': only one queue per recipe`);
        queued = true;
        sources.push(new QueueSource(s.size, ctx.dim ?? 64, freq, s.momentum));
        break;
      case 'same-tower':
        sameTower = true;
        break;
      case 'neighbourhood':
        sources.push(neighbourhoodSource(s, ctx, `sources.${idx}`));
        break;
      case 'mined':
        sources.push(new MinedSource(s, ctx, `sources.${idx}`));
        break;
      case 'full-catalogue':
        break;
    }
  });
  if (fullCatalogue) {
    const spec = recipe.sources.find((s) => s.type === 'full-catalogue');
    return { sources, freq, sameTower, fullCatalogue, fullCataloguePrecision: spec?.type === 'full-catalogue' ? spec.precision : 'fp32' };
  }
  if (!sources.length) throw new UserError("recipe: field 'sources': same-tower negatives need at least one item source (e.g. in-batch)");
  return { sources, freq, sameTower, fullCatalogue };
}

/**
 * Per-row negatives for a pairwise (BPR) objective: `uniform` draws per row (∉ the user's history, drawn by the
 * objective) and at most one neighbourhood source of hard negatives drawn for each row's target (GNNO).
 * Any other source is refused naming its field: it draws columns shared by the batch, not per-row negatives.
 */
export function buildPerRowNegatives(recipe: Recipe, ctx: SourceContext): { uniform: number; hard: NeighbourhoodSource | null } {
  checkRecipeSizes(recipe, { numItems: ctx.numItems, numInstances: ctx.trainItems.length, numUsers: ctx.trainSequences?.rows, dim: ctx.dim ?? 64, batchSize: ctx.batchSize });
  let uniform = 0;
  let hard: NeighbourhoodSource | null = null;
  recipe.sources.forEach((s, i) => {
    if (s.type === 'uniform') uniform += s.n;
    else if (s.type === 'neighbourhood') {
      if (hard) throw new UserError(`recipe: field 'sources.${i}': only one neighbourhood source per recipe`);
      hard = neighbourhoodSource(s, ctx, `sources.${i}`);
    } else throw new UserError(`recipe: field 'sources.${i}.type': the bpr loss takes per-row 'uniform' and 'neighbourhood' negatives, not '${s.type}'`);
  });
  return { uniform, hard };
}
