/**
 * A trained LCE reranker on disk (`towerlab rerank train --out`): its dense layers in a tensor directory
 * (model/tensor-file.ts: atomic write, SHA-256 of the weights in the manifest, checked on load) plus what is
 * needed to rebuild its features at evaluation time — the member models (first = the target retriever),
 * each with the checksum of its weights so a reranker is never silently applied to a retrained model, the
 * list length K, the data set and split, and the training summary.
 */
import type { Backend } from '../compute/backend.ts';
import { buildFromManifest, readTensorDir, writeTensorDir, type NamedArray } from '../model/tensor-file.ts';
import { UserError } from '../util/errors.ts';
import type { Standardizer } from './feature-groups.ts';
import { featureDim } from './features.ts';
import { LceReranker, type LceConfig } from './lce.ts';

export const RERANKER_FORMAT = 'towerlab-reranker';
export const RERANKER_VERSION = 1;

export interface RerankerMeta {
  lce: LceConfig;
  /** Member models: absolute directory and the SHA-256 of its weights file (null when it records none). */
  members: Array<{ dir: string; checksum: string | null }>;
  /** Candidates per user from the target retriever. */
  K: number;
  /** Embedding size of the target model (the feature layout depends on it). */
  dim: number;
  data: Record<string, unknown>;
  split: Record<string, unknown>;
  training: Record<string, unknown>;
  /** Scalar-feature rerankers (text, rerank/text-features.ts): the feature names, replacing the embedding layout. */
  features?: string[];
}

export function saveReranker(dir: string, model: LceReranker, meta: RerankerMeta, standardizer?: Standardizer): void {
  const arrays: Array<[string, NamedArray]> = [];
  model.layers.forEach((l, i) => arrays.push([`layer${i}.w`, l.w], [`layer${i}.b`, l.b]));
  if (standardizer) arrays.push(['features.mean', standardizer.mean], ['features.std', standardizer.std]);
  writeTensorDir(dir, RERANKER_FORMAT, RERANKER_VERSION, { ...meta }, arrays);
}

export function loadReranker(dir: string, backend: Backend): { model: LceReranker; meta: RerankerMeta; standardizer?: Standardizer } {
  const { manifest, arrays } = readTensorDir(dir, RERANKER_FORMAT, RERANKER_VERSION);
  const meta = manifest as unknown as RerankerMeta;
  if (!meta.lce || !Array.isArray(meta.members) || !meta.members.length) throw new UserError(`${dir}/manifest.json: missing 'lce' or 'members'`);
  if (meta.features) {
    if (meta.lce.inDim !== meta.features.length) throw new UserError(`${dir}/manifest.json: inDim ${meta.lce.inDim} does not match its ${meta.features.length} feature names`);
  } else {
    const want = featureDim(meta.dim, meta.members.length);
    if (meta.lce.inDim !== want) throw new UserError(`${dir}/manifest.json: inDim ${meta.lce.inDim} does not match ${meta.members.length} member(s) of dim ${meta.dim} (${want})`);
  }
  const model = buildFromManifest(dir, () => new LceReranker(backend, meta.lce));
  model.layers.forEach((l, i) => {
    for (const [name, dst] of [[`layer${i}.w`, l.w], [`layer${i}.b`, l.b]] as const) {
      const a = arrays.get(name);
      if (!a || a.length !== dst.length) throw new UserError(`${dir}: tensor '${name}' missing or of the wrong size`);
      dst.set(a as Float32Array);
    }
  });
  const mean = arrays.get('features.mean');
  const std = arrays.get('features.std');
  if ((mean || std) && !(mean instanceof Float32Array && std instanceof Float32Array && mean.length === meta.lce.inDim && std.length === meta.lce.inDim)) {
    throw new UserError(`${dir}: tensors 'features.mean'/'features.std' missing or of the wrong size`);
  }
  return { model, meta, standardizer: mean && std ? { mean: mean as Float32Array, std: std as Float32Array } : undefined };
}
