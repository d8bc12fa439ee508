/**
 * `towerlab serve` runs its server in a child Node process started with a larger young generation
 * (`--max-semi-space-size=64`, MiB per semi-space; V8's default on 64-bit is 16). V8 sizes the young
 * generation only when a process starts, so the CLI cannot change it for the process it is already in.
 *
 * Why: under load every request leaves about 13 KB of short-lived objects, most of them Node's and fastify's
 * own HTTP objects. With 16 MiB semi-spaces a scavenge then runs about every 1,200 requests and holds up every
 * request in flight; at 16 concurrent clients that is more than 1 % of the requests, so the scavenge pauses set
 * the p99. With 64 MiB they run a quarter as often (the young generation may then use up to 3 × 64 MiB more
 * memory, next to a bundle of hundreds of MiB). docs/serving-benchmarks.md has the measurements.
 *
 * This process only relays: SIGTERM, SIGINT and SIGHUP go to the child, and the child's exit (code, or the
 * signal that ended it) becomes this process's own; stdin, stdout and stderr are shared. The child stays in this
 * process's group and session (the same scheduling group, too), so a Ctrl-C or a supervisor that signals the
 * whole group reaches it twice: the server ignores a repeated SIGTERM / SIGINT while closing. It leaves when
 * this process disappears (their IPC channel closes). Not done when the flag is already given
 * (`node --max-semi-space-size=N`, or in NODE_OPTIONS), with TOWERLAB_SERVE_RELAUNCH=0, or on Windows.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

const FLAG = '--max-semi-space-size=64';
const RELAYED = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** In the parent: starts the child and resolves true (the CLI must not run here); false: run in this process. */
export function relaunchServe() {
  if (process.argv[2] !== 'serve' || process.platform === 'win32' || process.env.TOWERLAB_SERVE_RELAUNCH === '0') return false;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
  if (given) return false;
  let child;
  try {
    child = spawn(process.execPath, [...process.execArgv, FLAG, process.argv[1], ...process.argv.slice(2)], {
      stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, TOWERLAB_SERVE_RELAUNCH: '0', TOWERLAB_SERVE_RELAUNCHED: '1' },
    });
  } catch {
    return false;
  }
  const relay = (sig) => child.kill(sig);
  for (const sig of RELAYED) process.on(sig, relay);
  child.on('exit', (code, signal) => {
    for (const sig of RELAYED) process.off(sig, relay);
    if (!signal) process.exit(code ?? 1);
    // Ended by a signal: end the same way. Where the signal is ignored (as PID 1 in a container), exit 128 + n.
    process.exitCode = 128 + (constants.signals[signal] ?? 0);
    process.kill(process.pid, signal);
  });
  return true;
}

/** In the child: close gracefully (as on SIGTERM) when the parent is gone. */
export function followParent() {
  if (process.env.TOWERLAB_SERVE_RELAUNCHED !== '1' || !process.channel) return;
  delete process.env.TOWERLAB_SERVE_RELAUNCHED;
  process.channel.unref();
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
