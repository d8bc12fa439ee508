/**
 * A trained sequence model on disk, in the tensor-directory format of src/model (manifest.json + tensors.bin,
 * SHA-256 checked, written atomically) under its own format name so every command can tell it from a
 * two-tower model: the tower's weights (no optimizer state), the item and user vocabularies, each user's
 * whole known sequence in time order (training + validation + test items: the input when recommending the
 * next item for that user) and the training interaction count per item (popularity fallback and baseline).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { csrFromPairs, csrRow, type Csr } from '../data/csr.ts';
import { MANIFEST, buildFromManifest, readTensorDir, writeTensorDir, type NamedArray } from '../model/tensor-file.ts';
import { checkCsr } from '../model/saved-model.ts';
import { UserError } from '../util/errors.ts';
import type { SeqData } from './data.ts';
import { buildTower, type SeqModelOptions } from './experiment.ts';
import type { ScoreKind } from './objectives.ts';
import type { SeqTower } from './tower.ts';

export const SEQ_MODEL_FORMAT = 'towerlab-seq-model';
export const SEQ_MODEL_VERSION = 1;
const VOCAB = 'vocab.json';

export interface SeqArtifacts {
  tower: SeqTower;
  options: SeqModelOptions;
  /** How the model scores (dot product, or cosine for a softmax trained so). */
  score: ScoreKind;
  userIds: string[];
  itemIds: string[];
  /** Each user's whole known sequence, in time order. */
  sequences: Csr;
  /** Training interactions per item. */
  itemCounts: Float32Array;
  /** Anything else to record (data spec, objective, metrics, protocol, training summary). */
  meta: Record<string, any>;
}

/** Each user's training + validation + test items in time order (what SeqData holds, in one CSR). */
export function fullSequences(data: SeqData): Csr {
  const us: number[] = [];
  const is: number[] = [];
  for (let u = 0; u < data.numUsers; u++) {
    for (const j of csrRow(data.trainVal, u)) (us.push(u), is.push(j));
    if (data.testItem[u] >= 0) (us.push(u), is.push(data.testItem[u]));
  }
  return csrFromPairs(data.numUsers, Int32Array.from(us), Int32Array.from(is));
}

export function saveSeqModel(dir: string, a: SeqArtifacts): void {
  const arrays: Array<[string, NamedArray]> = a.tower.tensors().map(([name, t]) => [`tower.${name}`, t]);
  arrays.push(['item.counts', a.itemCounts], ['sequences.offsets', a.sequences.offsets], ['sequences.cols', a.sequences.cols]);
  const meta = { ...a.meta, kind: 'sequence', seqModel: a.options, score: a.score, users: a.userIds.length, items: a.itemIds.length };
  writeTensorDir(dir, SEQ_MODEL_FORMAT, SEQ_MODEL_VERSION, meta, arrays, { [VOCAB]: JSON.stringify({ users: a.userIds, items: a.itemIds }) });
}

/** True when `dir` (or its model/ folder) holds a saved sequence model. */
export function seqModelDir(dir: string): string | null {
  for (const d of [dir, join(dir, 'model')]) {
    const p = join(d, MANIFEST);
    if (!existsSync(p)) continue;
    try {
      return JSON.parse(readFileSync(p, 'utf8'))?.format === SEQ_MODEL_FORMAT ? d : null;
    } catch {
      return null; // let the loader name the problem
    }
  }
  return null;
}

export function loadSeqModel(dir: string): SeqArtifacts {
  const { manifest, arrays, readText } = readTensorDir(dir, SEQ_MODEL_FORMAT, SEQ_MODEL_VERSION);
  let vocab: { users: string[]; items: string[] };
  try {
    vocab = JSON.parse(readText(VOCAB));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${join(dir, VOCAB)}: unreadable (not valid JSON)`);
  }
  const get = <T extends NamedArray>(name: string): T => {
    const x = arrays.get(name);
    if (!x) throw new UserError(`${dir}: tensor '${name}' missing from the model`);
    return x as T;
  };
  const options = manifest.seqModel as SeqModelOptions;
  if (!options || (options.tower !== 'sasrec' && options.tower !== 'meanpool')) throw new UserError(`${join(dir, MANIFEST)}: field 'seqModel.tower': expected 'sasrec' or 'meanpool'`);
  if (!Array.isArray(vocab?.items) || !Array.isArray(vocab?.users)) throw new UserError(`${join(dir, VOCAB)}: expected 'users' and 'items' id lists`);
  const int = (x: unknown, hi: number) => Number.isInteger(x) && (x as number) >= 1 && (x as number) <= hi;
  if (!int(options.dim, 1 << 14) || !int(options.maxLen, 1 << 16) || !int(options.blocks, 64) || !int(options.heads, 64)) {
    throw new UserError(`${join(dir, MANIFEST)}: field 'seqModel': dim, maxLen, blocks or heads missing or out of range`);
  }
  const tower = buildFromManifest(dir, () => buildTower(options, vocab.items.length, true));
  for (const [name, target] of tower.tensors()) {
    const src = get<Float32Array>(`tower.${name}`);
    if (src.length !== target.length) throw new UserError(`${dir}: tensor 'tower.${name}' has ${src.length} values, the config implies ${target.length}`);
    target.set(src);
  }
  const offsets = get<Int32Array>('sequences.offsets');
  const cols = get<Int32Array>('sequences.cols');
  if (offsets.length !== vocab.users.length + 1 || offsets[offsets.length - 1] !== cols.length) throw new UserError(`${dir}: stored sequences disagree with the ${vocab.users.length} users`);
  checkCsr(offsets, cols, vocab.users.length, vocab.items.length, `${dir}: stored sequences`);
  const itemCounts = get<Float32Array>('item.counts');
  if (itemCounts.length !== vocab.items.length) throw new UserError(`${dir}: tensor 'item.counts' has ${itemCounts.length} values, the model has ${vocab.items.length} items`);
  return {
    tower,
    options,
    score: manifest.score === 'cosine' ? 'cosine' : 'dot',
    userIds: vocab.users,
    itemIds: vocab.items,
    sequences: { rows: vocab.users.length, offsets, cols },
    itemCounts,
    meta: manifest,
  };
}
