/** One colour per recipe, the same in every chart, and grey for the popularity baseline and references. */
export const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#e45756', '#72b7b2', '#b279a2', '#eeca3b', '#ff9da6', '#9d755d', '#17becf', '#bcbd22', '#393b79'];

export const POPULARITY_LABEL = 'popularity baseline';
export const POPULARITY_COLOR = '#9a9a9a';

/**
 * A vega-lite colour scale mapping each recipe name (in report order), then any extra labels, to a fixed
 * colour. `present` narrows the domain to the labels a chart has, so its legend lists no absent recipe,
 * while every recipe keeps its colour.
 */
export function colorScale(recipes: string[], extra: Record<string, string> = {}, present?: Iterable<string>): { domain: string[]; range: string[] } {
  const keep = present ? new Set(present) : null;
  const pairs: [string, string][] = [...recipes.map((r, i): [string, string] => [r, COLORS[i % COLORS.length]]), ...Object.entries(extra)];
  const used = pairs.filter(([label]) => !keep || keep.has(label));
  return { domain: used.map(([l]) => l), range: used.map(([, c]) => c) };
}
