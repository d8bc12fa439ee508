/** `towerlab export`: a trained model → a serving bundle (weights, TF.js manifest, vocabularies, HNSW index). */
import type { Command } from 'commander';
import { getBackend } from '../compute/index.ts';
import { createBundle, writeBundle } from '../bundle/write.ts';
import { openModel } from '../model/open.ts';
import { addIndexOptions, indexConfigFrom } from './index-cmd.ts';
import { printJsonLast } from './output.ts';
import { UserError } from '../util/errors.ts';
import { readSecretFile } from '../util/secret.ts';

export async function exportCommand(o: any): Promise<void> {
  const signKey = o.signKey !== undefined ? readSecretFile(o.signKey, '--sign-key') : undefined;
  const a = openModel(o.model);
  const backend = await getBackend();
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const recallQueries = Number(o.recallQueries);
  const indexThreads = o.indexThreads === undefined ? undefined : Number(o.indexThreads);
  if (indexThreads !== undefined && !(Number.isInteger(indexThreads) && indexThreads >= 0)) throw new UserError(`--index-threads: must be an integer >= 0, got '${o.indexThreads}'`);
  const draft = createBundle(backend, a, { index: o.index === false ? null : indexConfigFrom(o, a.itemIds.length), indexThreads, recallQueries, source: o.model, log });
  writeBundle(o.out, draft, undefined, { signKey });
  const mf = draft.manifest;
  const bytes = Object.values(mf.files).reduce((s, f) => s + f.bytes, 0);
  if (o.json) printJsonLast({ out: o.out, id: mf.id, signed: !!signKey, users: mf.model.users, items: mf.model.items, dim: mf.model.dim, bytes, index: mf.index });
  else {
    process.stdout.write(`bundle ${mf.id} written to ${o.out} (${(bytes / 2 ** 20).toFixed(1)} MiB, ${Object.keys(mf.files).length + 1 + (signKey ? 1 : 0)} files${signKey ? ', signed' : ''})\n`);
    if (mf.index?.kind === 'ivf') {
      process.stdout.write(`index: ivf ${mf.index.metric} ${mf.index.lists} lists, recall@10 vs exact ${mf.index.recallAt10.toFixed(4)} at nprobe ${mf.index.nprobe} over ${mf.index.recallQueries} users\n`);
      if (mf.index.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: serve with a larger --nprobe (e.g. ${mf.index.nprobe * 2})\n`);
    } else if (mf.index) {
      process.stdout.write(`index: hnsw ${mf.index.metric} M=${mf.index.connectivity}, recall@10 vs exact ${mf.index.recallAt10.toFixed(4)} at ef ${mf.index.expansionSearch} over ${mf.index.recallQueries} users\n`);
      if (mf.index.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: serve with a larger --expansion-search (e.g. ${mf.index.expansionSearch * 4}) or export with a larger --connectivity\n`);
    }
    process.stdout.write(`serve it:  towerlab serve --model ${o.out} --port 8080 [--demo]\n`);
  }
}

export function registerExportCommand(program: Command): void {
  const cmd = program
    .command('export')
    .description('write a serving bundle: weights (TF.js weights manifest + binary tables), vocabularies, HNSW or IVF index, checksums')
    .requiredOption('--model <dir>', 'a model directory written by train')
    .requiredOption('--out <dir>', 'bundle directory (replaced atomically)')
    .option('--no-index', 'no HNSW index (the server then searches exactly)')
    .option('--index-threads <n>', 'threads building the HNSW index (0 = all cores; 1 = the same index on every run)')
    .option('--sign-key <file>', "sign the manifest (HMAC-SHA-256 with the key in this file) so 'serve --verify-key' can vouch for the bundle");
  addIndexOptions(cmd)
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((opts) => exportCommand(opts));
}
