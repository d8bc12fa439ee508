/**
 * A negatives recipe: which negative sources feed the softmax, which corrections apply, which loss.
 * Validated with zod: an unknown key or a bad value is an error naming the path in the recipe.
 * The pipeline composes the modules this object names; nothing downstream branches on a recipe's name.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../util/errors.ts';

/** Fixed upper bounds: sizes index int32 arrays; what the data and memory allow is checked in limits.ts. */
const COUNT = z.number().int().positive().max(2 ** 31 - 1);
const inBatch = z.object({ type: z.literal('in-batch') }).strict();
const uniform = z
  .object({
    type: z.literal('uniform'),
    /** Number of negatives drawn per batch, shared by all rows. */
    n: COUNT,
  })
  .strict();

const popularity = z
  .object({
    type: z.literal('popularity'),
    n: COUNT,
    /** Exponent on (count + 1): 1 = unigram, 0.75 = smoothed, 0 = uniform. */
    alpha: z.number().min(0).max(2).default(1),
  })
  .strict();
const stratified = z
  .object({
    type: z.literal('stratified'),
    /** Negatives per stratum per batch. */
    n: COUNT,
    /** Categorical item column whose values define the strata (an item feature of the data). */
    column: z.string().min(1),
  })
  .strict();
const queue = z
  .object({
    type: z.literal('queue'),
    /** Number of past positives' embeddings kept (MoCo's K). */
    size: COUNT,
    /** EMA coefficient of a momentum item tower embedding the queue (0 = the online tower, no momentum). */
    momentum: z.number().min(0).lt(1).default(0),
  })
  .strict();
/** SamToNe (Moiseev et al. 2023): the batch's other queries join the denominator (and items, when symmetric). */
const sameTower = z.object({ type: z.literal('same-tower') }).strict();

/**
 * Neighbourhood hard negatives (GNNO, Fan et al. SIGIR 2023): per row, n items drawn by neighbourhood overlap
 * with the row's positive on the item transition graph of the training sequences, under a curriculum cap.
 */
const curriculum = z
  .object({
    kind: z.enum(['constant', 'linear', 'step']).default('linear'),
    /** Hardness cap before the warm-up ends. */
    start: z.number().min(0).max(1).default(0),
    /** Epoch from which the cap grows (GNNO's hn0). */
    warmup: z.number().min(0).default(5),
    /** Growth per epoch (linear) or per step (step). */
    pace: z.number().min(0).default(0.01),
    /** Epochs per step (step schedule). */
    every: z.number().int().positive().default(1),
    /** Largest cap (GNNO's max_hard). */
    max: z.number().min(0).max(1).default(0.7),
  })
  .strict();
const neighbourhood = z
  .object({
    type: z.literal('neighbourhood'),
    /** Negatives drawn per row (per positive). */
    n: COUNT.default(1),
    /** Transition window: items up to this many positions apart are linked, weight 1/distance. */
    window: z.number().int().positive().max(1 << 16).default(3),
    /** Overlap on the binary adjacency ('bool', Jaccard) or the edge weights ('weight', Tanimoto). */
    weight: z.enum(['bool', 'weight']).default('bool'),
    /** 'all' items (GNNO's official sampler) or only two-hop 'overlap' items as candidates. */
    candidates: z.enum(['all', 'overlap']).default('all'),
    /** τ in p(j|i) ∝ exp(J/τ). */
    temperature: z.number().positive().default(1),
    /** Always exclude each positive's k highest-overlap items (likely false negatives). */
    excludeTop: z.number().int().nonnegative().max(2 ** 31 - 1).default(0),
    /** Overlap candidates kept per item (0 = all), bounding memory. */
    maxCandidates: z.number().int().nonnegative().max(2 ** 31 - 1).default(256),
    curriculum: curriculum.default({ kind: 'linear', start: 0, warmup: 5, pace: 0.01, every: 1, max: 0.7 }),
  })
  .strict();

/**
 * Mined hard negatives (see sampling/mined.ts): per row, n items a retriever ranks high for the user, minus
 * known positives and likely false negatives (rank window, margin to the positive's score, max score).
 */
