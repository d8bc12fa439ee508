/**
 * Recipe sizes checked against the data they meet and the memory they would take, before anything is
 * allocated: a recipe is user input, and `n: 1e9` must be one line naming the field — not a 6 GB heap, a
 * 90-second hang, or "Invalid typed array length". The schema (schema.ts) bounds what is absurd for any data;
 * this module bounds what is absurd for *this* data: per-row negatives beyond the catalogue, and any size
 * whose memory estimate exceeds the budget (half the machine's memory, or TOWERLAB_MEMORY_BUDGET bytes).
 *
 * Estimates are deliberately simple upper-bound-ish counts of the large buffers each module allocates
 * (columns × (id, logq, embedding and its gradient, a logit and its gradient per batch row)); they are meant
 * to separate "fits" from "off by orders of magnitude", not to predict a heap size.
 */
import { totalmem } from 'node:os';
import { UserError } from '../util/errors.ts';
import type { BatchSamplerSpec, Recipe } from './schema.ts';

/** What the recipe meets: the data and the model's shape. */
export interface RecipeData {
  numItems: number;
  /** Training rows (instances). */
  numInstances: number;
  /** Users in the training data, when known (co-occurrence sketch of the rwr warm-up). */
  numUsers?: number;
  /** Tower output size. */
  dim: number;
  /** Rows per batch (an assumption of 1024 when the caller does not know it yet). */
  batchSize?: number;
}

/** Largest typed array a single buffer may be (elements). */
const MAX_ELEMENTS = 2 ** 31 - 1;

/** The memory a recipe may plan for, in bytes. */
export function memoryBudget(): number {
  const env = Number(process.env.TOWERLAB_MEMORY_BUDGET);
  return Number.isFinite(env) && env > 0 ? env : totalmem() / 2;
}

export function formatBytes(b: number): string {
  if (b >= 2 ** 30) return `~${Math.round(b / 1e9).toLocaleString('en')} GB`;
  if (b >= 2 ** 20) return `~${Math.round(b / 1e6)} MB`;
  return `~${Math.round(b / 1e3)} kB`;
}

const fail = (where: string, field: string, why: string): never => {
  throw new UserError(`${where}: field '${field}': ${why}`);
};

/** What a source's size estimate may use (each source class has a static `limits(spec, lim, field)`). */
export interface SourceLimits {
  /** Catalogue size, tower output size, rows per batch. */
  N: number;
  d: number;
  B: number;
  /** Memory of `cols` softmax columns per batch: ids + logq, embeddings and gradients, logits and gradients. */
  columnBytes(cols: number): number;
  /** Fails naming `field` when `what` needs more than the memory budget or the largest buffer. */
  check(field: string, what: string, bytes: number, elements: number): void;
  fail(field: string, why: string): never;
}

/**
 * Throws a UserError naming the first field whose size the data or the memory cannot carry.
 * `where` names the recipe (its file, or 'recipe'); `perSource` estimates source i (the sources builder
 * dispatches to the source's own estimate: only it reads type names).
 */
export function checkRecipeLimits(recipe: Recipe, data: RecipeData, where: string, perSource: (s: Recipe['sources'][number], field: (k: string) => string, lim: SourceLimits) => void): void {
  const budget = memoryBudget();
  const N = data.numItems;
  const d = Math.max(1, data.dim);
  const B = Math.max(1, data.batchSize ?? 1024);
  const budgetText = `this machine allows ${formatBytes(budget)}`;
  const columnBytes = (cols: number) => cols * (8 + 8 * d + 8 * B);
  const check = (field: string, what: string, bytes: number, elements: number) => {
    if (bytes > budget) fail(where, field, `${what} need ${formatBytes(bytes)} of memory (${budgetText})`);
    if (elements > MAX_ELEMENTS) fail(where, field, `${what} need a buffer of ${elements.toExponential(1)} values (at most ${MAX_ELEMENTS})`);
  };
  const lim: SourceLimits = { N, d, B, columnBytes, check, fail: (field, why) => fail(where, field, why) };
  recipe.sources.forEach((s, i) => perSource(s, (k) => `sources.${i}.${k}`, lim));

  const lq = recipe.corrections.logQ;
  if (lq && lq.estimator === 'streaming' && lq.hashSize > 0) {
    check('corrections.logQ.hashSize', `a hash of ${lq.hashSize} slots`, lq.hashSize * 16, lq.hashSize);
  }
  checkBatchSampler(recipe.batchSampler, data, where, check);
}

