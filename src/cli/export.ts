/**
 * `towerlab export`: a trained model → a serving bundle (weights, TF.js manifest, vocabularies, HNSW or IVF
 * index), and/or its embeddings as Parquet (`--embeddings`), and/or its item table in LanceDB (`--to lancedb:DIR`).
 */
import type { Command } from 'commander';
import { getBackend } from '../compute/index.ts';
import type { Backend } from '../compute/backend.ts';
import { createBundle, writeBundle } from '../bundle/write.ts';
import { modelEmbeddings, writeEmbeddingsParquet, type ModelEmbeddings } from '../bundle/embeddings-parquet.ts';
import { ExactSearcher } from '../index/exact.ts';
import { sampleUserQueries } from '../index/item-index.ts';
import { defaultLanceConfig, lanceTarget, writeLanceDir, type LanceConfig } from '../index/lance-index.ts';
import { indexRecall } from '../index/recall.ts';
import { breadthText } from '../index/vector-index.ts';
import { openModel } from '../model/open.ts';
import { ONNX_FILE, onnxFiles, seqOnnx, specPath, textOnnx, twoTowerOnnx, writeOnnx, type OnnxExport } from '../onnx/export.ts';
import { seqAsArtifacts } from '../bundle/seq.ts';
import { loadSeqModel, seqModelDir } from '../seq/saved-model.ts';
import { DualEncoder } from '../text/dual-encoder.ts';
import { openTextModel, textAsArtifacts, textModelDir } from '../bundle/text.ts';
import type { ModelArtifacts } from '../model/saved-model.ts';
import { join } from 'node:path';
import { addIndexOptions, indexConfigFrom, type IndexFlagOptions } from './index-cmd.ts';
import { printJsonLast } from './output.ts';
import { UserError } from '../util/errors.ts';
import { readSecretFile } from '../util/secret.ts';
import { loadItemNames } from '../data/item-names.ts';

const posInt = (flag: string, v: string | undefined, min = 1): number | undefined => {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new UserError(`${flag}: must be an integer >= ${min}, got '${v}'`);
  return x;
};


function reportOnnx(path: string, e: OnnxExport): void {
  process.stdout.write(`onnx: ${e.spec.tower} query tower (opset ${e.spec.opset}, inputs ${e.spec.inputs.map((i) => i.name).join(', ')} → embedding [batch, ${e.spec.dim}]) written to ${path} (${(e.onnx.byteLength / 2 ** 20).toFixed(1)} MiB) + ${specPath(path)}\n`);
}

export interface ExportCommandOptions extends IndexFlagOptions {
  model: string;
  out?: string;
  onnx?: string | true;
  embeddings?: string;
  to?: string;
  lancePartitions?: string;
  lanceSubVectors?: string;
  lanceNprobe: string;
  refineFactor?: string;
  index: boolean;
  indexThreads?: string;
  json?: boolean;
  /** Signs the bundle's manifest with the key in this file. */
  signKey?: string;
  itemNames?: string;
  /** Text models: the BEIR folder whose corpus the bundle searches (default: the documents saved with the model). */
  corpus?: string;
}

