/**
 * The serving bundle: everything a server or a browser needs to answer queries, in one directory.
 *
 *   manifest.json          format + version, creation time, recipe, metrics, model shape, vocabulary
 *                          checksums, the index settings and its recall, and size + SHA-256 of every file
 *   model.json             TF.js weights manifest (`weightsManifest`): loadable with tf.io.loadWeights
 *   weights/dense.bin      every MLP weight and bias of both towers (one TF.js weight group)
 *   weights/*.bin          one embedding table per file (raw little-endian float32), and the precomputed
 *                          item embeddings; each file is its own TF.js weight group so a page fetches only
 *                          what it uses
 *   data/*.bin             int32/float32 arrays the server needs: feature values, item counts, seen items
 *   vocab/*.json           user ids, item ids, categorical feature vocabularies
 *   index/items.usearch    the HNSW index over the item embeddings (optional), or
 *   index/items.ivf        the IVF-Flat index over them (src/index/ivf-index.ts)
 *   weights/text-query.bin the text query tower of a text dual encoder (`towerlab text`), with
 *   data/text.chunk-doc.bin and vocab/documents.json: the items are then the corpus's chunks (see text.ts)
 *   weights/seq.bin        the sequence tower (SASRec / mean pooling) of a model exported from `towerlab seq`:
 *                          history queries run through it (see seq.ts)
 *
 * The manifest is written last inside a temporary directory, which becomes a version under
 * `.<name>.versions/`; the bundle path is a symbolic link swapped to it by one rename, so the path never
 * disappears and a reader sees a complete old bundle or a complete new one (copy a bundle with `cp -rL`).
 */
import { z } from 'zod';
import { textManifestSchema } from './text.ts';

export const BUNDLE_FORMAT = 'towerlab-bundle';
export const BUNDLE_VERSION = 1;
export const BUNDLE_MANIFEST = 'manifest.json';
export const TFJS_MODEL = 'model.json';
export const INDEX_FILE = 'index/items.usearch';
export const IVF_INDEX_FILE = 'index/items.ivf';

const towerShape = z.object({
  vocabSize: z.number().int().nonnegative(),
  idDim: z.number().int().positive(),
  features: z.array(z.object({ name: z.string(), cardinality: z.number().int().positive(), dim: z.number().int().positive() })),
  mlp: z.array(z.number().int().positive()),
});

const arrayEntry = z.object({
  name: z.string(),
  file: z.string(),
  dtype: z.enum(['float32', 'int32']),
  shape: z.array(z.number().int().nonnegative()),
});

export const manifestSchema = z.object({
  format: z.literal(BUNDLE_FORMAT),
  version: z.number().int().positive(),
  /** Short content hash of the bundle (over every file's checksum): what responses and metrics name. */
  id: z.string(),
  created: z.string(),
  towerlab: z.string(),
  source: z.object({ model: z.string(), modelCreated: z.string().nullable() }),
  recipe: z.unknown().optional(),
  metrics: z.record(z.string(), z.number().nullable()).optional(),
  model: z.object({
    dim: z.number().int().positive(),
    users: z.number().int().nonnegative(),
    items: z.number().int().positive(),
    user: towerShape,
    item: towerShape,
    /**
     * How a query from an item history is formed: the mean item embedding (two-tower models), or the
     * sequence tower stored with the bundle (models exported from `towerlab seq`; see bundle/seq.ts).
     */
    historyQuery: z.enum(['mean-item-embedding', 'sequence-tower']),
    sequence: z
      .object({
        tower: z.enum(['sasrec', 'meanpool']),
        options: z.object({ tower: z.enum(['sasrec', 'meanpool']), dim: z.number().int().positive(), maxLen: z.number().int().positive(), blocks: z.number().int().positive(), heads: z.number().int().positive(), dropout: z.number(), lr: z.number(), beta2: z.number(), seed: z.number() }),
        score: z.enum(['dot', 'cosine']),
        tensors: z.array(z.string()),
        itemInput: z.enum(['item.embeddings', 'seq.item.emb']),
      })
      .optional(),
    /**
     * A text dual encoder (see bundle/text.ts): the items are the corpus's chunks, the query side is the
     * text query tower; `POST /search` answers with documents.
     */
    text: textManifestSchema.optional(),
  }),
  vocabularies: z.record(z.string(), z.object({ file: z.string(), count: z.number().int().nonnegative(), sha256: z.string() })),
  arrays: z.array(arrayEntry),
  index: z
    .union([
      z.object({
        kind: z.literal('hnsw').optional(),
        file: z.string(),
        metric: z.enum(['ip', 'cos']),
        connectivity: z.number().int().positive(),
        expansionAdd: z.number().int().positive(),
        expansionSearch: z.number().int().positive(),
        recallAt10: z.number(),
        recallQueries: z.number().int().nonnegative(),
        buildSeconds: z.number(),
      }),
      z.object({
        kind: z.literal('ivf'),
        file: z.string(),
        metric: z.enum(['ip', 'cos']),
        lists: z.number().int().positive(),
        nprobe: z.number().int().positive(),
        recallAt10: z.number(),
        recallQueries: z.number().int().nonnegative(),
        buildSeconds: z.number(),
      }),
    ])
    .nullable(),
  files: z.record(z.string(), z.object({ bytes: z.number().int().nonnegative(), sha256: z.string() })),
});

export type BundleManifest = z.infer<typeof manifestSchema>;
export type ArrayEntry = z.infer<typeof arrayEntry>;

/** Array names shared by the writer, the server and the browser page. */
export const names = {
  idTable: (tower: 'user' | 'item') => `${tower}.id.emb`,
  featTable: (tower: 'user' | 'item', f: number) => `${tower}.feature${f}.emb`,
  featValues: (tower: 'user' | 'item', f: number) => `${tower}.feature${f}.values`,
  layerW: (tower: 'user' | 'item', l: number) => `${tower}.mlp${l}.w`,
  layerB: (tower: 'user' | 'item', l: number) => `${tower}.mlp${l}.b`,
  /** Mean user id embedding: stands in for the id of a user known only by features. */
  userIdMean: 'user.id.mean',
  itemEmbeddings: 'item.embeddings',
  itemCounts: 'item.counts',
  seenOffsets: 'seen.offsets',
  seenCols: 'seen.cols',
} as const;
