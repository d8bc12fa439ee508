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
  /** Categorical values by name; a dense (numeric / vector) user feature takes a number or an array of numbers. */
  features: z.record(z.string(), z.union([z.string(), z.number().finite(), z.array(z.number().finite()).max(1 << 16, 'must list at most 65536 numbers')], { error: 'must be a string (categorical feature), a number or an array of numbers (dense feature)' })).optional(),
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

const RECOMMEND_FAST_KEYS = new Set(['user', 'k', 'excludeSeen', 'search']);

/**
 * The common POST /recommend body — a known user, and at most `k`, `excludeSeen` and `search` besides —
 * checked by hand: the hot route's validation without zod's per-request work and garbage. It accepts only
 * bodies the zod schema accepts, and returns what zod would return for them; anything else (a filter, a
 * history, an unknown field, any invalid value) gives null, and the caller hands the body to zod, so which
 * bodies are refused and every error message stay zod's. test/serve-fast-body.test.ts checks both agree.
 */
export function fastRecommendBody(body: unknown, maxK: number): RecommendBody | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return null;
  const b = body as Record<string, unknown>;
  for (const key in b) if (!RECOMMEND_FAST_KEYS.has(key)) return null;
  const u = b.user;
  let user: string;
  if (typeof u === 'string') {
    if (u.length < 1 || u.length > 256) return null;
    user = u;
  } else if (typeof u === 'number' && Number.isFinite(u)) user = String(u);
  else return null;
  const k = b.k === undefined ? 10 : b.k;
  if (typeof k !== 'number' || !Number.isSafeInteger(k) || k < 1 || k > maxK) return null;
  const excludeSeen = b.excludeSeen === undefined ? true : b.excludeSeen;
  if (typeof excludeSeen !== 'boolean') return null;
  const search = b.search;
  if (search === undefined) return { user, k, excludeSeen };
  if (search !== 'ann' && search !== 'exact') return null;
  return { user, k, excludeSeen, search };
}

/** POST /recommend's body parser: the hand-checked common case, else zod (see fastRecommendBody). */
export function recommendBodyParser(maxK: number): (body: unknown) => RecommendBody {
  const schema = recommendSchema(maxK);
  return (body) => fastRecommendBody(body, maxK) ?? parseBody(schema, body);
}
