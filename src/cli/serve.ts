/** `towerlab serve`: the HTTP API over a bundle (or a model directory, bundled in memory at start). */
import { Option, type Command } from 'commander';
import { UserError } from '../util/errors.ts';
import { readSecretFile, secretBytes } from '../util/secret.ts';
import { handleSignals, startServer } from '../serve/run.ts';
import { isServeWorker, notifyPrimary, runPrimary } from '../serve/workers.ts';
import { breadthText, indexKind } from '../index/vector-index.ts';
import { lanceTarget } from '../index/lance-index.ts';

export interface ServeCommandOptions {
  model: string;
  port: string;
  host: string;
  search: 'ann' | 'exact';
  maxK: string;
  expansionSearch?: string;
  nprobe?: string;
  index?: string;
  refineFactor?: string;
  demo?: boolean;
  watch?: boolean;
  /** File of the bearer token that enables /admin/* (or TOWERLAB_ADMIN_TOKEN). */
  adminToken?: string;
  /** File of the key bundles must be signed with. */
  verifyKey?: string;
  log?: boolean;
  workers: string;
}

export async function serveCommand(o: ServeCommandOptions): Promise<void> {
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port: must be an integer in 0..65535, got '${o.port}'`);
  const maxK = Number(o.maxK);
  if (!Number.isInteger(maxK) || maxK < 1) throw new UserError(`--max-k: must be a positive integer, got '${o.maxK}'`);
  let expansionSearch: number | undefined;
  if (o.expansionSearch !== undefined) {
    expansionSearch = Number(o.expansionSearch);
    if (!Number.isInteger(expansionSearch) || expansionSearch < 1) throw new UserError(`--expansion-search: must be a positive integer, got '${o.expansionSearch}'`);
  }
  let nprobe: number | undefined;
  if (o.nprobe !== undefined) {
    nprobe = Number(o.nprobe);
    if (!Number.isInteger(nprobe) || nprobe < 1) throw new UserError(`--nprobe: must be a positive integer, got '${o.nprobe}'`);
  }
  // Secrets are read before anything else, so a bad key file is a start-up error, not a later surprise.
  const verifyKey = o.verifyKey !== undefined ? readSecretFile(o.verifyKey, '--verify-key') : undefined;
  const adminToken = o.adminToken !== undefined ? readSecretFile(o.adminToken, '--admin-token') : process.env.TOWERLAB_ADMIN_TOKEN ? secretBytes(process.env.TOWERLAB_ADMIN_TOKEN, 'TOWERLAB_ADMIN_TOKEN') : null;
  let lance: { dir: string; refineFactor?: number } | undefined;
  if (o.index !== undefined) {
    const dir = lanceTarget(o.index);
    if (dir === null) throw new UserError(`--index: '${o.index}' is not an index this version serves from (expected lancedb:DIR)`);
    let refineFactor: number | undefined;
    if (o.refineFactor !== undefined) {
      refineFactor = Number(o.refineFactor);
      if (!Number.isInteger(refineFactor) || refineFactor < 0) throw new UserError(`--refine-factor: must be an integer >= 0, got '${o.refineFactor}'`);
    }
    lance = { dir, refineFactor };
  }
  const workers = Number(o.workers ?? 1);
  if (!Number.isInteger(workers) || workers < 1) throw new UserError(`--workers: must be a positive integer, got '${o.workers}'`);
  const worker = isServeWorker();
  const log = (m: string) => process.stderr.write(`towerlab serve${worker ? ` [${process.pid}]` : ''}: ${m}\n`);
  if (workers > 1 && !worker) {
    // The primary supervises; every worker runs this same command and serves.
    await runPrimary(workers, log, (url) => process.stdout.write(`listening on ${url} (${workers} workers)${o.demo ? ` (demo page: ${url}/)` : ''}\n`));
    return;
  }
  const s = await startServer({
    source: o.model,
    host: o.host,
    port,
    search: o.search === 'exact' ? 'exact' : 'ann',
    maxK,
    demo: !!o.demo,
    watch: !!o.watch,
    logger: !!o.log,
    adminToken,
    verifyKey,
    expansionSearch,
    nprobe,
    lance,
    log,
  });
  const m = s.holder.current!;
  const mf = m.bundle.manifest;
  if (lance) {
    const ix = m.bundle.index!;
    log(`model ${m.id}: ${mf.model.users} users, ${mf.model.items} items, dim ${mf.model.dim}, search ${m.defaultSearch === 'ann' ? `lancedb ${lance.dir} (${breadthText(ix.config)})` : 'exact'} instead of the bundle's index`);
  }
  // A breadth flag for the other index kind would silently do nothing: say so (a reload may bring the other kind).
  else if (nprobe !== undefined && mf.index?.kind !== 'ivf') log(`warning: --nprobe applies to IVF indexes; this bundle's is ${mf.index ? 'HNSW' : 'absent'}`);
  if (expansionSearch !== undefined && (!mf.index || mf.index.kind === 'ivf')) log(`warning: --expansion-search applies to HNSW indexes; this bundle's is ${mf.index ? 'IVF' : 'absent'}`);
  if (!lance) log(`model ${m.id}: ${mf.model.users} users, ${mf.model.items} items, dim ${mf.model.dim}, search ${mf.index ? (m.defaultSearch === 'ann' ? `${indexKind(m.bundle.index!.config)} (${breadthText(m.bundle.index!.config)}; recall@10 ${mf.index.recallAt10.toFixed(3)} at ${mf.index.kind === 'ivf' ? `nprobe ${mf.index.nprobe}` : `ef ${mf.index.expansionSearch}`})` : 'exact') : 'exact (bundle has no index)'}`);
  // The URL goes to stdout alone, so scripts and tests can read it (from the primary when there are workers).
  if (worker) notifyPrimary({ type: 'ready', url: s.url });
  else process.stdout.write(`listening on ${s.url}${o.demo ? ` (demo page: ${s.url}/)` : ''}\n`);
  await handleSignals(s, log);
  // A worker's IPC channel to the primary would keep it alive after its server has closed.
  if (worker) process.disconnect?.();
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('HTTP API: /recommend, /similar, /embed, /health, /metrics; hot reload; --demo serves a browser page')
    .requiredOption('--model <dir>', "a bundle written by 'towerlab export' (or a model directory, bundled in memory at start)")
    .option('--port <n>', 'TCP port (0 = any free port)', '8080')
    .option('--host <addr>', 'address to listen on', '127.0.0.1')
    .addOption(new Option('--search <how>', 'default retrieval: the HNSW index or exact search').choices(['ann', 'exact']).default('ann'))
    .option('--max-k <n>', 'largest k a request may ask for', '1000')
    .option('--expansion-search <n>', "HNSW search breadth (ef), overriding the bundle's: higher = better recall, slower")
    .option('--nprobe <n>', "IVF lists (or LanceDB partitions) scanned per query, overriding the stored setting: higher = better recall, slower")
    .option('--index <target>', "search a LanceDB item table written by 'export --to lancedb:DIR' instead of the bundle's index: lancedb:DIR")
    .option('--refine-factor <n>', 'LanceDB: re-rank refine×k candidates with the full vectors, overriding the stored setting')
    .option('--demo', 'also serve the demo page at / (TF.js query tower in the browser)')
    .option('--watch', "reload when the bundle's manifest changes")
    .option('--admin-token <file>', 'enable POST /admin/reload and GET /admin/status behind this bearer token (or set TOWERLAB_ADMIN_TOKEN); without it there are no admin routes (SIGHUP still reloads)')
    .option('--verify-key <file>', "serve only bundles signed with this key ('towerlab export --sign-key'), at start and on every reload")
    .option('--log', 'log every request (JSON lines on stdout)')
    .option('--workers <n>', 'server processes sharing the port (each loads the bundle: memory × n)', '1')
    .action((opts) => serveCommand(opts));
}
