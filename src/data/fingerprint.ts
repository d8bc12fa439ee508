/**
 * Fingerprints of a data set and of the training rows a split takes from it, saved with every trained model
 * so that tools combining models (`towerlab mine` with an ensemble) can tell whether they were trained on the
 * same rows. Content hashes, not paths: a moved file keeps its fingerprint, an edited one does not.
 */
import { createHash } from 'node:crypto';
import type { Interactions, Split } from './types.ts';

export interface DataFingerprint {
  /** sha256 (first 16 hex digits) of the ids and the (user, item) rows in file order. */
  data: string;
  /** sha256 of `data` and the split's training row indices. */
  train: string;
}

const bytes = (a: Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export function dataFingerprint(data: Interactions, split: Split): DataFingerprint {
  const h = createHash('sha256');
  h.update(`users ${data.userVocab.ids.length}\n`).update(data.userVocab.ids.join('\n'));
  h.update(`\nitems ${data.itemVocab.ids.length}\n`).update(data.itemVocab.ids.join('\n'));
  h.update(bytes(data.users)).update(bytes(data.items));
  const d = h.digest('hex').slice(0, 16);
  const train = createHash('sha256').update(d).update(bytes(split.train)).digest('hex').slice(0, 16);
  return { data: d, train };
}

/** A model's recorded fingerprint, or null when it has none (saved before fingerprints, or not by train). */
export function recordedFingerprint(meta: Record<string, any> | undefined): DataFingerprint | null {
  const f = meta?.fingerprint;
  return f && typeof f.data === 'string' && typeof f.train === 'string' ? { data: f.data, train: f.train } : null;
}