function checkBatchSampler(
  spec: BatchSamplerSpec | undefined,
  data: RecipeData,
  where: string,
  check: (field: string, what: string, bytes: number, elements: number) => void,
): void {
  if (spec?.type !== 'rwr') return;
  const n = data.numInstances;
  if (spec.neighbours > spec.candidates) fail(where, 'batchSampler.neighbours', `${spec.neighbours} neighbours cannot be kept from ${spec.candidates} candidates`);
  // Candidates are capped at the other instances (proximity-graph.ts), neighbours at the candidates; a value
  // beyond the data is refused unless it is no larger than the default (small data sets keep working).
  if (spec.candidates > Math.max(n - 1, 128)) fail(where, 'batchSampler.candidates', `${spec.candidates} candidates per instance, but the training data has ${n} instances`);
  const M = Math.max(1, Math.min(spec.candidates, n - 1));
  const K = Math.max(1, Math.min(spec.neighbours, M));
  // Anchors per GEMM default to M: an M × M score block, plus K neighbours (and degrees) per instance.
  check('batchSampler.candidates', `${M} candidates scored per anchor (an ${M} × ${M} score block)`, M * M * 4, M * M);
  check('batchSampler.neighbours', `${K} neighbours for each of ${n} instances`, n * K * 8, n * K);
  const sketch = (data.numUsers ?? n) + data.numItems;
  check('batchSampler.sketchDim', `a co-occurrence sketch of width ${spec.sketchDim}`, sketch * spec.sketchDim * 4, Math.max(data.numUsers ?? n, data.numItems) * spec.sketchDim);
}

/** The sizes `towerlab text` takes from its flags (it has no recipe file): the same memory rule. */
export interface TextSizes {
  buckets: number;
  dim: number;
  batchSize: number;
  hardNegatives: number;
  hardPool: number;
  trainQueries: number;
}

/** Throws a UserError naming the flag whose size this machine's memory cannot carry. */
export function checkTextLimits(s: TextSizes): void {
  const budget = memoryBudget();
  const check = (flag: string, what: string, bytes: number, elements: number) => {
    if (bytes > budget) throw new UserError(`${flag}: ${what} need ${formatBytes(bytes)} of memory (this machine allows ${formatBytes(budget)})`);
    if (elements > MAX_ELEMENTS) throw new UserError(`${flag}: ${what} need a buffer of ${elements.toExponential(1)} values (at most ${MAX_ELEMENTS})`);
  };
  // Hashed embedding rows with lazy Adam's two moments; per step, the batch's candidate columns and logits.
  check('--buckets', `${s.buckets} hashed rows of ${s.dim} values (with Adam's moments)`, s.buckets * s.dim * 12, s.buckets * s.dim);
  const cols = s.batchSize * (1 + s.hardNegatives);
  check(s.hardNegatives > 0 ? '--hard-negatives' : '--batch-size', `${cols} candidates per step (${s.batchSize} × ${1 + s.hardNegatives})`, cols * (8 * s.dim + 8 * s.batchSize), cols * Math.max(s.dim, s.batchSize));
  check('--hard-pool', `${s.hardPool} mined candidates for each of ${s.trainQueries} queries`, s.hardPool * s.trainQueries * 8, s.hardPool * s.trainQueries);
}
