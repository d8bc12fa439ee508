/**
 * Request bodies, validated with zod. Unknown fields are rejected (a misspelt `exclude_seen` must not be
 * silently ignored), and the first problem is reported as one line: "k: must be at most 1000".
 */
import { z } from 'zod';
import { badRequest } from './errors.ts';

const ID_MSG = 'must be an id (a non-empty string of at most 256 characters, or a number)';
const id = z.union([z.string().min(1, ID_MSG).max(256, ID_MSG), z.number().finite()], { error: ID_MSG }).transform(String);
const idList = (max: number) => z.array(id).max(max, `must list at most ${max} ids`);

export const filterSchema = z
  .object({
    /** Only these items. */
    include: idList(100_000).optional(),
    /** Never these items. */
    exclude: idList(100_000).optional(),
    /** Only items whose categorical feature takes one of the listed values, e.g. { "category": ["c1", "c2"] }. */
    features: z.record(z.string(), z.array(z.string()).min(1, 'must list at least one value').max(10_000)).optional(),
  })
  .strict();

const search = z.enum(['ann', 'exact'], { error: "must be 'ann' or 'exact'" });

/** What a query is: a known user, a new user's features, or a history of items (most recent last). */
const queryFields = {
  user: id.optional(),
  features: z.record(z.string(), z.string()).optional(),
  history: idList(1000).min(1, 'must list at least one item').optional(),
};

function exactlyOneQuery(b: { user?: unknown; features?: unknown; history?: unknown }, ctx: z.RefinementCtx, extra: string[] = []) {
  const given = ['user', 'features', 'history', ...extra].filter((f) => (b as any)[f] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({ code: 'custom', message: `give exactly one of ${['user', 'features', 'history', ...extra].map((f) => `'${f}'`).join(', ')}${given.length ? ` (got ${given.join(' and ')})` : ''}` });
  }
}

export function recommendSchema(maxK: number) {
  return z
    .object({
      ...queryFields,
      k: z.number().int('must be an integer').min(1, 'must be at least 1').max(maxK, `must be at most ${maxK}`).default(10),
      excludeSeen: z.boolean().default(true),
      filter: filterSchema.optional(),
      search: search.optional(),
    })
    .strict()
    .superRefine((b, ctx) => exactlyOneQuery(b, ctx));
}

export function similarSchema(maxK: number) {
  return z
    .object({
      item: id,
      k: z.number().int('must be an integer').min(1, 'must be at least 1').max(maxK, `must be at most ${maxK}`).default(10),
      filter: filterSchema.optional(),
      search: search.optional(),
    })
    .strict();
}

/** `POST /search` (text dual encoders): a query text, the documents to return, and how to search. */
export function searchSchema(maxK: number) {
  return z
    .object({
      query: z
        .string({ error: 'must be a string (the query text)' })
        .max(10_000, 'must be at most 10000 characters')
        .refine((s) => s.trim().length > 0, 'must not be empty'),
      k: z.number().int('must be an integer').min(1, 'must be at least 1').max(maxK, `must be at most ${maxK}`).default(10),
      search: search.optional(),
    })
    .strict();
}

export const embedSchema = z
  .object({ ...queryFields, item: id.optional(), text: z.string({ error: 'must be a string (a query text, text models)' }).max(10_000, 'must be at most 10000 characters').optional() })
  .strict()
  .superRefine((b, ctx) => exactlyOneQuery(b, ctx, ['item', 'text']));

export type RecommendBody = z.infer<ReturnType<typeof recommendSchema>>;
export type SimilarBody = z.infer<ReturnType<typeof similarSchema>>;
export type SearchBody = z.infer<ReturnType<typeof searchSchema>>;
export type EmbedBody = z.infer<typeof embedSchema>;
export type FilterBody = z.infer<typeof filterSchema>;

/** Parses or throws a 400 naming the first offending field. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === undefined || body === null) throw badRequest('a JSON object body is required');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const iss = r.error.issues[0];
  const path = iss.path.map(String).join('.');
  let msg = iss.message;
  if (iss.code === 'unrecognized_keys') msg = `unknown field${iss.keys.length > 1 ? 's' : ''} ${iss.keys.map((k) => `'${k}'`).join(', ')}`;
  throw badRequest(path ? `${path}: ${msg}` : msg);
}
