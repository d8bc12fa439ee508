/**
 * A negatives recipe: which negative sources feed the softmax, which corrections apply, which loss.
 * Validated with zod: an unknown key or a bad value is an error naming the path in the recipe.
 * The pipeline composes the modules this object names; nothing downstream branches on a recipe's name.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../util/errors.ts';

const inBatch = z.object({ type: z.literal('in-batch') }).strict();
const uniform = z
  .object({
    type: z.literal('uniform'),
    /** Number of negatives drawn per batch, shared by all rows. */
    n: z.number().int().positive(),
  })
  .strict();

export const sourceSchema = z.discriminatedUnion('type', [inBatch, uniform]);

export const logQSchema = z
  .object({
    /**
     * Where the in-batch sampling probability comes from: 'train-frequency' (item counts over the training
     * set) or 'streaming' (Yi et al. 2019 hashed estimator updated every step).
     */
    estimator: z.enum(['train-frequency', 'streaming']).default('train-frequency'),
    /** Streaming estimator learning rate α. */
    alpha: z.number().positive().max(1).default(0.01),
    /** Streaming estimator hash size H (0 = one slot per item, no collisions). */
    hashSize: z.number().int().nonnegative().default(0),
  })
  .strict();

export const recipeSchema = z
  .object({
    name: z.string().optional(),
    temperature: z.number().positive().default(0.05),
    sources: z.array(sourceSchema).min(1).default([{ type: 'in-batch' }]),
    corrections: z
      .object({
        /** Remove the positive item when it appears as another row's candidate (an "accidental hit"). */
        maskSameItem: z.boolean().default(true),
        /** Remove in-batch candidates that are positives of the same user (another row of that user). */
        maskSameUser: z.boolean().default(true),
        /** logQ sampling-bias correction, or false. */
        logQ: z.union([z.literal(false), logQSchema]).default(false),
      })
      .strict()
      .default({ maskSameItem: true, maskSameUser: true, logQ: false }),
    loss: z
      .object({ type: z.literal('infonce') })
      .strict()
      .default({ type: 'infonce' }),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;
export type SourceSpec = z.infer<typeof sourceSchema>;

/** Parses and validates a recipe object; `where` names its origin in error messages. */
export function parseRecipe(value: unknown, where = 'recipe'): Recipe {
  const r = recipeSchema.safeParse(value ?? {});
  if (!r.success) {
    const first = r.error.issues[0];
    const path = first.path.length ? first.path.join('.') : '(root)';
    throw new UserError(`${where}: field '${path}': ${first.message}`);
  }
  return r.data;
}

export function loadRecipe(path: string): Recipe {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UserError(`${path}: cannot read recipe file`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseRecipe(json, path);
}

export const defaultRecipe: Recipe = parseRecipe({});
