/** `towerlab index build`: the HNSW item index of a model, with its recall@10 against exact search. */
import { Command, Option } from 'commander';
import { getBackend } from '../compute/index.ts';
import { defaultAnnConfig, type AnnConfig } from '../index/ann-index.ts';
import { buildItemIndex, writeIndexDir } from '../index/item-index.ts';
import { UserError } from '../util/errors.ts';
import { openModel } from './model-dir.ts';
import { printJsonLast } from './output.ts';

export function addIndexOptions(cmd: Command): Command {
  const d = defaultAnnConfig;
  return cmd
    .addOption(new Option('--metric <name>', 'similarity of the index (embeddings are L2-normalised, so both rank alike)').choices(['ip', 'cos']).default(d.metric))
    .option('--connectivity <n>', 'HNSW graph degree M', String(d.connectivity))
    .option('--expansion-add <n>', 'HNSW candidate list while building (ef_construction)', String(d.expansionAdd))
    .option('--expansion-search <n>', 'HNSW candidate list while searching (ef)', String(d.expansionSearch))
    .option('--recall-queries <n>', 'user queries for measuring recall@10 vs exact', '500');
}

export function annConfigFrom(o: any): AnnConfig {
  const int = (flag: string, v: string) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < 1) throw new UserError(`${flag}: must be a positive integer, got '${v}'`);
    return x;
  };
  int('--recall-queries', o.recallQueries);
  return { metric: o.metric, connectivity: int('--connectivity', o.connectivity), expansionAdd: int('--expansion-add', o.expansionAdd), expansionSearch: int('--expansion-search', o.expansionSearch) };
}

export async function indexBuildCommand(o: any): Promise<void> {
  const config = annConfigFrom(o);
  const a = openModel(o.model);
  const backend = await getBackend();
  const built = buildItemIndex(backend, a, config, Number(o.recallQueries), (m) => process.stderr.write(`${m}\n`));
  const meta = writeIndexDir(o.out, built, o.model);
  if (o.json) printJsonLast({ out: o.out, items: meta.items, dim: meta.dim, ...config, recall_at_10: meta.recallAt10, recall_queries: meta.recallQueries, build_seconds: meta.buildSeconds, ann_ms: built.recall.annMs, exact_ms: built.recall.exactMs });
  else {
    process.stdout.write(`index of ${meta.items} items (dim ${meta.dim}, ${config.metric}, M=${config.connectivity}) written to ${o.out} in ${meta.buildSeconds.toFixed(1)} s\n`);
    process.stdout.write(`recall@10 vs exact: ${meta.recallAt10.toFixed(4)} over ${meta.recallQueries} user queries (${built.recall.annMs.toFixed(3)} ms/query hnsw, ${built.recall.exactMs.toFixed(3)} ms/query exact)\n`);
    if (meta.recallAt10 < 0.95) process.stdout.write(`note: recall below 0.95: raise --expansion-search (search breadth) or --connectivity\n`);
  }
}

export function registerIndexCommand(program: Command): void {
  const index = program.command('index').description('approximate nearest-neighbour index of the item embeddings');
  const build = index.command('build').description('build the HNSW index of a model (usearch) and report its recall@10 vs exact search');
  build.requiredOption('--model <dir>', 'a model directory written by train (the run folder or its model/ folder)').requiredOption('--out <dir>', 'output directory (items.usearch + index.json)');
  addIndexOptions(build)
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((opts) => indexBuildCommand(opts));
}
