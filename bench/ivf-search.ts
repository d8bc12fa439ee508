/**
 * In-process search cost per query, IVF-Flat against HNSW, at matched recall: no HTTP and no load generator,
 * so a shared machine disturbs it far less than the serving bench. Uses the 1M-item bundle that
 * bench/serve.ts caches (its item embeddings, user tower and HNSW index), builds the IVF index over the same
 * items (cached next to it as items-<lists>.ivf), and for each search breadth reports mean/p99 µs per query
 * and recall@10 against exact search over user queries.
 *
 *   node --import tsx bench/ivf-search.ts [--bundle DIR] [--lists 2000] [--nprobe 4,8,16,32] [--ef 64,128,256] [--n 2000]
 *
 * Writes bench/results/ivf-search.json.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { AnnIndex } from '../src/index/ann-index.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { IvfIndex } from '../src/index/ivf-index.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const ROOT = resolve(import.meta.dirname, '..');
const BUNDLE = arg('bundle', join(ROOT, 'scratch', 'serve-bench-1000000-64'));
const LISTS = Number(arg('lists', '2000'));
const NPROBES = arg('nprobe', '4,8,16,32').split(',').map(Number);
const EFS = arg('ef', '64,128,256').split(',').map(Number);
const N = Number(arg('n', '2000'));
const K = 10;
/** What /recommend fetches for k = 10 with 20 seen items (k + seen + 16). */
const FETCH = 46;

interface Row {
  index: string;
  breadth: number;
  recallAt10: number;
  meanUs: number;
  p99Us: number;
  /** The same, fetching FETCH candidates as /recommend does. */
  fetchMeanUs: number;
}

function timeQueries(n: number, fn: (i: number) => unknown): { meanUs: number; p99Us: number } {
  for (let i = 0; i < Math.min(200, n); i++) fn(i);
  const each = new Float64Array(n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    fn(i);
    each[i] = performance.now() - s;
  }
  const total = performance.now() - t0;
  each.sort();
  return { meanUs: (total / n) * 1000, p99Us: each[Math.floor(n * 0.99)] * 1000 };
}

async function main(): Promise<void> {
  const backend = await getBackend();
  const bundle = await readBundle(BUNDLE);
  const { items, dim, users } = bundle.manifest.model;
  const rec = new Recommender(bundle, backend, 'exact');
  const qs = new Float32Array(N * dim);
  for (let i = 0; i < N; i++) rec.tower.embedUser(backend, (i * 7919) % users, qs.subarray(i * dim, (i + 1) * dim));
  const q = (i: number) => qs.subarray(i * dim, (i + 1) * dim);
  const exact = new ExactSearcher(backend, bundle.itemEmb, items, dim);
  const truth = Array.from({ length: N }, (_, i) => new Set(exact.search(q(i), K).ids));
  const recall = (search: (q: Float32Array, k: number) => { ids: Int32Array }) => {
    let hit = 0;
    for (let i = 0; i < N; i++) for (const id of search(q(i), K).ids) if (truth[i].has(id)) hit++;
    return hit / (N * K);
  };

  const cache = join(BUNDLE, `items-${LISTS}.ivf`);
  let ivf: IvfIndex;
  let buildSeconds: number | null = null;
  if (existsSync(cache)) ivf = IvfIndex.fromBytes(readFileSync(cache), cache, { dim, items });
  else {
    const t0 = performance.now();
    ivf = IvfIndex.build(backend, bundle.itemEmb, items, dim, { kind: 'ivf', metric: 'ip', lists: LISTS, nprobe: 16 }, { progress: (m) => process.stderr.write(`${m}\n`) });
    buildSeconds = (performance.now() - t0) / 1000;
    writeFileAtomic(cache, ivf.toBytes());
  }
  process.stderr.write(`ivf: ${ivf.lists} lists over ${items} items${buildSeconds === null ? ' (cached)' : ` built in ${buildSeconds.toFixed(1)} s`}; native ${ivf.isNative}\n`);

  const rows: Row[] = [];
  for (const np of NPROBES) {
    const ix = ivf.withNprobe(np);
    const t = timeQueries(N, (i) => ix.search(q(i), K));
    rows.push({ index: 'ivf', breadth: np, recallAt10: recall((v, k) => ix.search(v, k)), ...t, fetchMeanUs: timeQueries(N, (i) => ix.search(q(i), FETCH)).meanUs });
  }
  const hnswFile = join(BUNDLE, bundle.manifest.index!.file);
  for (const ef of EFS) {
    const h = AnnIndex.view(hnswFile, dim, { ...bundle.manifest.index!, expansionSearch: ef } as any, items);
    const t = timeQueries(N, (i) => h.search(q(i), K));
    rows.push({ index: 'hnsw', breadth: ef, recallAt10: recall((v, k) => h.search(v, k)), ...t, fetchMeanUs: timeQueries(N, (i) => h.search(q(i), FETCH)).meanUs });
  }
  const exactT = timeQueries(Math.min(N, 100), (i) => exact.search(q(i), K));

  const out = {
    date: new Date().toISOString(),
    note: 'In-process search time per query on one thread (no HTTP); timings on a shared 2-core machine with other jobs running (load average recorded).',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverage: loadavg() },
    bundle: { items, dim, users, hnsw: bundle.manifest.index },
    ivf: { lists: ivf.lists, buildSeconds, native: ivf.isNative, bytes: ivf.toBytes().length },
    queries: N,
    k: K,
    fetch: FETCH,
    exactMeanUs: exactT.meanUs,
    rows,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeResultJson(join(ROOT, 'bench', 'results', 'ivf-search.json'), out);
  console.log(`${items} items, dim ${dim}, ${N} user queries, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('index breadth  recall@10  mean µs  p99 µs  mean µs (k=46)');
  for (const r of rows) console.log(`${r.index.padEnd(5)} ${String(r.breadth).padStart(7)}  ${r.recallAt10.toFixed(4)}  ${r.meanUs.toFixed(1).padStart(8)} ${r.p99Us.toFixed(1).padStart(7)} ${r.fetchMeanUs.toFixed(1).padStart(8)}`);
  console.log(`exact: ${exactT.meanUs.toFixed(0)} µs/query`);
  process.exit(0);
}

await main();
