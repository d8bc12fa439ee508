/**
 * The query tower of a trained model as an ONNX file (opset 17) plus a JSON description beside it: input and
 * output names/shapes, the vocabularies that map ids to the inputs' indices, and for text the tokenizer's
 * parameters (tokenisation is not in the graph). Three kinds of model: two-tower (id + feature user tower),
 * sequence (SASRec / mean pooling over the item history), text dual encoder (bag-of-embeddings query tower).
 * See docs/onnx.md for loading it from Python's onnxruntime and from onnxruntime-web.
 */
import { createHash } from 'node:crypto';
import { basename, dirname, extname, join } from 'node:path';
import { queryTowerWeights } from '../bundle/query-tower.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import type { SeqArtifacts } from '../seq/saved-model.ts';
import type { BoeTower } from '../text/boe-tower.ts';
import type { DualEncoder } from '../text/dual-encoder.ts';
import { ENGLISH_STOPWORDS, fnv1a } from '../text/tokenize.ts';
import { UserError } from '../util/errors.ts';
import { writeFileAtomic } from '../util/atomic.ts';
import type { GraphBuilder } from './graph-builder.ts';
import { OPSET } from './graph-builder.ts';
import { idTowerGraph } from './id-tower.ts';
import { seqTowerGraph } from './seq-tower.ts';
import { boeTowerGraph } from './text-tower.ts';

export const ONNX_FILE = 'query-tower.onnx';
export const ONNX_SPEC_FORMAT = 'towerlab-onnx-query-tower';
const TOWERLAB_VERSION = '0.1.0';

export interface OnnxIo {
  name: string;
  dtype: 'int64' | 'float32';
  shape: Array<number | string>;
  description: string;
}

/** What query-tower.json holds. */
export interface OnnxSpec {
  format: typeof ONNX_SPEC_FORMAT;
  version: 1;
  tower: 'user-id-features' | 'sasrec' | 'meanpool' | 'text-boe';
  opset: number;
  /** The ONNX file's name (beside this JSON) and its SHA-256. */
  file: string;
  sha256: string;
  dim: number;
  /** How scores against the item/document embeddings are computed from the (unit) query embedding. */
  score: string;
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  /** Id lists: position = the index the inputs take. */
  vocabularies: Record<string, string[]>;
  /** User features (two-tower): input name, feature name, value vocabulary (index 0 = missing). */
  features?: Array<{ input: string; name: string; vocab: string[] }>;
  /** Dense user features (two-tower): input name, feature name, width (the input is float32 [batch, width]). */
  dense?: Array<{ input: string; name: string; width: number }>;
  /** Sequence towers: the number of most recent known items used. */
  maxLen?: number;
  /** Text: the tokenizer that turns a query into token_ids (see docs/onnx.md). */
  tokenizer?: Record<string, unknown>;
  source: string;
}

export interface OnnxExport {
  onnx: Uint8Array;
  spec: OnnxSpec;
}

const embeddingOut = (dim: number): OnnxIo => ({ name: 'embedding', dtype: 'float32', shape: ['batch', dim], description: 'L2-normalised query embedding (an input with nothing known gives a zero row)' });

function finish(g: GraphBuilder, spec: Omit<OnnxSpec, 'format' | 'version' | 'opset' | 'file' | 'sha256'>): OnnxExport {
  const onnx = g.encode({ producer: 'towerlab', producerVersion: TOWERLAB_VERSION, doc: `towerlab ${spec.tower} query tower` });
  return { onnx, spec: { format: ONNX_SPEC_FORMAT, version: 1, ...spec, opset: OPSET, file: ONNX_FILE, sha256: createHash('sha256').update(onnx).digest('hex') } };
}

/** The user tower's inference weights (moved to bundle/query-tower.ts, shared with the library's new-user path). */
export { queryTowerWeights };

export function twoTowerOnnx(a: ModelArtifacts, source = ''): OnnxExport {
  const q = queryTowerWeights(a);
  const features = a.userFeatures.map((f, k) => ({ input: `feature_${k}`, name: f.name, vocab: f.vocab }));
  const dense = (q.dense ?? []).map((f, k) => ({ input: `dense_${k}`, name: f.name, width: f.width }));
  return finish(idTowerGraph(q), {
    tower: 'user-id-features',
    dim: q.outDim,
    score: 'cosine: dot product with the unit item embeddings',
    inputs: [
      { name: 'user_index', dtype: 'int64', shape: ['batch'], description: "index of the user in vocabularies.users; any index outside it (e.g. -1) = a new user: the mean id embedding" },
      ...features.map((f): OnnxIo => ({ name: f.input, dtype: 'int64', shape: ['batch'], description: `feature '${f.name}': index into its vocab (0 = missing), or -1 for the stored value of a known user` })),
      ...dense.map((f): OnnxIo => ({ name: f.input, dtype: 'float32', shape: ['batch', f.width], description: `dense feature '${f.name}': its ${f.width} values; NaN elements take the stored value of a known user (0 for a new user)` })),
    ],
    outputs: [embeddingOut(q.outDim)],
    vocabularies: { users: a.userIds },
    features,
    ...(dense.length ? { dense } : {}),
    source,
  });
}

