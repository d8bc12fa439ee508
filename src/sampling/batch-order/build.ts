/** Builds the batch composer a recipe's `batchSampler` names. */
import type { BatchSamplerSpec } from '../../recipe/schema.ts';
import { UserError } from '../../util/errors.ts';
import type { BatchComposer, ComposerContext } from './composer.ts';
import { NoDuplicatesComposer } from './no-duplicates.ts';
import { RwrComposer } from './rwr.ts';
import { ShuffleComposer } from './shuffle.ts';

export function buildBatchComposer(spec: BatchSamplerSpec | undefined, ctx: ComposerContext): BatchComposer {
  const n = ctx.trainUsers.length;
  switch (spec?.type ?? 'shuffle') {
    case 'shuffle':
      return new ShuffleComposer(n, ctx.batchSize);
    case 'no-duplicates':
      return new NoDuplicatesComposer(ctx.trainItems, ctx.numItems, ctx.batchSize, ctx.stepsPerEpoch);
    case 'rwr': {
      const s = spec as Extract<BatchSamplerSpec, { type: 'rwr' }>;
      if (s.neighbours > s.candidates) {
        throw new UserError(`recipe: field 'batchSampler.neighbours': ${s.neighbours} neighbours cannot be kept from ${s.candidates} candidates`);
      }
      return new RwrComposer(s, ctx);
    }
  }
}
