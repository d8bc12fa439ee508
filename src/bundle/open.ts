/** Opens any saved model folder: a run folder (with model/ inside), the model folder itself, or a sequence model. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, type ModelArtifacts } from '../model/saved-model.ts';
import { UserError } from '../util/errors.ts';
import { seqAsArtifacts } from './seq.ts';
import { loadSeqModel, seqModelDir } from '../seq/saved-model.ts';

export function openModel(dir: string): ModelArtifacts {
  // A sequence model (towerlab seq --out) opens as bare tables plus its tower, for export and serve.
  const seq = seqModelDir(dir);
  if (seq) return seqAsArtifacts(loadSeqModel(seq));
  if (existsSync(join(dir, 'manifest.json'))) return loadModel(dir);
  if (existsSync(join(dir, 'model', 'manifest.json'))) return loadModel(join(dir, 'model'));
  throw new UserError(`${dir}: no model found (expected ${dir}/manifest.json or ${dir}/model/manifest.json)`);
}
