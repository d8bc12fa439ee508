import type { Bundle } from '../bundle/read.ts';
/**
 * The manifest as clients see it (/model, the demo's manifest.json): without the model's source path and the
 * training recipe (data paths, mined-negative files); the file table only for the demo page (`files`).
 */
export function publicManifest(b: Bundle, opts: { files?: boolean } = {}): Record<string, unknown> {
  const { files, arrays, source, recipe, ...rest } = b.manifest;
  // The page may fetch by the file table (relative names and checksums only); /model leaves it out.
  const summary = opts.files ? { ...rest, files, arrays } : rest;
  const name = (recipe as { name?: unknown } | undefined)?.name;
  return { ...summary, source: { modelCreated: source.modelCreated }, ...(typeof name === 'string' ? { recipe: { name } } : {}), userFeatures: b.userFeatures.map((f) => f.name), itemFeatures: b.itemFeatures.map((f) => f.name) };
}