export async function exportCommand(o: ExportCommandOptions): Promise<void> {
  const signKey = o.signKey !== undefined ? readSecretFile(o.signKey, '--sign-key') : undefined;
  // --onnx alone names a file; with --out it may be bare (the bundle then carries query-tower.onnx).
  const onnx: string | true | undefined = o.onnx;
  const lanceDir = o.to === undefined ? null : lanceTarget(o.to);
  if (o.to !== undefined && lanceDir === null) throw new UserError(`--to: '${o.to}' is not a target this version writes (expected lancedb:DIR)`);
  const tables = o.embeddings !== undefined || lanceDir !== null;
  if (!o.out && onnx === undefined && !tables) throw new UserError('export: nothing to write: give --out <dir> (a serving bundle), --onnx <file> (the query tower as ONNX), --embeddings <file.parquet> and/or --to lancedb:<dir>');
  if (onnx === true && !o.out) throw new UserError(`--onnx: give a file (--onnx ${ONNX_FILE}), or --out <dir> to put it into the bundle`);
  if (o.embeddings !== undefined && !String(o.embeddings).endsWith('.parquet')) throw new UserError(`--embeddings: '${o.embeddings}' must end in .parquet`);
  const text = textModelDir(o.model);
  if (o.corpus !== undefined && !text) throw new UserError(`--corpus: applies to text dual encoders only ('${o.model}' is not one)`);
  if (text && (tables || o.itemNames)) throw new UserError(`${o.model}: a text dual encoder exports a serving bundle (--out <dir>) and/or its query tower (--onnx); not --embeddings, --to or --item-names`);
  const seq = text ? null : seqModelDir(o.model);
  const seqArt = seq ? loadSeqModel(seq) : null;
  let a: ModelArtifacts;
  let exported: OnnxExport | null = null;
  if (text) {
    // A text dual encoder: the bundle's items are the corpus's chunks, its query side the text tower (bundle/text.ts).
    const enc = DualEncoder.load(text);
    if (onnx !== undefined) exported = textOnnx(enc, o.model);
    if (!o.out) {
      // Only the query tower, as ONNX (--onnx <file>: checked above).
      writeOnnx(onnx as string, exported!);
      if (o.json) printJsonLast({ onnx, spec: specPath(onnx as string), tower: exported!.spec.tower, dim: exported!.spec.dim, bytes: exported!.onnx.byteLength });
      else reportOnnx(onnx as string, exported!);
      return;
    }
    const m = openTextModel(text, o.corpus);
    a = textAsArtifacts(m.encoder, m.corpus, m.meta);
  } else {
    a = seqArt ? seqAsArtifacts(seqArt) : openModel(o.model);
    if (o.itemNames) a.itemNames = await loadItemNames(o.itemNames, a.itemIds, a.meta?.data?.itemCol);
    if (onnx !== undefined) exported = seqArt ? seqOnnx(seqArt, o.model) : twoTowerOnnx(a, o.model);
  }
  if (exported && typeof onnx === 'string') writeOnnx(onnx, exported);
  const onnxResult = exported && typeof onnx === 'string' ? { onnx, spec: specPath(onnx), tower: exported.spec.tower, dim: exported.spec.dim, bytes: exported.onnx.byteLength } : null;
  if (!o.out && !tables) {
    if (o.json) printJsonLast(onnxResult);
    else reportOnnx(onnx as string, exported!);
    return;
  }
  if (!o.out && exported && !o.json) reportOnnx(onnx as string, exported);
  const backend = await getBackend();
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const recallQueries = Number(o.recallQueries);
  const results: Record<string, unknown> = {};
  let lanceConfig: LanceConfig | null = null;
  if (lanceDir !== null) {
    const d = defaultLanceConfig(a.itemIds.length, a.model.dim, o.metric);
    lanceConfig = {
      ...d,
      partitions: posInt('--lance-partitions', o.lancePartitions, 0) ?? d.partitions,
      subVectors: posInt('--lance-sub-vectors', o.lanceSubVectors) ?? d.subVectors,
      nprobe: posInt('--lance-nprobe', o.lanceNprobe) ?? d.nprobe,
      refineFactor: posInt('--refine-factor', o.refineFactor, 0) ?? d.refineFactor,
    };
  }
  if (o.embeddings !== undefined || lanceDir !== null) {
    const e = modelEmbeddings(backend, a);
    if (o.embeddings !== undefined) {
      log(`writing ${e.userIds.length} user and ${e.itemIds.length} item embeddings to ${o.embeddings}`);
      const r = await writeEmbeddingsParquet(o.embeddings, e);
      results.embeddings = r;
      if (!o.json) process.stdout.write(`embeddings: ${r.users} users + ${r.items} items (dim ${r.dim}) written to ${r.path} (${(r.bytes / 2 ** 20).toFixed(1)} MiB; columns side, index, id, vector)\n`);
    }
    if (lanceDir !== null) {
      const meta = await writeLance(backend, e, lanceDir, lanceConfig!, recallQueries, o.model, log);
      results.lancedb = { dir: lanceDir, ...meta };
      if (!o.json) {
        process.stdout.write(`lancedb: table '${meta.table}' of ${meta.items} items written to ${lanceDir} in ${meta.buildSeconds.toFixed(1)} s (${breadthText(meta.config)}); recall@10 vs exact ${meta.recallAt10?.toFixed(4)} over ${meta.recallQueries} users\n`);
        process.stdout.write(`serve from it:  towerlab serve --model <bundle> --index lancedb:${lanceDir}\n`);
      }
    }
  }
  if (!o.out) {
    if (o.json) printJsonLast({ ...(onnxResult ? { onnx: onnxResult } : {}), ...results });
    return;
  }
  const indexThreads = o.indexThreads === undefined ? undefined : Number(o.indexThreads);
  if (indexThreads !== undefined && !(Number.isInteger(indexThreads) && indexThreads >= 0)) throw new UserError(`--index-threads: must be an integer >= 0, got '${o.indexThreads}'`);
  if (text) log(`encoding ${a.itemIds.length} chunks of ${(a as ReturnType<typeof textAsArtifacts>).text.docIds.length} documents`);
  const draft = createBundle(backend, a, { index: o.index === false ? null : indexConfigFrom(o, a.itemIds.length), indexThreads, recallQueries, source: o.model, log, extraFiles: exported ? onnxFiles(exported) : undefined });
  writeBundle(o.out, draft, undefined, { signKey });
  const mf = draft.manifest;
  const bytes = Object.values(mf.files).reduce((s, f) => s + f.bytes, 0);
  if (o.json) printJsonLast({ out: o.out, onnx: exported ? join(o.out, ONNX_FILE) : null, id: mf.id, signed: !!signKey, users: mf.model.users, items: mf.model.items, dim: mf.model.dim, bytes, index: mf.index, ...results });
  else {
    process.stdout.write(`bundle ${mf.id} written to ${o.out} (${(bytes / 2 ** 20).toFixed(1)} MiB, ${Object.keys(mf.files).length + 1 + (signKey ? 1 : 0)} files${signKey ? ', signed' : ''})\n`);
    if (mf.index?.kind === 'ivf') {
      process.stdout.write(`index: ivf ${mf.index.metric} ${mf.index.lists} lists, recall@10 vs exact ${mf.index.recallAt10.toFixed(4)} at nprobe ${mf.index.nprobe} over ${mf.index.recallQueries} users\n`);
      if (mf.index.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: serve with a larger --nprobe (e.g. ${mf.index.nprobe * 2})\n`);
    } else if (mf.index) {
      process.stdout.write(`index: hnsw ${mf.index.metric} M=${mf.index.connectivity}, recall@10 vs exact ${mf.index.recallAt10.toFixed(4)} at ef ${mf.index.expansionSearch} over ${mf.index.recallQueries} users\n`);
      if (mf.index.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: serve with a larger --expansion-search (e.g. ${mf.index.expansionSearch * 4}) or export with a larger --connectivity\n`);
    }
    if (exported) reportOnnx(typeof onnx === 'string' ? `${onnx} and ${join(o.out, ONNX_FILE)}` : join(o.out, ONNX_FILE), exported);
    if (text) process.stdout.write(`text model: ${mf.model.text!.documents} documents in ${mf.model.items} chunks; query it with POST /search {"query": "…", "k": 10}\n`);
    process.stdout.write(`serve it:  towerlab serve --model ${o.out} --port 8080 [--demo]\n`);
  }
}

