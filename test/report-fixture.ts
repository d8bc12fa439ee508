/**
 * A hand-made comparison result (no training) for the report tests: three recipes, three seeds, one with
 * diagnostics, one without calibration counts, a NaN metric and a name that needs HTML escaping.
 */
import { assembleResults, summarizeRecipe, type CompareResults, type RunRecord } from '../src/report/results.ts';

export const RECIPE_NAMES = ['in-batch', 'in-batch+logQ', 'mixed <uniform> & "q"'];

function run(recipe: number, seed: number, withDiag: boolean, withCalibration: boolean): RunRecord {
  const base = 0.2 + 0.05 * recipe + 0.004 * seed;
  const metrics: Record<string, number | null> = {};
  for (const k of [10, 20]) {
    const s = k / 20;
    Object.assign(metrics, {
      [`recall@${k}`]: base * s,
      [`ndcg@${k}`]: 0.6 * base * s,
      [`hr@${k}`]: Math.min(1, 1.8 * base * s),
      [`mrr@${k}`]: 0.5 * base,
      [`precision@${k}`]: base / k,
      [`coverage@${k}`]: 0.3 + 0.2 * recipe,
      [`popPct@${k}`]: 0.9 - 0.1 * recipe,
      [`recallHead@${k}`]: base * 1.3,
      // Recipe 0 never hits the tail in the hand-made data: NaN must render as a gap, not break the page.
      [`recallTail@${k}`]: recipe === 0 ? null : base * 0.5,
    });
  }
  const history = [1, 2, 3].map((epoch) => ({
    epoch,
    step: epoch * 10,
    metrics: { 'recall@20': base * (0.6 + 0.13 * epoch) },
    ...(withDiag ? { diagnostics: { fnRate: 0.1 / epoch + 0.01 * seed, effectiveNegatives: 50 * epoch + recipe * 100, negSimMean: 0.1 * epoch } } : {}),
  }));
  const top = 0.4 - 0.1 * recipe;
  const rest = (1 - top) / 9;
  return {
    seed,
    metrics,
    examples_per_s: 40000 - 9000 * recipe + 500 * seed,
    train_seconds: 3 + recipe,
    eval_seconds: 0.1,
    epochs: 3,
    steps: 30,
    best_epoch: 3,
    stopped_early: false,
    final_loss: 5 - 0.1 * recipe,
    history,
    recommended: withCalibration ? { k: 20, deciles: Array.from({ length: 10 }, (_, d) => (d === 0 ? top : rest)) } : null,
  };
}

export function handMadeResults(): CompareResults {
  const seeds = [1, 2, 3];
  const recipes = RECIPE_NAMES.map((name, i) =>
    summarizeRecipe(
      name,
      `recipes/r${i}.json`,
      { name, temperature: 0.05 },
      seeds.map((s) => run(i, s, i !== 2, i !== 1)),
      'recall@20',
    ),
  );
  const pop: Record<string, number> = {};
  for (const k of [10, 20]) Object.assign(pop, { [`recall@${k}`]: 0.1, [`ndcg@${k}`]: 0.05, [`hr@${k}`]: 0.2, [`mrr@${k}`]: 0.05, [`coverage@${k}`]: 0.05, [`popPct@${k}`]: 0.99, [`recallHead@${k}`]: 0.15, [`recallTail@${k}`]: 0 });
  return assembleResults({
    k: 20,
    config: { data: 'synthetic:hand-made', split: 'random', seeds, epochs: 3, batch_size: 256, val_metric: 'recall@20', ks: [10, 20], backend: 'js' },
    data: { source: 'synthetic:hand-made', users: 300, items: 200, interactions: 6000, split: 'random(val=0.1,test=0.1,seed=42)', train: 4800, val: 600, test: 600, testUsers: 234 },
    catalogue: { items: new Array(10).fill(20), interactionShare: [0.35, 0.15, 0.11, 0.09, 0.08, 0.06, 0.06, 0.04, 0.03, 0.03] },
    popularityRuns: [pop, pop, pop],
    recipes,
    complete: true,
    created: '2026-01-01T00:00:00.000Z',
  });
}
