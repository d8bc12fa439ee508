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
 * manifest.json.sig      optional (export --sign-key): HMAC-SHA-256 of manifest.json's bytes, `hmac-sha256:<hex>`
 *
 * One integrity root: the manifest lists every file with its size and SHA-256, and the bundle `id` is a hash
 * of those checksums and of the manifest's layout fields (model shape, vocabularies, arrays, index), so it
 * is recomputed at load and a manifest edited without recomputing it is refused (format version 2; version 1
 * ids covered the files only). Signing the manifest therefore signs the whole bundle.
 *
 * The manifest is written last inside a temporary directory, which becomes a version under
 * `.<name>.versions/`; the bundle path is a symbolic link swapped to it by one rename, so the path never
 * disappears and a reader sees a complete old bundle or a complete new one (copy a bundle with `cp -rL`).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { textManifestSchema } from './text.ts';

export const BUNDLE_FORMAT = 'towerlab-bundle';
export const BUNDLE_VERSION = 2;
export const SIGNATURE_FILE = 'manifest.json.sig';
export const BUNDLE_MANIFEST = 'manifest.json';
export const TFJS_MODEL = 'model.json';
export const INDEX_FILE = 'index/items.usearch';
export const IVF_INDEX_FILE = 'index/items.ivf';

// Upper bounds: shapes are allocated before the data is compared with them, so a crafted one must fail here.
const INT32 = 2 ** 31 - 1;
const WIDTH = 1 << 16;
const towerShape = z.object({
  vocabSize: z.number().int().nonnegative().max(INT32),
  idDim: z.number().int().positive().max(WIDTH),
  features: z.array(z.object({ name: z.string(), cardinality: z.number().int().positive().max(INT32), dim: z.number().int().positive().max(WIDTH) })).max(1024),
  /** Dense (numeric / vector) features, each projected width → dim (src/model/tower.ts); absent = none. */
  dense: z.array(z.object({ name: z.string(), width: z.number().int().positive().max(WIDTH), dim: z.number().int().positive().max(WIDTH) })).max(1024).optional(),
  mlp: z.array(z.number().int().positive().max(WIDTH)).max(64),
});

const arrayEntry = z.object({
  name: z.string(),
  file: z.string(),
  dtype: z.enum(['float32', 'int32']),
  shape: z.array(z.number().int().nonnegative().max(INT32)).max(8),
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
    dim: z.number().int().positive().max(WIDTH),
    users: z.number().int().nonnegative().max(INT32),
    items: z.number().int().positive().max(INT32),
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
        options: z.object({ tower: z.enum(['sasrec', 'meanpool']), dim: z.number().int().positive().max(1 << 14), maxLen: z.number().int().positive().max(WIDTH), blocks: z.number().int().positive().max(64), heads: z.number().int().positive().max(64), dropout: z.number(), lr: z.number(), beta2: z.number(), seed: z.number() }),
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
        connectivity: z.number().int().min(2).max(4096),
        expansionAdd: z.number().int().positive().max(1 << 20),
        expansionSearch: z.number().int().positive().max(1 << 20),
        recallAt10: z.number(),
        recallQueries: z.number().int().nonnegative(),
        buildSeconds: z.number(),
      }),
      z.object({
        kind: z.literal('ivf'),
        file: z.string(),
        metric: z.enum(['ip', 'cos']),
        lists: z.number().int().positive().max(INT32),
        nprobe: z.number().int().positive().max(INT32),
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
  /** Dense feature k: its projection (width×dim weights, dim biases) and each entity's values (entities×width). */
  denseW: (tower: 'user' | 'item', k: number) => `${tower}.dense${k}.w`,
  denseB: (tower: 'user' | 'item', k: number) => `${tower}.dense${k}.b`,
  denseValues: (tower: 'user' | 'item', k: number) => `${tower}.dense${k}.values`,
  /** Mean user id embedding: stands in for the id of a user known only by features. */
  userIdMean: 'user.id.mean',
  itemEmbeddings: 'item.embeddings',
  itemCounts: 'item.counts',
  seenOffsets: 'seen.offsets',
  seenCols: 'seen.cols',
} as const;

/** JSON with object keys sorted at every level: the same bytes for the same content, whatever the key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * The bundle id: a short hash of every file's checksum and of the layout the manifest declares (what each
 * file holds and how it is read), so two bundles with the same id serve the same answers.
 */
export function bundleContentId(m: Pick<BundleManifest, 'files' | 'model' | 'vocabularies' | 'arrays' | 'index'>): string {
  const files = Object.keys(m.files)
    .sort()
    .map((p) => `${p}:${m.files[p].sha256}`)
    .join('\n');
  const layout = canonicalJson({ model: m.model, vocabularies: m.vocabularies, arrays: m.arrays, index: m.index });
  return createHash('sha256').update(`${files}\n#layout ${layout}`).digest('hex').slice(0, 12);
}
