/** Full-corpus ranking evaluation: scorers, the evaluator, baselines and the CLI table. */
export { type Scorer, type UserEmbeddingFn, embeddingScorer, popularityScorer, popularityOrder } from './scorer.ts';
export { evaluateRanking, METRIC_NAMES, DEFAULT_MEMORY_BUDGET_BYTES, type RankingOptions, type EvalResult, type PerUserMetrics } from './ranking.ts';
export { popularityStats, type PopularityStats } from './popularity.ts';
export { popularityBaseline } from './baselines.ts';
export { formatMetricsTable, type MetricColumn, type FormatOptions } from './format.ts';
