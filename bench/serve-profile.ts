/**
 * Where the time of one POST /recommend goes, measured in-process (CPU cost, no load generator, so far less
 * sensitive to a shared machine than the HTTP bench): each stage of the request path timed on its own over
 * many known-user queries, then the whole handler, then the whole HTTP round trip through fastify's inject.
 *
 *   node --import tsx bench/serve-profile.ts [--bundle DIR] [--n 5000] [--ef 64] [--nprobe 4]
 *
 * DIR defaults to the HNSW bundle bench/serve.ts caches (scratch/serve-bench-1000000-64; its IVF bundle is
 * scratch/serve-bench-1000000-64-ivf, where --nprobe applies). Prints a table and writes
 * bench/results/serve-profile.json (serve-profile-ivf.json for an IVF bundle).
 */
import { mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { parseBody, recommendSchema } from '../src/serve/schemas.ts';
import { ModelHolder } from '../src/serve/model-holder.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { buildServer, defaultServerOptions } from '../src/serve/server.ts';
import { breadthText } from '../src/index/vector-index.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const ROOT = resolve(import.meta.dirname, '..');
const BUNDLE = arg('bundle', join(ROOT, 'scratch', 'serve-bench-1000000-64'));
const N = Number(arg('n', '5000'));
const EF = Number(arg('ef', '64'));
const NPROBE = process.argv.includes('--nprobe') ? Number(arg('nprobe', '4')) : undefined;

interface StageTime {
  /** Wall time per call, µs. */
  meanUs: number;
  p99Us: number;
  /** Process CPU time (user + system) per call, µs: what contention from other jobs inflates least. */
  cpuUs: number;
}

/** Mean µs per call of fn over `n` calls (after a warm-up), the p99 of single calls, and CPU µs per call. */
function time(n: number, fn: (i: number) => unknown): StageTime {
  for (let i = 0; i < Math.min(500, n); i++) fn(i);
  const each = new Float64Array(n);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    fn(i);
    each[i] = performance.now() - s;
  }
  const total = performance.now() - t0;
  const c = process.cpuUsage(c0);
  each.sort();
  return { meanUs: (total / n) * 1000, p99Us: each[Math.floor(n * 0.99)] * 1000, cpuUs: (c.user + c.system) / n };
}

async function main(): Promise<void> {
  const backend = await getBackend();
  const t0 = performance.now();
  const bundle = await readBundle(BUNDLE, { expansionSearch: EF, nprobe: NPROBE });
  const ivf = bundle.index?.config.kind === 'ivf';
  const breadth = bundle.index ? breadthText(bundle.index.config) : 'no index';
  process.stderr.write(`bundle read in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  const rec = new Recommender(bundle, backend, 'ann');
  const users = bundle.manifest.model.users;
  const dim = bundle.manifest.model.dim;
  const user = (i: number) => `u${(i * 7919) % users}`;
  const bodies = Array.from({ length: N }, (_, i) => ({ user: user(i), k: 10, search: 'ann' }));
  const schema = recommendSchema(1000);
  const parsed = bodies.map((b) => parseBody(schema, b));
  const q = new Float32Array(dim);
  const qs = new Float32Array(N * dim);
  for (let i = 0; i < N; i++) rec.tower.embedUser(backend, bundle.userIndex.get(user(i))!, qs.subarray(i * dim, (i + 1) * dim));
  const fetch = 10 + 20 + 16;
  const results = parsed.map((b) => rec.recommend(b));
  const stages: Record<string, StageTime> = {
    'schema validation (zod)': time(N, (i) => parseBody(schema, bodies[i])),
    'user id lookup': time(N, (i) => bundle.userIndex.get(user(i))),
    'user tower forward': time(N, (i) => rec.tower.embedUser(backend, bundle.userIndex.get(user(i))!, q)),
    'seen set (20 items)': time(N, (i) => {
      const u = bundle.userIndex.get(user(i))!;
      const s = new Set<number>();
      for (let j = bundle.seen.offsets[u]; j < bundle.seen.offsets[u + 1]; j++) s.add(bundle.seen.cols[j]);
      return s;
    }),
    [`${ivf ? 'ivf' : 'hnsw'} search (${breadth}, k ${fetch})`]: time(N, (i) => bundle.index!.search(qs.subarray(i * dim, (i + 1) * dim), fetch)),
    'whole recommend() (ann)': time(N, (i) => rec.recommend(parsed[i])),
    'JSON.stringify(result)': time(N, (i) => JSON.stringify(results[i])),
    'whole recommend() (exact)': time(Math.min(N, 200), (i) => rec.recommend({ ...parsed[i], search: 'exact' })),
  };

  // The whole HTTP path minus the socket: fastify routing, body parse, hooks, serialisation.
  const holder = new ModelHolder(BUNDLE, backend, 'ann', () => {}, () => {}, EF);
  (holder as any).cur = rec;
  const app = buildServer(holder, new ServerMetrics(), defaultServerOptions);
  await app.ready();
  const payloads = bodies.map((b) => JSON.stringify(b));
  const injectN = Math.min(N, 3000);
  for (let i = 0; i < 300; i++) await app.inject({ method: 'POST', url: '/recommend', headers: { 'content-type': 'application/json' }, payload: payloads[i] });
  const ti = performance.now();
  const ci = process.cpuUsage();
  for (let i = 0; i < injectN; i++) {
    const r = await app.inject({ method: 'POST', url: '/recommend', headers: { 'content-type': 'application/json' }, payload: payloads[i] });
    if (r.statusCode !== 200) throw new Error(`inject: ${r.statusCode} ${r.body}`);
  }
  const cinj = process.cpuUsage(ci);
  stages['fastify inject round trip (whole route)'] = { meanUs: ((performance.now() - ti) / injectN) * 1000, p99Us: NaN, cpuUs: (cinj.user + cinj.system) / injectN };
  await app.close();

  const out = {
    date: new Date().toISOString(),
    note: 'in-process CPU cost per request stage; timings on a shared 2-core machine (load average recorded)',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverage: loadavg() },
    backend: backend.name,
    bundle: { items: bundle.manifest.model.items, users, dim, index: bundle.index?.config ?? null },
    n: N,
    stages,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeResultJson(join(ROOT, 'bench', 'results', ivf ? 'serve-profile-ivf.json' : 'serve-profile.json'), out);
  console.log(`per-request stages, ${bundle.manifest.model.items} items, ${breadth}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  for (const [k, v] of Object.entries(stages)) console.log(`${k.padEnd(42)} ${v.meanUs.toFixed(1).padStart(8)} µs wall, ${v.cpuUs.toFixed(1).padStart(8)} µs CPU  (p99 ${Number.isNaN(v.p99Us) ? '-' : v.p99Us.toFixed(1)} µs)`);
  process.exit(0);
}

await main();
