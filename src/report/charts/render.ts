/**
 * Vega-Lite spec → standalone SVG string, headless in Node (vega's 'none' renderer; no canvas, no DOM,
 * no network: every chart gets its data inline). vega and vega-lite are imported on first use so other
 * commands do not pay for loading them.
 */
import type { TopLevelSpec } from 'vega-lite';

let libs: Promise<{ vega: typeof import('vega'); vl: typeof import('vega-lite') }> | null = null;

function load() {
  libs ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => ({ vega, vl }));
  return libs;
}

/** Shared look: system fonts and readable sizes, no outer frame. */
export const baseConfig = {
  font: 'system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelColor: '#333', titleColor: '#333', gridColor: '#e6e6e6' },
  legend: { labelFontSize: 12, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 320 },
  header: { labelFontSize: 13, titleFontSize: 13 },
  title: { fontSize: 14, fontWeight: 'normal', anchor: 'start', color: '#222' },
} as const;

let counter = 0;

/**
 * Renders the spec to SVG. `idPrefix` rewrites the ids vega emits (clip paths, gradients) so that several
 * charts inlined into one HTML page never share an id.
 */
export async function renderSvg(spec: TopLevelSpec, idPrefix = `c${++counter}`): Promise<string> {
  const { vega, vl } = await load();
  const compiled = vl.compile({ ...spec, config: { ...baseConfig, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
  try {
    const svg = await view.toSVG();
    return prefixIds(svg, idPrefix);
  } finally {
    view.finalize();
  }
}

/** Prefixes every id="x" and its references (url(#x), href="#x"). */
export function prefixIds(svg: string, prefix: string): string {
  const ids = new Set<string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) ids.add(m[1]);
  if (ids.size === 0) return svg;
  return svg
    .replace(/(\sid=")([^"]+)"/g, (_m, a: string, id: string) => `${a}${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (m, id: string) => (ids.has(id) ? `url(#${prefix}-${id})` : m))
    .replace(/(href=")#([^"]+)"/g, (m, a: string, id: string) => (ids.has(id) ? `${a}#${prefix}-${id}"` : m));
}
