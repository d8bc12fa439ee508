/**
 * A hyperparameter search space (`space.json`), validated with zod, and quasi-random points in it.
 *
 *   {
 *     "recipe": "recipes/in-batch-logq.json",          // base recipe file (relative to space.json) or object
 *     "options": { "mlp": "none", "epochs": 27 },      // fixed options (train's long option names)
 *     "params": {                                      // what is searched
 *       "recipe.temperature": { "type": "log", "min": 0.03, "max": 0.3 },
 *       "options.dim":        { "type": "int", "min": 32, "max": 128, "log": true },
 *       "options.l2":         { "type": "linear", "min": 0, "max": 0.001 },
 *       "recipe.sources":     { "type": "choice", "values": [[{"type": "in-batch"}], [{"type": "full-catalogue"}]] }
 *     },
 *     "schedule": { "minEpochs": 3, "maxEpochs": 27, "eta": 3 }
 *   }
 *
 * A parameter named `recipe.<path>` sets that field of the recipe (dotted path; the result is re-validated as a
 * recipe), `options.<name>` sets an option of `towerlab train` (camelCase or --kebab-case name), and `recipe`
 * alone (a choice) picks the whole base recipe: recipe files (relative to space.json) or recipe objects, with
 * the `recipe.<path>` parameters applied on top. Points come from
 * a scrambled Halton sequence (one prime base per parameter; its digits permuted at random per parameter, seeded:
 * plain Halton's larger bases march in lockstep over the first points), which covers a box more evenly than
 * independent uniform draws for the few dozen trials a CPU budget allows.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { UserError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { readJsonFile } from '../util/json-file.ts';

const range = { min: z.number().finite(), max: z.number().finite() };
export const paramSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('log'), ...range }).strict(),
  z.object({ type: z.literal('linear'), ...range }).strict(),
  z.object({ type: z.literal('int'), ...range, log: z.boolean().default(false) }).strict(),
  z.object({ type: z.literal('choice'), values: z.array(z.unknown()).min(1) }).strict(),
]);
export type Param = z.infer<typeof paramSchema>;

export const scheduleSchema = z
  .object({
    /** Epochs of the first rung (every trial trains at least this long). */
    minEpochs: z.number().int().positive().default(2),
    /** Epochs of the last rung (and the horizon of learning-rate schedules). */
    maxEpochs: z.number().int().positive().default(18),
    /** Keep the top 1/eta of a rung for the next one, whose epochs are eta times longer. */
    eta: z.number().int().min(2).default(3),
  })
  .strict()
  .refine((s) => s.maxEpochs >= s.minEpochs, 'maxEpochs must be >= minEpochs');
export type Schedule = z.infer<typeof scheduleSchema>;

export const spaceSchema = z
  .object({
    recipe: z.union([z.string().min(1), z.record(z.string(), z.unknown())]).optional(),
    options: z.record(z.string(), z.unknown()).default({}),
    params: z
      .record(z.string().regex(/^(recipe|(recipe|options)\.[A-Za-z0-9_.-]+)$/, "a parameter is named 'recipe', 'recipe.<field path>' or 'options.<option>'"), paramSchema)
      .refine((p) => Object.keys(p).length > 0, 'give at least one parameter'),
    schedule: scheduleSchema.default({ minEpochs: 2, maxEpochs: 18, eta: 3 }),
    /** Validation metric to maximise (NAME@K). */
    metric: z.string().regex(/^[a-zA-Z]+@\d+$/).default('recall@20'),
  })
  .strict();
export type Space = z.infer<typeof spaceSchema>;

export interface LoadedSpace {
  space: Space;
  /** The base recipe as a plain object (before parameters), or undefined for the default recipe. */
  baseRecipe: unknown;
  file: string;
}

export function loadSpace(path: string): LoadedSpace {
  const json = readJsonFile(path);
  return parseSpace(json, path);
}

