/**
 * Layers in order (issue #10 item 4): no module imports from a folder later in the pipeline. The order, each
 * line a layer (folders on one line may import each other):
 *
 *   util, compute          helpers, the numeric backend seam
 *   data                   readers, vocabularies, splits
 *   recipe, graph          the recipe schema (read by sampling, loss and train); the item transition graph
 *                          (its neighbourhoods are a negative source)
 *   index                  vector indexes (exact, IVF, HNSW, LanceDB): mining searches with them; an item
 *                          index takes the model as a narrow interface (IndexableModel), not model/
 *   sampling               negative sources, frequency estimators, batch composition; the hard-negative filter
 *                          and the live-retriever contract of online mining (sources get embeddings and
 *                          retrievers handed in by whoever owns the model; they do not import models)
 *   nn                     generic layers (attention, layer norm, dropout, parameters): SASRec and the text
 *                          transformer tower both build on them
 *   model                  towers, tables, optimizers, persistence
 *   mine                   retrievers (ModelRetriever implements sampling's LiveRetriever), fusion, mining
 *   loss                   columns, corrections, losses
 *   eval                   metrics, scorers, baselines (the trainer evaluates while it trains)
 *   train, tune            step, trainer, experiment; hyperparameter search (ASHA) over training runs
 *   seq, rerank            sequential models; the LCE reranker
 *   text                   BEIR, tokenizer, BM25, text towers, the text experiment (uses mine and rerank)
 *   onnx, bundle, serve    exports, serving bundles (bundle/open.ts opens every saved model kind), HTTP
 *   report                 HTML/SVG reports
 *   api (and src/*.ts)     the public library API
 *   cli                    the command line, thin on top
 *
 * Type-only imports count too: a type from a later folder is a dependency on it. ALLOWED is empty: an import
 * that cannot be fixed at once goes there with its reason; a new folder must be placed in ORDER before anything
 * may import it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ORDER: string[][] = [
  ['util', 'compute'],
  ['data'],
  ['recipe', 'graph'],
  ['index'],
  ['sampling'],
  ['nn'],
  ['model'],
  ['mine'],
  ['loss'],
  ['eval'],
  ['train', 'tune'],
  ['seq', 'rerank'],
  ['text'],
  ['onnx', 'bundle', 'serve'],
  ['report'],
  ['api', '.'],
  ['cli'],
];

/** `from → to` (files under src/) that still point backwards, each with why it is not fixed yet. */
const ALLOWED: Record<string, string> = {};

const SRC = resolve(import.meta.dirname, '..', 'src');
const rank = new Map<string, number>();
ORDER.forEach((layer, i) => layer.forEach((f) => rank.set(f, i)));

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : /\.(ts|mts|mjs)$/.test(e.name) ? [join(dir, e.name)] : []));
}

const folderOf = (file: string) => {
  const rel = relative(SRC, file).split(/[\\/]/);
  return rel.length > 1 ? rel[0] : '.';
};

test('no import from a folder later in the pipeline order', () => {
  const bad: string[] = [];
  const used = new Set<string>();
  const unplaced = new Set<string>();
  for (const file of files(SRC)) {
    const from = folderOf(file);
    if (!rank.has(from)) unplaced.add(from);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)) {
      const target = resolve(dirname(file), m[1]);
      if (relative(SRC, target).startsWith('..')) continue;
      const to = folderOf(target);
      if (to === from) continue;
      if (!rank.has(to)) unplaced.add(to);
      if ((rank.get(to) ?? -1) <= (rank.get(from) ?? Infinity)) continue;
      const key = `${relative(SRC, file)} → ${relative(SRC, target)}`.split('\\').join('/');
      if (Object.hasOwn(ALLOWED, key)) used.add(key);
      else bad.push(key);
    }
  }
  assert.deepEqual([...unplaced], [], `folders not placed in ORDER (test/layers.test.ts): ${[...unplaced].join(', ')}`);
  assert.deepEqual(bad, [], `imports from a later folder:\n  ${bad.join('\n  ')}`);
  // An allow-listed import that is gone must leave the list, so the list only shrinks.
  assert.deepEqual(Object.keys(ALLOWED).filter((k) => !used.has(k)), [], 'allow-listed imports that no longer exist');
});
