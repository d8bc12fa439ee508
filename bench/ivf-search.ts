/**
 * In-process search cost per query, IVF-Flat against HNSW and LanceDB (IVF-PQ), at matched recall: no HTTP
 * and no load generator, so a shared machine disturbs it far less than the serving bench. Uses the 1M-item
 * bundle that bench/serve.ts caches (its item embeddings, user tower and HNSW index; or the IVF bundle when the
 * HNSW one is absent), builds the IVF index over the same items (cached next to it as items-<lists>.ivf) and
 * the LanceDB table (cached as a sibling directory …-lance-<partitions>), and for each search breadth reports
 * mean/p99 µs per query and recall@10 against exact search over user queries, plus each index's build time and
 * size on disk.
 *
 *   node --import tsx bench/ivf-search.ts [--bundle DIR] [--lists 2000] [--nprobe 4,8,16,32] [--ef 64,128,256] [--n 2000]
 *       [--hnsw run|skip] [--lance-partitions 1000] [--lance-sub-vectors 16] [--lance-nprobe 10,20,40] [--refine 10] [--lance skip]
 *
 * `--hnsw skip` (automatic when the bundle has no HNSW index; building one over 1M items takes ~500 s on 2
 * cores) copies the HNSW rows of the previous results file instead, marked with the date they were measured.
 * LanceDB queries go through LanceIndex (a worker thread answering a blocking call, as the server uses it):
 * the µs include that hop.
 *
 * Writes bench/results/ivf-search.json.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { readBundle } from '../src/bundle/read.ts';
import { AnnIndex } from '../src/index/ann-index.ts';
import { ExactSearcher } from '../src/index/exact.ts';
import { IvfIndex } from '../src/index/ivf-index.ts';
import { defaultLanceConfig, LanceIndex, readLanceMeta, writeLanceDir } from '../src/index/lance-index.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const ROOT = resolve(import.meta.dirname, '..');
const HNSW_BUNDLE = join(ROOT, 'scratch', 'serve-bench-1000000-64');
const BUNDLE = arg('bundle', existsSync(HNSW_BUNDLE) ? HNSW_BUNDLE : `${HNSW_BUNDLE}-ivf`);
const LANCE = arg('lance', 'run');
const LANCE_PARTITIONS = Number(arg('lance-partitions', '1000'));
const LANCE_SUB = Number(arg('lance-sub-vectors', '16'));
const LANCE_NPROBES = arg('lance-nprobe', '10,20,40').split(',').map(Number);
const REFINE = Number(arg('refine', '10'));
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
  /** LanceDB: candidates re-ranked with the full vectors = refineFactor × k. */
  refineFactor?: number;
  /** Rows copied from an earlier run (HNSW skipped): when they were measured. */
  reusedFrom?: string;
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
  const resultsFile = join(ROOT, 'bench', 'results', 'ivf-search.json');
  const previous = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : null;
  const hasHnsw = bundle.manifest.index !== undefined && bundle.manifest.index !== null && bundle.manifest.index.kind !== 'ivf';
  let hnsw: { buildSeconds: number | null; bytes: number | null; reusedFrom?: string } = { buildSeconds: null, bytes: null };
  if (arg('hnsw', hasHnsw ? 'run' : 'skip') === 'run' && hasHnsw) {
    const hnswFile = join(BUNDLE, bundle.manifest.index!.file);
    hnsw = { buildSeconds: (bundle.manifest.index as any).buildSeconds ?? null, bytes: statSync(hnswFile).size };
    for (const ef of EFS) {
      const h = AnnIndex.view(hnswFile, dim, { ...bundle.manifest.index!, expansionSearch: ef } as any, items);
      const t = timeQueries(N, (i) => h.search(q(i), K));
      rows.push({ index: 'hnsw', breadth: ef, recallAt10: recall((v, k) => h.search(v, k)), ...t, fetchMeanUs: timeQueries(N, (i) => h.search(q(i), FETCH)).meanUs });
    }
  } else if (previous) {
    const from = previous.hnswReusedFrom ?? previous.date;
    hnsw = { buildSeconds: previous.bundle?.hnsw?.buildSeconds ?? previous.hnsw?.buildSeconds ?? null, bytes: previous.hnsw?.bytes ?? null, reusedFrom: from };
    for (const r of previous.rows as Row[]) if (r.index === 'hnsw') rows.push({ ...r, reusedFrom: r.reusedFrom ?? from });
    process.stderr.write(`hnsw: not measured in this run; rows copied from the run of ${from}\n`);
  }

  // LanceDB: the same items in a table with an IVF-PQ index (cached beside the bundle).
  let lance: { dir: string; partitions: number; subVectors: number; buildSeconds: number; bytes: number; cached: boolean } | null = null;
  if (LANCE !== 'skip') {
    const dir = `${BUNDLE}-lance-${LANCE_PARTITIONS}`;
    let cached = false;
    try {
      const m = readLanceMeta(dir);
      cached = m.items === items && m.config.partitions === LANCE_PARTITIONS && m.config.subVectors === LANCE_SUB && m.model === BUNDLE.slice(ROOT.length + 1);
    } catch {
      cached = false;
    }
    if (!cached) {
      process.stderr.write(`lancedb: writing ${items} items with an IVF-PQ index (${LANCE_PARTITIONS} partitions, ${LANCE_SUB} sub-vectors) to ${dir}\n`);
      const config = { ...defaultLanceConfig(items, dim), partitions: LANCE_PARTITIONS, subVectors: LANCE_SUB, refineFactor: REFINE };
      await writeLanceDir(dir, { itemIds: bundle.itemIds, vectors: bundle.itemEmb, dim, config, model: BUNDLE.slice(ROOT.length + 1), log: (m) => process.stderr.write(`${m}\n`) });
    }
    const base = LanceIndex.open(dir, { itemIds: bundle.itemIds, dim });
    lance = { dir: dir.slice(ROOT.length + 1), partitions: LANCE_PARTITIONS, subVectors: LANCE_SUB, buildSeconds: base.meta.buildSeconds, bytes: base.diskBytes(), cached };
    base.close();
    process.stderr.write(`lancedb: ${items} items${cached ? ' (cached)' : ''}, built in ${lance.buildSeconds.toFixed(1)} s, ${(lance.bytes / 2 ** 20).toFixed(0)} MiB on disk\n`);
    const n = Math.min(N, 500); // LanceDB queries cost milliseconds: fewer of them
    for (const np of LANCE_NPROBES) {
      const ix = LanceIndex.open(dir, { nprobe: np, refineFactor: REFINE });
      try {
        const t = timeQueries(n, (i) => ix.search(q(i), K));
        let hit = 0;
        for (let i = 0; i < n; i++) for (const id of ix.search(q(i), K).ids) if (truth[i].has(id)) hit++;
        rows.push({ index: 'lancedb', breadth: np, refineFactor: REFINE, recallAt10: hit / (n * K), ...t, fetchMeanUs: timeQueries(Math.min(n, 200), (i) => ix.search(q(i), FETCH)).meanUs });
      } finally {
        ix.close();
      }
    }
  }
  const exactT = timeQueries(Math.min(N, 100), (i) => exact.search(q(i), K));

  const out = {
    date: new Date().toISOString(),
    note: 'In-process search time per query on one thread (no HTTP); timings on a shared 2-core machine with other jobs running (load average recorded). LanceDB rows: through LanceIndex (a worker thread; the µs include the hop), over min(n, 500) queries.',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverage: loadavg() },
    bundle: { dir: BUNDLE.slice(ROOT.length + 1), items, dim, users, index: bundle.manifest.index },
    ivf: { lists: ivf.lists, buildSeconds, native: ivf.isNative, bytes: ivf.toBytes().length },
    hnsw,
    hnswReusedFrom: hnsw.reusedFrom ?? null,
    lancedb: lance,
    queries: N,
    k: K,
    fetch: FETCH,
    exactMeanUs: exactT.meanUs,
    rows,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeResultJson(resultsFile, out);
  console.log(`${items} items, dim ${dim}, ${N} user queries, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  console.log('index    breadth  recall@10  mean µs  p99 µs  mean µs (k=46)');
  for (const r of rows) console.log(`${r.index.padEnd(8)} ${String(r.breadth).padStart(7)}  ${r.recallAt10.toFixed(4)}  ${r.meanUs.toFixed(1).padStart(8)} ${r.p99Us.toFixed(1).padStart(7)} ${r.fetchMeanUs.toFixed(1).padStart(8)}${r.reusedFrom ? `  (from the run of ${r.reusedFrom})` : ''}`);
  console.log(`exact: ${exactT.meanUs.toFixed(0)} µs/query`);
  console.log(`build / disk: ivf ${buildSeconds === null ? 'cached' : `${buildSeconds.toFixed(1)} s`}, ${(ivf.toBytes().length / 2 ** 20).toFixed(0)} MiB; hnsw ${hnsw.buildSeconds?.toFixed(0) ?? '?'} s, ${hnsw.bytes === null ? '?' : (hnsw.bytes / 2 ** 20).toFixed(0)} MiB${hnsw.reusedFrom ? ` (${hnsw.reusedFrom})` : ''}; lancedb ${lance ? `${lance.buildSeconds.toFixed(1)} s, ${(lance.bytes / 2 ** 20).toFixed(0)} MiB (table with full vectors + IVF-PQ index)` : 'skipped'}`);
  process.exit(0);
}

await main();