const mined = z
  .object({
    type: z.literal('mined'),
    /** Negatives per row (per positive). */
    n: COUNT.default(4),
    /** 'online' (mine with the live model, refreshed) or the path of a JSONL file written by `towerlab mine`. */
    from: z.string().min(1).default('online'),
    /** Online: re-embed items and rebuild the index every this many steps (ANCE). */
    refreshEvery: z.number().int().positive().max(2 ** 31 - 1).default(100),
    /** Rank window [start, end) over each user's unseen candidates (sentence-transformers range_min/range_max). */
    rankRange: z.tuple([z.number().int().nonnegative().max(2 ** 31 - 1), z.number().int().positive().max(2 ** 31 - 1)]).default([10, 100]),
    /** Drop candidates scoring above positive − margin (absolute) or positive·(1 − margin) (relative). */
    margin: z.number().optional(),
    relative: z.boolean().default(false),
    /** Drop candidates whose cosine exceeds this. */
    maxScore: z.number().optional(),
    /** 'random' n of the surviving window, or the 'top' n. */
    sample: z.enum(['top', 'random']).default('random'),
    /** Online index: exact search or HNSW (usearch). */
    search: z.enum(['exact', 'hnsw']).default('exact'),
    /** logQ of mined columns: 'none' (chosen, not sampled) or 'frequency' (a proposal to the other rows). */
    correction: z.enum(['none', 'frequency']).default('none'),
  })
  .strict();

/**
 * Every item of the catalogue as a class: exact softmax cross-entropy over all items ("SASRec+", Klenitskiy &
 * Vasilev 2023), computed by the backend's tiled full-catalogue kernel. The reference every sampled recipe
 * approximates; it takes no other source (it already scores every item) and no logQ (nothing is sampled).
 */
const fullCatalogue = z
  .object({
    type: z.literal('full-catalogue'),
    /**
     * Products of the softmax: 'fp32' (default) or 'bf16' — q, e and the gradient coefficients rounded to
     * bfloat16, float32 sums (Backend.fullSoftmax). About 1.5× faster per step where the CPU has AVX512-BF16
     * (Zen 4, Sapphire Rapids); elsewhere the same rounded products run slower than fp32. Measured quality in
     * docs/sequential.md.
     */
    precision: z.enum(['fp32', 'bf16']).default('fp32'),
  })
  .strict();

export const sourceSchema = z.discriminatedUnion('type', [inBatch, uniform, popularity, stratified, queue, sameTower, neighbourhood, mined, fullCatalogue]);

/**
 * How mini-batches are composed from training instances (see sampling/batch-order/): 'shuffle' (default),
 * 'no-duplicates' (no item twice in a batch), or 'rwr' (BatchSampler, Yang et al. KDD 2023: random walk with
 * restart on a proximity graph of instances, so in-batch negatives are hard). Defaults of 'rwr' scale the
 * official code's (M=1000, K=100, restart 0.2, update every 100 batches) down to CPU training of small data.
 */
