/**
 * Turns a recipe's `sources` and logQ settings into negative-source modules and the frequency estimator
 * they share. The only place that reads source type names.
 */
import type { Recipe } from '../recipe/schema.ts';
import { StreamingFrequency, TrainFrequency, type FrequencyEstimator } from './frequency.ts';
import { InBatchSource } from './in-batch.ts';
import type { NegativeSource } from './source.ts';
import { UniformSource } from './uniform.ts';

export interface SourceSet {
  sources: NegativeSource[];
  freq: FrequencyEstimator;
}

export function buildSources(recipe: Recipe, numItems: number, trainItems: Int32Array): SourceSet {
  const lq = recipe.corrections.logQ;
  const freq: FrequencyEstimator =
    lq && lq.estimator === 'streaming' ? new StreamingFrequency(numItems, lq.alpha, lq.hashSize) : new TrainFrequency(trainItems, numItems);
  const sources = recipe.sources.map((s): NegativeSource => {
    switch (s.type) {
      case 'in-batch':
        return new InBatchSource(freq);
      case 'uniform':
        return new UniformSource(numItems, s.n);
    }
  });
  return { sources, freq };
}