export function seqOnnx(a: SeqArtifacts, source = ''): OnnxExport {
  return finish(seqTowerGraph(a.tower), {
    tower: a.tower.kind as 'sasrec' | 'meanpool',
    dim: a.tower.dim,
    score: a.score === 'cosine' ? 'cosine: dot product with the unit item embeddings' : 'dot product with the item embeddings (the query being unit length does not change the ranking)',
    inputs: [{ name: 'item_ids', dtype: 'int64', shape: ['batch', 'len'], description: `history as indices into vocabularies.items, oldest first; values outside it (e.g. -1 padding, unknown items) are skipped; the last ${a.tower.maxLen} known items are used` }],
    outputs: [embeddingOut(a.tower.dim)],
    vocabularies: { items: a.itemIds },
    maxLen: a.tower.maxLen,
    source,
  });
}

export function textOnnx(enc: DualEncoder, source = ''): OnnxExport {
  const c = enc.config;
  if (c.tower !== 'boe') throw new UserError(`${source || 'text model'}: ONNX export covers the bag-of-embeddings text tower; this model's tower is '${c.tower}'`);
  const t = enc.qTower as BoeTower;
  const tk = c.tokenizer;
  return finish(boeTowerGraph(t), {
    tower: 'text-boe',
    dim: t.outDim,
    score: enc.config.shared ? 'cosine with document chunk embeddings of the same tower (a document scores its best chunk)' : 'cosine with document chunk embeddings of the document tower (a document scores its best chunk)',
    inputs: [{ name: 'token_ids', dtype: 'int64', shape: ['batch', 'len'], description: `hashed feature ids of each query (see tokenizer), padded with -1; values outside [0, ${tk.buckets}) are padding` }],
    outputs: [embeddingOut(t.outDim)],
    vocabularies: {},
    tokenizer: {
      kind: 'hashed-features',
      description: 'lowercase; words = runs of Unicode letters/digits; drop stop words (if stopwords); S-stemmer (if stem); keep the first queryMaxLen words; per word i: unigram, then bigram (i, i+1) if bigrams and i+1 < n, then char n-grams of <word> for each n in charNgrams',
      hash: 'FNV-1a 32-bit over UTF-16 code units, continued from a per-kind seed; bucket = hash % buckets',
      unigram: 'fnv1a(word, seeds.unigram)',
      bigram: "fnv1a(next, fnv1a(' ', fnv1a(word, seeds.bigram)))",
      charNgram: 'fnv1a(gram, seeds.char)',
      seeds: { unigram: fnv1a('u\u0001'), bigram: fnv1a('b\u0001'), char: fnv1a('c\u0001') },
      fnvOffset: 0x811c9dc5,
      fnvPrime: 0x01000193,
      buckets: tk.buckets,
      bigrams: tk.bigrams,
      charNgrams: tk.charNgrams,
      stopwords: tk.stopwords,
      stopwordList: tk.stopwords ? [...ENGLISH_STOPWORDS] : [],
      stem: tk.stem,
      queryMaxLen: c.queryMaxLen,
      pooling: c.pooling,
    },
    source,
  });
}

/** The JSON written beside an ONNX file: foo.onnx → foo.json. */
export function specPath(onnxPath: string): string {
  const ext = extname(onnxPath);
  return join(dirname(onnxPath), `${ext === '.onnx' ? basename(onnxPath, ext) : basename(onnxPath)}.json`);
}

/** The two files, for a bundle (names relative to it). */
export function onnxFiles(e: OnnxExport, onnxName = ONNX_FILE): Map<string, Uint8Array> {
  const spec = { ...e.spec, file: basename(onnxName) };
  return new Map([
    [onnxName, e.onnx],
    [specPath(onnxName), Buffer.from(JSON.stringify(spec, null, 1))],
  ]);
}

/** Writes `path` and its JSON atomically (each file: temp, fsync, rename). */
export function writeOnnx(path: string, e: OnnxExport): void {
  for (const [p, bytes] of onnxFiles(e, path)) {
    try {
      writeFileAtomic(p, bytes);
    } catch (err) {
      throw new UserError(`${p}: cannot write: ${(err as Error).message}`);
    }
  }
}
