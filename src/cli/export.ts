/** `towerlab export`: a trained model → a serving bundle (weights, TF.js manifest, vocabularies, HNSW index). */
import type { Command } from 'commander';
import { getBackend } from '../compute/index.ts';
import { createBundle, writeBundle } from '../bundle/write.ts';
import { openModel } from '../model/open.ts';
import { MANIFEST } from '../model/tensor-file.ts';
import { ONNX_FILE, onnxFiles, seqOnnx, specPath, textOnnx, twoTowerOnnx, writeOnnx, type OnnxExport } from '../onnx/export.ts';
import { seqAsArtifacts } from '../bundle/seq.ts';
import { loadSeqModel, seqModelDir } from '../seq/saved-model.ts';
import { DualEncoder, FORMAT as TEXT_FORMAT } from '../text/dual-encoder.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { addIndexOptions, indexConfigFrom } from './index-cmd.ts';
import { printJsonLast } from './output.ts';
import { UserError } from '../util/errors.ts';

/** The folder of a saved text dual encoder (`towerlab text --out`), or null. */
function textModelDir(dir: string): string | null {
  const p = join(dir, MANIFEST);
  if (!existsSync(p)) return null;
  try {
    return JSON.parse(readFileSync(p, 'utf8'))?.format === TEXT_FORMAT ? dir : null;
  } catch {
    return null; // let the loader name the problem
  }
}

function reportOnnx(path: string, e: OnnxExport): void {
  process.stdout.write(`onnx: ${e.spec.tower} query tower (opset ${e.spec.opset}, inputs ${e.spec.inputs.map((i) => i.name).join(', ')} → embedding [batch, ${e.spec.dim}]) written to ${path} (${(e.onnx.byteLength / 2 ** 20).toFixed(1)} MiB) + ${specPath(path)}\n`);
}

export async function exportCommand(o: any): Promise<void> {
  // --onnx alone names a file; with --out it may be bare (the bundle then carries query-tower.onnx).
  const onnx: string | true | undefined = o.onnx;
  if (!o.out && onnx === undefined) throw new UserError('export: give --out <dir> (a serving bundle) and/or --onnx <file> (the query tower as ONNX)');
  if (onnx === true && !o.out) throw new UserError(`--onnx: give a file (--onnx ${ONNX_FILE}), or --out <dir> to put it into the bundle`);
  const text = textModelDir(o.model);
  if (text) {
    // A text dual encoder has no serving bundle (yet): only its query tower goes out, as ONNX.
    if (o.out || typeof onnx !== 'string') throw new UserError(`${o.model}: a text dual encoder exports only its query tower: use --onnx <file> without --out`);
    const e = textOnnx(DualEncoder.load(text), o.model);
    writeOnnx(onnx, e);
    if (o.json) printJsonLast({ onnx: onnx, spec: specPath(onnx), tower: e.spec.tower, dim: e.spec.dim, bytes: e.onnx.byteLength });
    else reportOnnx(onnx, e);
    return;
  }
  const seq = seqModelDir(o.model);
  const seqArt = seq ? loadSeqModel(seq) : null;
  const a = seqArt ? seqAsArtifacts(seqArt) : openModel(o.model);
  let exported: OnnxExport | null = null;
  if (onnx !== undefined) exported = seqArt ? seqOnnx(seqArt, o.model) : twoTowerOnnx(a, o.model);
  if (exported && typeof onnx === 'string') writeOnnx(onnx, exported);
  if (!o.out) {
    if (o.json) printJsonLast({ onnx, spec: specPath(onnx as string), tower: exported!.spec.tower, dim: exported!.spec.dim, bytes: exported!.onnx.byteLength });
    else reportOnnx(onnx as string, exported!);
    return;
  }
  const backend = await getBackend();
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const recallQueries = Number(o.recallQueries);
  const indexThreads = o.indexThreads === undefined ? undefined : Number(o.indexThreads);
  if (indexThreads !== undefined && !(Number.isInteger(indexThreads) && indexThreads >= 0)) throw new UserError(`--index-threads: must be an integer >= 0, got '${o.indexThreads}'`);
  const draft = createBundle(backend, a, { index: o.index === false ? null : indexConfigFrom(o, a.itemIds.length), indexThreads, recallQueries, source: o.model, log, extraFiles: exported ? onnxFiles(exported) : undefined });
  writeBundle(o.out, draft);
  const mf = draft.manifest;
  const bytes = Object.values(mf.files).reduce((s, f) => s + f.bytes, 0);
  if (o.json) printJsonLast({ out: o.out, onnx: exported ? join(o.out, ONNX_FILE) : null, id: mf.id, users: mf.model.users, items: mf.model.items, dim: mf.model.dim, bytes, index: mf.index });
  else {
    process.stdout.write(`bundle ${mf.id} written to ${o.out} (${(bytes / 2 ** 20).toFixed(1)} MiB, ${Object.keys(mf.files).length + 1} files)\n`);
    if (mf.index?.kind === 'ivf') {
      process.stdout.write(`index: ivf ${mf.index.metric} ${mf.index.lists} lists, recall@10 vs exact ${mf.index.recallAt10.toFixed(4)} at nprobe ${mf.index.nprobe} over ${mf.index.recallQueries} users\n`);
      if (mf.index.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: serve with a larger --nprobe (e.g. ${mf.index.nprobe * 2})\n`);
    } else if (mf.index) {
      process.stdout.write(`index: hnsw ${mf.index.metric} M=${mf.index.connectivity}, recall@10 vs exact ${mf.index.recallAt10.toFixed(4)} at ef ${mf.index.expansionSearch} over ${mf.index.recallQueries} users\n`);
      if (mf.index.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: serve with a larger --expansion-search (e.g. ${mf.index.expansionSearch * 4}) or export with a larger --connectivity\n`);
    }
    if (exported) reportOnnx(typeof onnx === 'string' ? `${onnx} and ${join(o.out, ONNX_FILE)}` : join(o.out, ONNX_FILE), exported);
    process.stdout.write(`serve it:  towerlab serve --model ${o.out} --port 8080 [--demo]\n`);
  }
}

export function registerExportCommand(program: Command): void {
  const cmd = program
    .command('export')
    .description('write a serving bundle: weights (TF.js weights manifest + binary tables), vocabularies, HNSW or IVF index, checksums; and/or the query tower as ONNX')
    .requiredOption('--model <dir>', 'a model directory written by train, seq or text')
    .option('--out <dir>', 'bundle directory (replaced atomically)')
    .option('--onnx [file]', `the query tower as ONNX (opset 17) + a JSON of its inputs, outputs and vocabularies: to <file>, and with --out also ${ONNX_FILE} in the bundle; text models: --onnx <file> only (docs/onnx.md)`)
    .option('--no-index', 'no HNSW index (the server then searches exactly)')
    .option('--index-threads <n>', 'threads building the HNSW index (0 = all cores; 1 = the same index on every run)');
  addIndexOptions(cmd)
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((opts) => exportCommand(opts));
}