/** The item table in LanceDB, with its recall@10 against exact search over sampled user queries. */
async function writeLance(backend: Backend, e: ModelEmbeddings, dir: string, config: LanceConfig, recallQueries: number, source: string, log: (m: string) => void) {
  const dim = e.dim;
  // The users' query vectors (a sequence model's last states included), as the server will search with.
  const queries = sampleUserQueries((u, out) => out.set(e.users.subarray(u * dim, (u + 1) * dim)), e.userIds.length, dim, recallQueries);
  const exact = new ExactSearcher(backend, e.items, e.itemIds.length, dim);
  log(`writing the LanceDB table of ${e.itemIds.length} items to ${dir}`);
  return writeLanceDir(dir, {
    itemIds: e.itemIds,
    vectors: e.items,
    dim,
    config,
    model: source,
    log,
    measure: (ix) => {
      const r = indexRecall(ix, exact, queries, 10);
      return { recall: r.recall, queries: r.queries };
    },
  });
}

export function registerExportCommand(program: Command): void {
  const cmd = program
    .command('export')
    .description('write a serving bundle: weights (TF.js weights manifest + binary tables), vocabularies, HNSW or IVF index, checksums; and/or the query tower as ONNX, the embeddings as Parquet, the item table in LanceDB')
    .requiredOption('--model <dir>', 'a model directory written by train, seq or text')
    .option('--out <dir>', 'bundle directory (replaced atomically)')
    .option('--onnx [file]', `the query tower as ONNX (opset 17) + a JSON of its inputs, outputs and vocabularies: to <file>, and with --out also ${ONNX_FILE} in the bundle; text models: the query tower (docs/onnx.md)`)
    .option('--corpus <dir>', 'text models: the BEIR folder (corpus.jsonl) whose documents the bundle searches (default: the documents saved with the model, else the folder it was trained on)')
    .option('--item-names <file[:column]>', 'name the items in the bundle (responses and the demo show them): a table with an item id column and a name column, e.g. ml-100k.item:title (default: the names saved with the model)')
    .option('--embeddings <file.parquet>', 'user and item embeddings to Parquet (columns side, index, id, vector; atomically; docs/interop.md)')
    .option('--to <target>', 'the item table (item, id, vector) with an IVF-PQ index to LanceDB: lancedb:DIR (replaced atomically; docs/interop.md)')
    .option('--lance-partitions <n>', 'LanceDB: IVF partitions (default √items; 0 = no index, exact flat scan; tables under 5000 items get none)')
    .option('--lance-sub-vectors <n>', 'LanceDB: PQ sub-vectors (default dim/4; must divide dim)')
    .option('--lance-nprobe <n>', 'LanceDB: partitions scanned per query, stored as the default for serve/mine', '20')
    .option('--refine-factor <n>', 'LanceDB: re-rank refine×k candidates with the full vectors (0 = PQ scores only)', '10')
    .option('--no-index', 'no HNSW index (the server then searches exactly)')
    .option('--index-threads <n>', 'threads building the HNSW index (0 = all cores; 1 = the same index on every run)')
    .option('--sign-key <file>', "sign the manifest (HMAC-SHA-256 with the key in this file) so 'serve --verify-key' can vouch for the bundle");
  addIndexOptions(cmd)
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((opts) => exportCommand(opts));
}
