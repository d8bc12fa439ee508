/** `towerlab index build`: the HNSW or IVF item index of a model, with its recall@10 against exact search. */
import { Command, Option } from 'commander';
import { getBackend } from '../compute/index.ts';
import { defaultAnnConfig, type AnnConfig, type IndexMetric } from '../index/ann-index.ts';
import { buildItemIndex, writeIndexDir } from '../index/item-index.ts';
import { defaultIvfLists } from '../index/ivf-index.ts';
import { breadthText, isIvfConfig, type IndexConfig } from '../index/vector-index.ts';
import { UserError } from '../util/errors.ts';
import { openModel } from '../model/open.ts';
import { printJsonLast } from './output.ts';

export function addIndexOptions(cmd: Command): Command {
  const d = defaultAnnConfig;
  return cmd
    .addOption(new Option('--kind <kind>', 'index kind: HNSW graph (usearch) or IVF-Flat (k-means lists; fast to build, fast to search)').choices(['hnsw', 'ivf']).default('hnsw'))
    .addOption(new Option('--metric <name>', 'similarity of the index (embeddings are L2-normalised, so both rank alike)').choices(['ip', 'cos']).default(d.metric))
    .option('--connectivity <n>', 'HNSW graph degree M', String(d.connectivity))
    .option('--expansion-add <n>', 'HNSW candidate list while building (ef_construction)', String(d.expansionAdd))
    .option('--expansion-search <n>', 'HNSW candidate list while searching (ef)', String(d.expansionSearch))
    .option('--lists <n>', 'IVF: k-means lists (default about 2·√items)')
    .option('--nprobe <n>', 'IVF: lists scanned per query (higher = better recall, slower)', '8')
    .option('--recall-queries <n>', 'user queries for measuring recall@10 vs exact', '500');
}

const int = (flag: string, v: string) => {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1) throw new UserError(`${flag}: must be a positive integer, got '${v}'`);
  return x;
};

/** The options addIndexOptions defines (values as typed: strings, parsed below). */
export interface IndexFlagOptions {
  kind: 'hnsw' | 'ivf';
  metric: IndexMetric;
  connectivity: string;
  expansionAdd: string;
  expansionSearch: string;
  lists?: string;
  nprobe: string;
  recallQueries: string;
}

export interface IndexBuildCommandOptions extends IndexFlagOptions {
  model: string;
  out: string;
  json?: boolean;
}

/** The index settings from the options of `index build` / `export`; `items` sizes the default IVF list count. */
export function indexConfigFrom(o: IndexFlagOptions, items: number): IndexConfig {
  if (o.kind !== 'ivf') return annConfigFrom(o);
  int('--recall-queries', o.recallQueries);
  const lists = o.lists === undefined ? defaultIvfLists(items) : int('--lists', o.lists);
  return { kind: 'ivf', metric: o.metric, lists, nprobe: int('--nprobe', o.nprobe) };
}

export function annConfigFrom(o: Pick<IndexFlagOptions, 'metric' | 'connectivity' | 'expansionAdd' | 'expansionSearch' | 'recallQueries'>): AnnConfig {
  int('--recall-queries', o.recallQueries);
  return { metric: o.metric, connectivity: int('--connectivity', o.connectivity), expansionAdd: int('--expansion-add', o.expansionAdd), expansionSearch: int('--expansion-search', o.expansionSearch) };
}

export async function indexBuildCommand(o: IndexBuildCommandOptions): Promise<void> {
  const a = openModel(o.model);
  const config = indexConfigFrom(o, a.itemIds.length);
  const backend = await getBackend();
  const built = buildItemIndex(backend, a, config, Number(o.recallQueries), (m) => process.stderr.write(`${m}\n`));
  const meta = writeIndexDir(o.out, built, o.model);
  if (o.json) printJsonLast({ out: o.out, items: meta.items, dim: meta.dim, ...config, recall_at_10: meta.recallAt10, recall_queries: meta.recallQueries, build_seconds: meta.buildSeconds, ann_ms: built.recall.annMs, exact_ms: built.recall.exactMs });
  else {
    const c = meta.config;
    const shape = isIvfConfig(c) ? `ivf, ${c.lists} lists` : `hnsw, M=${c.connectivity}`;
    process.stdout.write(`index of ${meta.items} items (dim ${meta.dim}, ${config.metric}, ${shape}) written to ${o.out} in ${meta.buildSeconds.toFixed(1)} s\n`);
    process.stdout.write(`recall@10 vs exact: ${meta.recallAt10.toFixed(4)} at ${breadthText(c)} over ${meta.recallQueries} user queries (${built.recall.annMs.toFixed(3)} ms/query ${isIvfConfig(c) ? 'ivf' : 'hnsw'}, ${built.recall.exactMs.toFixed(3)} ms/query exact)\n`);
    if (meta.recallAt10 < 0.95) process.stdout.write(isIvfConfig(c) ? `note: recall below 0.95: raise --nprobe (lists scanned per query)\n` : `note: recall below 0.95: raise --expansion-search (search breadth) or --connectivity\n`);
  }
}

export function registerIndexCommand(program: Command): void {
  const index = program.command('index').description('approximate nearest-neighbour index of the item embeddings');
  const build = index.command('build').description('build the HNSW (usearch) or IVF index of a model and report its recall@10 vs exact search');
  build.requiredOption('--model <dir>', 'a model directory written by train (the run folder or its model/ folder)').requiredOption('--out <dir>', 'output directory (items.usearch or items.ivf + index.json)');
  addIndexOptions(build)
    .option('--json', 'print the result as one JSON object on the last line of stdout')
    .action((opts) => indexBuildCommand(opts));
}