export function parseSpace(json: unknown, where: string): LoadedSpace {
  const r = spaceSchema.safeParse(json);
  if (!r.success) {
    const first = r.error.issues[0];
    throw new UserError(`${where}: field '${first.path.join('.') || '(root)'}': ${first.message}`);
  }
  const space = r.data;
  for (const [name, p] of Object.entries(space.params)) {
    if (p.type !== 'choice' && !(p.max >= p.min)) throw new UserError(`${where}: field 'params.${name}': max must be >= min`);
    if (p.type === 'log' && !(p.min > 0)) throw new UserError(`${where}: field 'params.${name}': a log range needs min > 0`);
    if (p.type === 'int' && (!Number.isInteger(p.min) || !Number.isInteger(p.max))) throw new UserError(`${where}: field 'params.${name}': an int range needs integer bounds`);
    if (p.type === 'int' && p.log && !(p.min > 0)) throw new UserError(`${where}: field 'params.${name}': a log range needs min > 0`);
  }
  const readRecipe = (v: unknown, field: string): unknown => {
    if (typeof v !== 'string') return v;
    const file = resolve(dirname(where), v);
    try {
      return JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new UserError(`${where}: field '${field}': cannot read recipe ${file}: ${(e as Error).message}`);
    }
  };
  const baseRecipe = readRecipe(space.recipe, 'recipe');
  const whole = space.params.recipe;
  if (whole) {
    if (whole.type !== 'choice') throw new UserError(`${where}: field 'params.recipe': the whole recipe is a choice (of files or objects)`);
    // Read recipe files once, here: a trial then needs no file access.
    space.params.recipe = { ...whole, values: whole.values.map((v, i) => readRecipe(v, `params.recipe.values.${i}`)) };
  }
  return { space, baseRecipe, file: where };
}

const PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97];

/** The radical inverse of i in base b (the Halton coordinate), digits mapped through `perm` when given. */
export function radicalInverse(i: number, b: number, perm?: number[]): number {
  let f = 1;
  let r = 0;
  while (i > 0) {
    f /= b;
    const digit = i % b;
    r += f * (perm ? perm[digit] : digit);
    i = Math.floor(i / b);
  }
  return r;
}

/** The `index`-th point (0-based) of the seeded Halton sequence over the space's parameters, as values. */
export function samplePoint(space: Space, index: number, seed: number): Record<string, unknown> {
  const names = Object.keys(space.params);
  if (names.length > PRIMES.length) throw new UserError(`a space has at most ${PRIMES.length} parameters, got ${names.length}`);
  const rng = new Rng(seed ^ 0x7a11);
  const out: Record<string, unknown> = {};
  names.forEach((name, k) => {
    const b = PRIMES[k];
    // Digit 0 keeps 0 (so trailing zeros add nothing); the others are shuffled.
    const perm = [0, ...rng.shuffle(Array.from({ length: b - 1 }, (_, j) => j + 1))];
    const u = radicalInverse(index + 1, b, perm);
    out[name] = valueAt(space.params[name], u);
  });
  return out;
}

/** Maps u ∈ [0, 1) to a parameter value. */
export function valueAt(p: Param, u: number): unknown {
  switch (p.type) {
    case 'choice':
      return p.values[Math.min(p.values.length - 1, Math.floor(u * p.values.length))];
    case 'linear':
      return p.min + u * (p.max - p.min);
    case 'log':
      return Math.exp(Math.log(p.min) + u * (Math.log(p.max) - Math.log(p.min)));
    case 'int': {
      // Each integer gets an equal share of [0, 1) (on a log scale with log: true).
      if (p.log) return Math.min(p.max, Math.floor(Math.exp(Math.log(p.min) + u * (Math.log(p.max + 1) - Math.log(p.min)))));
      return Math.min(p.max, p.min + Math.floor(u * (p.max - p.min + 1)));
    }
  }
}

/** Sets `value` at a dotted path in a plain object (copying along the way); numeric parts index arrays. */
export function setPath(obj: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const base = obj !== null && typeof obj === 'object' ? obj : {};
  const copy: any = Array.isArray(base) ? [...base] : { ...(base as object) };
  copy[head] = setPath(copy[head], rest, value);
  return copy;
}
