/**
 * Several server processes sharing one port (node:cluster), for machines with cores to spare: one event loop
 * handles HTTP for one core, so with N clients in flight the latency is about N × per-request CPU on one process
 * and N/W × that on W. The primary only supervises:
 *  - forks W workers (each loads the bundle itself, so memory is W × one server's), waits until all listen;
 *  - forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful close) to every worker, exits when they have;
 *  - a reload one worker performed for POST /admin/reload is broadcast to the others;
 *  - a worker that dies unexpectedly is replaced.
 * Each worker answers /metrics for itself (its `pid` is in /health): scrape them as separate targets, or sum.
 */
import cluster, { type Worker } from 'node:cluster';
import { UserError } from '../util/errors.ts';

export type WorkerMessage = { type: 'ready'; url: string } | { type: 'reloaded' };

/** Runs the supervising primary until every worker has closed. Resolves with the URL once all listen. */
export function runPrimary(count: number, log: (m: string) => void, onListening: (url: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let stopping = false;
    let started = false;
    const ready = new Set<number>();
    const alive = new Set<Worker>();
    const fork = () => {
      const w = cluster.fork();
      alive.add(w);
      w.on('message', (msg: WorkerMessage) => {
        if (msg?.type === 'ready') {
          ready.add(w.id);
          if (!started && ready.size === count) {
            started = true;
            onListening(msg.url);
          }
        } else if (msg?.type === 'reloaded') {
          for (const o of alive) if (o !== w) o.process.kill('SIGHUP');
        }
      });
      w.on('exit', (code, signal) => {
        alive.delete(w);
        if (stopping) {
          if (!alive.size) resolve();
          return;
        }
        if (!started) {
          stopping = true;
          for (const o of alive) o.process.kill('SIGTERM');
          reject(new UserError(`a server worker exited while starting (${signal ?? `code ${code}`}); its error is above`));
          return;
        }
        log(`worker ${w.process.pid} exited (${signal ?? `code ${code}`}): starting a replacement`);
        fork();
      });
    };
    for (let i = 0; i < count; i++) fork();
    const stop = (sig: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log(`${sig}: closing ${alive.size} workers`);
      for (const w of alive) w.process.kill('SIGTERM');
      if (!alive.size) resolve();
    };
    // Kept (not once): a repeated signal while stopping is ignored rather than killing the primary.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const w of alive) w.process.kill('SIGHUP');
    });
  });
}

/** In a worker: tell the primary (no-op in a single-process server). */
export function notifyPrimary(msg: WorkerMessage): void {
  if (cluster.isWorker && process.send) process.send(msg);
}

export const isServeWorker = (): boolean => cluster.isWorker;
