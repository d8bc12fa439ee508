/**
 * A running server: loads the model, listens, and handles the process side: SIGTERM/SIGINT close gracefully
 * (stop accepting, finish in-flight requests, then exit), SIGHUP and --watch reload the bundle in place.
 */
import { watchFile, unwatchFile } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { getBackend } from '../compute/index.ts';
import { BUNDLE_MANIFEST } from '../bundle/format.ts';
import { UserError } from '../util/errors.ts';
import { ServerMetrics } from './metrics.ts';
import { isServeWorker } from './workers.ts';
import { ModelHolder } from './model-holder.ts';
import type { SearchMode } from './recommender.ts';
import { buildServer, defaultServerOptions, type ServerOptions } from './server.ts';

export interface RunOptions extends ServerOptions {
  /** A bundle directory, or a model / run directory (bundled in memory at start). */
  source: string;
  host: string;
  port: number;
  search: SearchMode;
  /** Poll the bundle's manifest and reload when it changes. */
  watch: boolean;
  /** HNSW search breadth (ef) overriding the bundle's; undefined keeps the bundle's. */
  expansionSearch?: number;
  /** IVF lists scanned per query overriding the bundle's; undefined keeps the bundle's. */
  nprobe?: number;
  /** Serve only bundles signed with this key (export --sign-key), at start and at every reload. */
  verifyKey?: Buffer;
  /** Least time between two reloads asked for over HTTP (default 1000 ms); requests in between share one. */
  reloadMinIntervalMs?: number;
  /** A LanceDB directory (export --to lancedb:DIR) searched instead of the bundle's index. */
  lance?: { dir: string; refineFactor?: number };
  log: (msg: string) => void;
}

export interface RunningServer {
  app: FastifyInstance;
  holder: ModelHolder;
  url: string;
  /** Reloads in the background, logging the outcome (SIGHUP, --watch). */
  reload(why: string): void;
  close(): Promise<void>;
}

export async function startServer(o: Partial<RunOptions> & { source: string }): Promise<RunningServer> {
  const opts: RunOptions = { ...defaultServerOptions, host: '127.0.0.1', port: 8080, search: 'ann', watch: false, log: () => {}, ...o };
  const backend = await getBackend();
  const metrics = new ServerMetrics(isServeWorker() ? { worker: String(process.pid) } : {});
  const holder = new ModelHolder(opts.source, backend, opts.search, opts.log, (ok) => metrics.reloads.inc({ result: ok ? 'ok' : 'error' }), opts.expansionSearch, opts.nprobe, opts.lance, { verifyKey: opts.verifyKey, reloadMinIntervalMs: opts.reloadMinIntervalMs });
  await holder.reload();
  const app = buildServer(holder, metrics, opts);
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new UserError(`--port ${opts.port}: address ${opts.host}:${opts.port} already in use`);
    if (err.code === 'EACCES') throw new UserError(`--port ${opts.port}: permission denied`);
    throw new UserError(`cannot listen on ${opts.host}:${opts.port}: ${err.message}`);
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;

  const reload = (why: string) => {
    holder.reload().then(
      (r) => opts.log(`${why}: ${r.changed ? `now serving ${r.id} (was ${r.previous})` : `bundle unchanged (${r.id})`} in ${r.ms.toFixed(0)} ms`),
      (e) => opts.log(`${why}: bundle rejected, still serving ${holder.current?.id}: ${(e as Error).message}`),
    );
  };
  const manifest = join(opts.source, BUNDLE_MANIFEST);
  if (opts.watch) watchFile(manifest, { interval: 1000 }, (cur, prev) => cur.mtimeMs !== prev.mtimeMs && reload('bundle changed'));
  let closing: Promise<void> | null = null;
  const close = () => {
    if (!closing) {
      if (opts.watch) unwatchFile(manifest);
      closing = app.close();
    }
    return closing;
  };
  return { app, holder, url, close, reload };
}

/** Signal handling for the CLI: graceful close on SIGTERM/SIGINT (forced after `graceMs`), reload on SIGHUP. */
export function handleSignals(s: RunningServer, log: (m: string) => void, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (sig: string) => {
      // A second SIGTERM / SIGINT while closing changes nothing (a supervisor may signal every process of the
      // group, and `towerlab serve`'s relaying parent signals this one too: bin/serve-relaunch.mjs).
      if (stopping) return;
      stopping = true;
      log(`${sig}: closing (finishing in-flight requests)`);
      const force = setTimeout(() => {
        log(`still busy after ${graceMs} ms: exiting anyway`);
        resolve();
      }, graceMs);
      force.unref();
      s.close().then(() => {
        clearTimeout(force);
        log('closed');
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => s.reload('SIGHUP'));
  });
}
