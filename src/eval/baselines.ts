/**
 * Non-learned baselines, evaluated under exactly the same protocol as a model so the numbers compare.
 */
import { evaluateRanking, type EvalResult, type RankingOptions } from './ranking.ts';
import { popularityScorer } from './scorer.ts';

/**
 * Most-popular baseline: every user gets the items ranked by train count (ties by lower index), minus their
 * own training items. A model that does not beat it has not learned personalisation.
 */
export function popularityBaseline(opts: Omit<RankingOptions, 'scorer'>): EvalResult {
  return evaluateRanking({ ...opts, scorer: popularityScorer(opts.itemPopularity) });
}