export const batchSamplerSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('shuffle') }).strict(),
  z.object({ type: z.literal('no-duplicates') }).strict(),
  z
    .object({
      type: z.literal('rwr'),
      /** M: random candidates scored per instance when building the proximity graph. */
      candidates: COUNT.default(128),
      /** K: nearest candidates kept as graph neighbours. */
      neighbours: COUNT.default(16),
      /** Restart probability of the walk at epoch 1 (higher = harder batches, more false negatives). */
      restart: z.number().min(0).max(1).default(0.2),
      /** Subtracted per epoch (official code: 0.02). */
      restartDecay: z.number().min(0).max(1).default(0),
      /** Floor of the decayed restart probability. */
      restartMin: z.number().min(0).max(1).default(0.05),
      /** Rebuild the graph from the model every this many steps (0 = at epoch starts only). */
      refreshEvery: z.number().int().nonnegative().default(200),
      /**
       * Rebuild the model graph only at the start of every this-many-th post-warm-up epoch (and not within it when
       * > 1): the lever that makes the graph a small fraction of training when the towers are cheap.
       */
      rebuildEpochs: z.number().int().positive().default(1),
      /** Epochs composed before the model's embeddings are used... */
      warmupEpochs: z.number().int().nonnegative().default(1),
      /** ...by walks on the item co-occurrence graph, or shuffled (the official code's random_epochs). */
      warmup: z.enum(['cooccurrence', 'shuffle']).default('cooccurrence'),
      /** Instance similarity: 'cross' (u_i·v_j + u_j·v_i, the in-batch logits) or 'item' (v_i·v_j). */
      similarity: z.enum(['cross', 'item']).default('cross'),
      /** Width of the co-occurrence sketch used in warm-up. */
      sketchDim: z.number().int().positive().max(4096).default(64),
      /** Rank candidates by similarity minus their mean similarity to random instances (fewer hub neighbours). */
      hubCorrection: z.boolean().default(true),
      /** Rows one walk may add before jumping to a new random start (0 = one walk fills the batch, as the paper). */
      walkLength: z.number().int().nonnegative().max(2 ** 31 - 1).default(0),
    })
    .strict(),
]);

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
    hashSize: z.number().int().nonnegative().max(2 ** 31 - 1).default(0),
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
        /**
         * False-negative masking on the raw cosine similarity (RocketQA-style denoising): drop a negative whose
         * similarity exceeds `threshold`, or lies within `margin` of (or above) the positive's. Or false.
         */
        fnMask: z
          .union([
            z.literal(false),
            z
              .object({ threshold: z.number().min(-1).max(1).optional(), margin: z.number().optional() })
              .strict()
              .refine((o) => o.threshold !== undefined || o.margin !== undefined, 'give threshold, margin or both'),
          ])
          .default(false),
      })
      .strict()
      .default({ maskSameItem: true, maskSameUser: true, logQ: false, fnMask: false }),
    loss: z
      .object({
        /**
         * 'infonce' (softmax cross-entropy), 'debiased' (Chuang et al. 2020) or 'gbce' (gSASRec, Petrov &
         * Macdonald 2023: binary cross-entropy over the positive and every negative column, the positive's term
         * raised to β = α(t(1 − 1/α) + 1/α), α = negatives / (items − 1)).
         */
        type: z.enum(['infonce', 'debiased', 'gbce']).default('infonce'),
        /** Class prior τ⁺ of the debiased loss. */
        tauPlus: z.number().min(0).lt(1).default(0.1),
        /** gBCE calibration t: 0 = plain BCE (β = 1), 1 = fully calibrated (β = α); gSASRec's default 0.75. */
        t: z.number().min(0).max(1).default(0.75),
        /**
         * gBCE's reduction over a row's k negatives: 'sum' (gSASRec's code: [β·softplus(−s⁺) + Σ softplus(s⁻)] / (k + 1),
         * each negative weighs as much as the positive) or 'mean' (β·softplus(−s⁺) + mean softplus(s⁻): the negatives
         * together weigh as much as the positive). Same ranking at the optimum (the optimal logits differ by the
         * constant log k); with hundreds of shared negatives 'sum' trains to a popularity-like ranking in Towerlab's
         * trainer (docs/sequential.md), 'mean' learns.
         */
        reduction: z.enum(['sum', 'mean']).default('mean'),
        /** Add the item→user direction and average the two losses (bidirectional). */
        symmetric: z.boolean().default(false),
      })
      .strict()
      .default({ type: 'infonce', tauPlus: 0.1, t: 0.75, reduction: 'mean', symmetric: false }),
    batchSampler: batchSamplerSchema.default({ type: 'shuffle' }),
  })
  .strict();

export type Recipe = z.infer<typeof recipeSchema>;
export type SourceSpec = z.infer<typeof sourceSchema>;
export type BatchSamplerSpec = z.infer<typeof batchSamplerSchema>;

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

/**
 * What `towerlab train` uses without --recipe: in-batch softmax with the logQ correction (train frequencies) and
 * accidental-hit masking — recipes/in-batch-logq.json. Chosen on validation data: plain in-batch softmax
 * over-penalises popular items (they are everyone's negatives), logQ undoes that (see docs/collaborative-filtering.md).
 */
export const DEFAULT_RECIPE_JSON = {
  name: 'in-batch+logQ',
  temperature: 0.05,
  sources: [{ type: 'in-batch' }],
  corrections: { maskSameItem: true, maskSameUser: true, logQ: { estimator: 'train-frequency' } },
} as const;

export const defaultRecipe: Recipe = parseRecipe(DEFAULT_RECIPE_JSON);
