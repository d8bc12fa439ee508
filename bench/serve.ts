/**
 * Serving under load: a synthetic catalogue (1M items by default, 64-dim, clustered like real item
 * embeddings) exported as a bundle with an HNSW index and as one with an IVF-Flat index, served by
 * `towerlab serve` in its own process, and hit on loopback with autocannon at 1, 16 and 100 concurrent
 * clients for a bounded time, with HNSW, IVF and exact search. Reports requests/s, p50/p99 latency, the
 * index recall@10 against exact search (through the API), and the server's memory. Writes
 * bench/results/serve.json and prints a table.
 *
 *   npm run bench:serve [-- --items 1000000 --users 20000 --dim 64 --duration 10 --connections 1,16,100
 *                          --index hnsw,ivf --ef 64,256 --lists 2000 --nprobe 2,4 --out serve.json]
 *
 * Index rows are measured once per search breadth (HNSW ef, `serve --expansion-search`; IVF lists scanned,
 * `serve --nprobe`): recall against latency.
 *
 * The bundles are cached in scratch/serve-bench-<items>-<dim>/ (HNSW) and scratch/serve-bench-<items>-<dim>-ivf
 * (gitignored; building the HNSW index over 1M items takes minutes on 2 cores) and reused while their
 * parameters (items, users, dim, clusters, index settings) match; otherwise they are rebuilt.
 *
 * Each row also records the load average when it started and the server's CPU time per request (user +
 * system, from /proc): the service time, which a shared machine disturbs far less than latency. A last row
 * measures a hot reload of the whole bundle under 16 clients (POST /admin/reload mid-run): errors and the
 * latency spike it causes.
 *
 * The serving peer (`--peer fastapi`, the default whenever IVF is measured): the service a Python team would
 * write, bench/peer/serve_peer.py — FastAPI + uvicorn (uvloop, httptools) + faiss IVF-Flat over the same item
 * embeddings and user vectors (written from the IVF bundle as raw float32 files into
 * scratch/serve-bench-<items>-<dim>-peer/), with the same lists and nprobe, the same request body and seen-item
 * exclusion, the same load generator and durations, on the same machine in the same run. Its stack comes from
 * Debian (bench/peer/install-serve-peer.sh, run first; needs apt) and runs on /usr/bin/python3. Recall@10 of
 * both is measured against the same exact answers (Towerlab's exact search, seen items excluded). `--peer none`
 * skips it.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import type { EventEmitter } from 'node:events';
import autocannon from 'autocannon';
import { getBackend } from '../src/compute/index.ts';
import { createBundle, writeBundle } from '../src/bundle/write.ts';
import { readBundle } from '../src/bundle/read.ts';
import { Recommender } from '../src/serve/recommender.ts';
import { writeFileAtomic } from '../src/util/atomic.ts';
import type { ModelArtifacts } from '../src/model/saved-model.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { Rng } from '../src/util/rng.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const ITEMS = Number(arg('items', '1000000'));
/** A fresh bearer token for the servers this bench starts (their /admin/reload is the reload row's trigger). */
const ADMIN_TOKEN = randomBytes(24).toString('hex');
const USERS = Number(arg('users', '20000'));
const DIM = Number(arg('dim', '64'));
const DURATION = Number(arg('duration', '10'));
const CONNECTIONS = arg('connections', '1,16,100').split(',').map(Number);
const EFS = arg('ef', '64,256').split(',').map(Number);
const KINDS = arg('index', 'hnsw,ivf').split(',');
const LISTS = Number(arg('lists', '2000'));
const NPROBES = arg('nprobe', '2,4').split(',').map(Number);
/** Server processes (towerlab serve --workers); server CPU per request and memory cover all of a server's processes. */
const WORKERS = Number(arg('workers', '1'));
/** Results file under bench/results/. */
const OUT = arg('out', 'serve.json');
/** The serving peer: 'fastapi' (FastAPI + uvicorn + faiss IVF, needs the IVF bundle) or 'none'. */
const PEER = arg('peer', KINDS.includes('ivf') ? 'fastapi' : 'none');
const PYTHON = '/usr/bin/python3';
const CLUSTERS = Math.max(10, Math.round(ITEMS / 1000));
const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'towerlab.mjs');
const log = (m: string) => process.stderr.write(`${m}\n`);

/** Id-only towers (no MLP): embeddings = normalised rows drawn around cluster centres, users likewise. */
function syntheticArtifacts(): ModelArtifacts {
  const rng = new Rng(7);
  const model = new TwoTowerModel({
    user: { vocabSize: USERS, idDim: DIM, features: [], mlp: [] },
    item: { vocabSize: ITEMS, idDim: DIM, features: [], mlp: [] },
    sparseOptimizer: 'adagrad',
    sparseLr: 0.01,
    denseLr: 0.001,
    seed: 7,
  });
  const centres = Float32Array.from({ length: CLUSTERS * DIM }, () => rng.normal());
  const fill = (t: Float32Array, rows: number, noise: number) => {
    for (let r = 0; r < rows; r++) {
      const c = rng.int(CLUSTERS);
      for (let j = 0; j < DIM; j++) t[r * DIM + j] = centres[c * DIM + j] + noise * rng.normal();
    }
  };
  fill(model.item.idTable.data, ITEMS, 0.7);
  fill(model.user.idTable.data, USERS, 0.9);
  // Zipf-like popularity and 20 seen items per user (excluded at query time, as in production).
  const itemCounts = Float32Array.from({ length: ITEMS }, (_, j) => Math.floor(1e6 / (j + 1)));
  const offsets = Int32Array.from({ length: USERS + 1 }, (_, u) => u * 20);
  const cols = Int32Array.from({ length: USERS * 20 }, () => rng.int(ITEMS));
  return {
    model,
    userIds: Array.from({ length: USERS }, (_, u) => `u${u}`),
    itemIds: Array.from({ length: ITEMS }, (_, j) => `i${j}`),
    userFeatures: [],
    itemFeatures: [],
    itemCounts,
    seen: { rows: USERS, offsets, cols },
    meta: { created: new Date().toISOString(), recipe: { name: 'synthetic-bench' } },
  };
}

const SOURCE = `synthetic:items=${ITEMS},users=${USERS},dim=${DIM},clusters=${CLUSTERS}`;
const INDEX = { metric: 'ip', connectivity: 16, expansionAdd: 64, expansionSearch: 64 } as const;
const IVF_INDEX = { kind: 'ivf', metric: 'ip', lists: LISTS, nprobe: NPROBES[0] } as const;

async function ensureBundle(dir: string, index: typeof INDEX | typeof IVF_INDEX): Promise<void> {
  if (existsSync(join(dir, 'manifest.json'))) {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const same = m.source?.model === SOURCE && m.index && Object.entries(index).every(([k, v]) => k === 'nprobe' || m.index[k] === v);
    if (same) {
      log(`using the cached bundle ${dir}`);
      return;
    }
    log(`the cached bundle ${dir} was made with other parameters: rebuilding it`);
  }
  const backend = await getBackend();
  log(`building a ${ITEMS}-item synthetic bundle in ${dir} (cached for later runs)`);
  const draft = createBundle(backend, syntheticArtifacts(), {
    index: { ...index },
    recallQueries: 500,
    source: SOURCE,
    log,
  });
  writeBundle(dir, draft);
}

interface Server {
  url: string;
  pid: number;
  stop(): Promise<number | null>;
}

/** Echoes a started server's stderr, resolves once it prints its URL, and hands back how to stop it. */
async function attach(p: ChildProcessByStdio<null, Readable, Readable>, label: string): Promise<Server> {
  p.stderr.on('data', (d) => process.stderr.write(`  [${label}] ${d}`));
  const exited = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  const url = await new Promise<string>((res, rej) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) res(m[1]);
    });
    p.on('exit', (c) => rej(new Error(`${label} exited with ${c}`)));
  });
  return {
    url,
    pid: p.pid!,
    stop: () => {
      p.kill('SIGTERM');
      return exited;
    },
  };
}

async function startServer(bundle: string, breadth: string[]): Promise<Server> {
  const p = spawn(process.execPath, [BIN, 'serve', '--model', bundle, '--host', '127.0.0.1', '--port', '0', ...breadth], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // /admin/* exists only behind a token (docs/security.md); the reload row needs it.
    env: { ...process.env, TOWERLAB_ADMIN_TOKEN: ADMIN_TOKEN },
  });
  return attach(p, 'server');
}

/**
 * A started server's processes: the one the bench spawned and its descendants (`towerlab serve` relays to a
 * child started with a larger V8 young generation, bin/serve-relaunch.mjs; `--workers` adds workers).
 */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const t of readdirSync(`/proc/${out[i]}/task`)) {
        for (const c of readFileSync(`/proc/${out[i]}/task/${t}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Resident memory of a server's processes together (now, and the sum of each one's peak). */
function memory(pid: number): { rssMiB: number; peakMiB: number } {
  let rss = 0;
  let peak = 0;
  for (const p of processTree(pid)) {
    try {
      const s = readFileSync(`/proc/${p}/status`, 'utf8');
      const kb = (k: string) => Number(s.match(new RegExp(`${k}:\\s+(\\d+)`))?.[1] ?? 0);
      rss += kb('VmRSS') / 1024;
      peak += kb('VmHWM') / 1024;
    } catch {
      // gone meanwhile
    }
  }
  return { rssMiB: rss, peakMiB: peak };
}

async function post(url: string, body: unknown): Promise<any> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

/** Recall@10 of the served index answers against the served exact answers, over sample users. */
async function apiRecall(url: string, n: number): Promise<number> {
  const rng = new Rng(11);
  let hit = 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const user = `u${rng.int(USERS)}`;
    const [a, e] = await Promise.all([post(`${url}/recommend`, { user, k: 10, search: 'ann' }), post(`${url}/recommend`, { user, k: 10, search: 'exact' })]);
    const want = new Set(e.items.map((x: any) => x.item));
    hit += a.items.filter((x: any) => want.has(x.item)).length;
    total += want.size;
  }
  return hit / total;
}

/** CPU seconds (user + system) a server's processes (processTree) have used so far. */
function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime in clock ticks (USER_HZ = 100)
    } catch {
      // gone meanwhile
    }
  }
  return ticks / 100;
}

interface Row {
  /** Which service answered: Towerlab, or the FastAPI + faiss peer. */
  server?: 'towerlab' | 'fastapi-faiss';
  search: 'ann' | 'exact';
  /** The index answering 'ann' rows; null for exact search. */
  index: 'hnsw' | 'ivf' | 'faiss-ivf' | null;
  /** IVF lists scanned per query; null otherwise. */
  nprobe: number | null;
  /** A hot reload of the bundle was triggered during this row. */
  reload?: { ms: number; status: number };
  /** HNSW search breadth; null for exact search. */
  ef: number | null;
  connections: number;
  requestsPerSec: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
  requests: number;
  errors: number;
  non2xx: number;
  /** 1-minute load average when the row started (other jobs on the machine). */
  loadAverage1m: number;
  /** Server CPU time per answered request, µs: its service time. */
  serverCpuUsPerRequest: number;
  /** CPU share of the load generator (this process) during the row, in cores. */
  loadGeneratorCores: number;
}

/** Percentile of sorted values (nearest rank). */
const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : NaN);

async function load(url: string, pid: number, search: 'ann' | 'exact', connections: number, duration: number, reloadAt?: number): Promise<Row> {
  let n = 0;
  const loadAverage1m = loadavg()[0];
  const cpu0 = cpuSeconds(pid);
  const self0 = process.cpuUsage();
  let reload: Row['reload'];
  const reloading = reloadAt === undefined ? null : new Promise<void>((res) => setTimeout(async () => {
    const t = performance.now();
    const r = await fetch(`${url}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await r.text();
    reload = { ms: performance.now() - t, status: r.status };
    res();
  }, reloadAt * 1000));
  const inst = (autocannon as unknown as (o: autocannon.Options) => Promise<autocannon.Result> & EventEmitter)({
    url,
    connections,
    duration,
    timeout: 60,
    requests: [
      {
        method: 'POST',
        path: '/recommend',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req: any) => ({ ...req, body: JSON.stringify({ user: `u${(n++ * 7919) % USERS}`, k: 10, search }) }),
      },
    ],
  });
  // autocannon's own histogram keeps whole milliseconds; keep every 2xx latency at full resolution instead.
  const lat: number[] = [];
  inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => status >= 200 && status < 300 && lat.push(ms));
  const r = await inst;
  await reloading;
  const cpu = cpuSeconds(pid) - cpu0;
  const self = process.cpuUsage(self0);
  lat.sort((a, b) => a - b);
  return {
    ...(reload ? { reload } : {}),
    search,
    index: null,
    ef: null,
    nprobe: null,
    connections,
    requestsPerSec: r.requests.total / duration,
    p50ms: pct(lat, 50),
    p99ms: pct(lat, 99),
    maxMs: lat[lat.length - 1] ?? NaN,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    loadAverage1m,
    serverCpuUsPerRequest: r.requests.total ? (cpu / r.requests.total) * 1e6 : NaN,
    loadGeneratorCores: (self.user + self.system) / 1e6 / duration,
  };
}

/** The peer's inputs from the IVF bundle: item embeddings, every user's query vector, seen lists (cached). */
async function writePeerData(bundleDir: string, dir: string): Promise<void> {
  const metaPath = join(dir, 'meta.json');
  const want = { items: ITEMS, users: USERS, dim: DIM, source: SOURCE };
  if (existsSync(metaPath) && JSON.stringify(JSON.parse(readFileSync(metaPath, 'utf8'))) === JSON.stringify(want)) return;
  log(`writing the peer's inputs (item embeddings, user vectors, seen lists) to ${dir}`);
  const backend = await getBackend();
  const b = await readBundle(bundleDir);
  const rec = new Recommender(b, backend, 'exact');
  const users = new Float32Array(USERS * DIM);
  for (let u = 0; u < USERS; u++) rec.tower.embedUser(backend, u, users.subarray(u * DIM, (u + 1) * DIM));
  mkdirSync(dir, { recursive: true });
  const bytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  writeFileAtomic(join(dir, 'items.f32'), bytes(b.itemEmb));
  writeFileAtomic(join(dir, 'users.f32'), bytes(users));
  writeFileAtomic(join(dir, 'seen.offsets.i32'), bytes(b.seen.offsets));
  writeFileAtomic(join(dir, 'seen.cols.i32'), bytes(b.seen.cols));
  writeFileAtomic(metaPath, JSON.stringify(want));
}

/** Starts bench/peer/serve_peer.py; resolves once it prints its URL. */
async function startPeer(dataDir: string, nprobe: number): Promise<Server> {
  const script = join(ROOT, 'bench', 'peer', 'serve_peer.py');
  const p = spawn(PYTHON, [script, '--data', dataDir, '--nlist', String(LISTS), '--nprobe', String(nprobe), '--port', '0', '--index-cache', join(dataDir, `faiss-ivf${LISTS}.index`)], { stdio: ['ignore', 'pipe', 'pipe'] });
  return attach(p, 'peer');
}

/** Exact top-10 (seen items excluded) of sample users, from the bundle in this process: the recall truth. */
async function exactTruth(bundleDir: string, n: number): Promise<Array<{ user: string; items: Set<string> }>> {
  const backend = await getBackend();
  const rec = new Recommender(await readBundle(bundleDir), backend, 'exact');
  const rng = new Rng(11);
  return Array.from({ length: n }, () => {
    const user = `u${rng.int(USERS)}`;
    return { user, items: new Set(rec.recommend({ user, k: 10, excludeSeen: true, search: 'exact' } as any).items.map((x) => x.item)) };
  });
}

async function recallAgainst(url: string, truth: Array<{ user: string; items: Set<string> }>): Promise<number> {
  let hit = 0;
  let total = 0;
  for (const t of truth) {
    const a = await post(`${url}/recommend`, { user: t.user, k: 10, search: 'ann' });
    hit += a.items.filter((x: any) => t.items.has(x.item)).length;
    total += t.items.size;
  }
  return hit / total;
}

async function main(): Promise<void> {
  const hnswBundle = join(ROOT, 'scratch', `serve-bench-${ITEMS}-${DIM}`);
  const ivfBundle = join(ROOT, 'scratch', `serve-bench-${ITEMS}-${DIM}-ivf`);
  if (KINDS.includes('hnsw')) await ensureBundle(hnswBundle, INDEX);
  if (KINDS.includes('ivf')) await ensureBundle(ivfBundle, IVF_INDEX);
  const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const manifest = manifestOf(KINDS.includes('hnsw') ? hnswBundle : ivfBundle);
  const ivfManifest = KINDS.includes('ivf') ? manifestOf(ivfBundle) : null;
  const rows: Row[] = [];
  const recall: Record<string, number> = {};
  const servers: Array<{ index: 'hnsw' | 'ivf'; ef: number | null; nprobe: number | null; startSeconds: number; afterLoad: ReturnType<typeof memory>; afterRuns: ReturnType<typeof memory>; exitCode: number | null }> = [];
  // One server per index and search breadth; exact rows on the last server, the reload row on the first.
  const configs = [
    ...(KINDS.includes('hnsw') ? EFS.map((ef) => ({ index: 'hnsw' as const, ef, nprobe: null, bundle: hnswBundle, flags: ['--expansion-search', String(ef)], name: `hnsw ef ${ef}`, key: `hnsw-ef${ef}` })) : []),
    ...(KINDS.includes('ivf') ? NPROBES.map((np) => ({ index: 'ivf' as const, ef: null, nprobe: np, bundle: ivfBundle, flags: ['--nprobe', String(np)], name: `ivf nprobe ${np}`, key: `ivf-nprobe${np}` })) : []),
  ];
  for (const [i, cfg] of configs.entries()) {
    const t0 = performance.now();
    const server = await startServer(cfg.bundle, WORKERS > 1 ? [...cfg.flags, '--workers', String(WORKERS)] : cfg.flags);
    const startSeconds = (performance.now() - t0) / 1000;
    const afterLoad = memory(server.pid);
    log(`server (${cfg.name}) up in ${startSeconds.toFixed(1)} s at ${server.url}, RSS ${afterLoad.rssMiB.toFixed(0)} MiB`);
    try {
      recall[cfg.key] = await apiRecall(server.url, 200);
      log(`recall@10 of /recommend with ${cfg.name} vs exact, 200 users: ${recall[cfg.key].toFixed(4)}`);
      const modes = i === configs.length - 1 ? (['ann', 'exact'] as const) : (['ann'] as const);
      for (const search of modes) {
        await load(server.url, server.pid, search, 4, 2); // warm-up
        for (const c of CONNECTIONS) {
          log(`${search === 'ann' ? cfg.name : 'exact'}: ${c} connection(s) for ${DURATION} s`);
          const r = await load(server.url, server.pid, search, c, DURATION);
          rows.push(search === 'ann' ? { ...r, index: cfg.index, ef: cfg.ef, nprobe: cfg.nprobe } : r);
        }
      }
      if (i === 0) {
        log(`hot reload of the whole bundle under 16 connections (${cfg.name}), ${DURATION} s`);
        rows.push({ ...(await load(server.url, server.pid, 'ann', 16, DURATION, DURATION / 4)), index: cfg.index, ef: cfg.ef, nprobe: cfg.nprobe });
      }
    } finally {
      const afterRuns = memory(server.pid);
      servers.push({ index: cfg.index, ef: cfg.ef, nprobe: cfg.nprobe, startSeconds, afterLoad, afterRuns, exitCode: await server.stop() });
    }
  }
  // The serving peer, same embeddings / lists / nprobe / request / load generator, after Towerlab's rows.
  const peer: { recallAt10: Record<string, number>; servers: typeof servers; data: string; stack: string | null } | null = PEER === 'fastapi' && KINDS.includes('ivf') ? { recallAt10: {}, servers: [], data: '', stack: null } : null;
  const towerlabVsTruth: Record<string, number> = {};
  if (peer) {
    const inst = spawnSync('bash', [join(ROOT, 'bench', 'peer', 'install-serve-peer.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (inst.status !== 0) throw new Error('bench/peer/install-serve-peer.sh failed: the peer needs apt (python3-fastapi, python3-uvicorn, python3-faiss)');
    peer.stack = spawnSync(PYTHON, ['-c', 'import fastapi, uvicorn, faiss, numpy, uvloop, httptools, sys; print(f"python {sys.version.split()[0]}, fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, faiss {faiss.__version__}, numpy {numpy.__version__}, uvloop {uvloop.__version__}")'], { encoding: 'utf8' }).stdout.trim();
    const dataDir = join(ROOT, 'scratch', `serve-bench-${ITEMS}-${DIM}-peer`);
    peer.data = dataDir.slice(ROOT.length + 1);
    await writePeerData(ivfBundle, dataDir);
    const truth = await exactTruth(ivfBundle, 200);
    // Towerlab's recall against the same truth, so both columns of the comparison share one reference.
    for (const np of NPROBES) {
      const sv = await startServer(ivfBundle, ['--nprobe', String(np)]);
      try {
        towerlabVsTruth[`ivf-nprobe${np}`] = await recallAgainst(sv.url, truth);
      } finally {
        await sv.stop();
      }
    }
    for (const np of NPROBES) {
      const t0 = performance.now();
      const server = await startPeer(dataDir, np);
      const startSeconds = (performance.now() - t0) / 1000;
      const afterLoad = memory(server.pid);
      log(`peer (FastAPI + faiss IVF, nprobe ${np}) up in ${startSeconds.toFixed(1)} s at ${server.url}, RSS ${afterLoad.rssMiB.toFixed(0)} MiB`);
      try {
        peer.recallAt10[`faiss-ivf-nprobe${np}`] = await recallAgainst(server.url, truth);
        log(`recall@10 of the peer's /recommend (nprobe ${np}) vs exact, 200 users: ${peer.recallAt10[`faiss-ivf-nprobe${np}`].toFixed(4)}`);
        await load(server.url, server.pid, 'ann', 4, 2); // warm-up
        for (const c of CONNECTIONS) {
          log(`peer nprobe ${np}: ${c} connection(s) for ${DURATION} s`);
          rows.push({ ...(await load(server.url, server.pid, 'ann', c, DURATION)), server: 'fastapi-faiss', index: 'faiss-ivf', nprobe: np });
        }
      } finally {
        const afterRuns = memory(server.pid);
        peer.servers.push({ index: 'ivf', ef: null, nprobe: np, startSeconds, afterLoad, afterRuns, exitCode: await server.stop() });
      }
    }
  }
  const comparison = peer
    ? NPROBES.flatMap((np) =>
        CONNECTIONS.map((c) => {
          const t = rows.find((r) => r.server !== 'fastapi-faiss' && r.index === 'ivf' && r.nprobe === np && r.connections === c && !r.reload)!;
          const p = rows.find((r) => r.server === 'fastapi-faiss' && r.nprobe === np && r.connections === c)!;
          return {
            nprobe: np,
            connections: c,
            towerlab: { requestsPerSec: t.requestsPerSec, p50ms: t.p50ms, p99ms: t.p99ms, recallAt10: towerlabVsTruth[`ivf-nprobe${np}`] },
            peer: { requestsPerSec: p.requestsPerSec, p50ms: p.p50ms, p99ms: p.p99ms, recallAt10: peer.recallAt10[`faiss-ivf-nprobe${np}`] },
            requestsPerSecRatio: t.requestsPerSec / p.requestsPerSec,
            p99Ratio: t.p99ms / p.p99ms,
          };
        }),
      )
    : null;
  const result = {
    date: new Date().toISOString(),
    note: 'Timings taken on a shared 2-core machine: the server, the load generator (autocannon, in the bench process) and other jobs compete for the same cores; see loadAverage1m per row. serverCpuUsPerRequest is the server process CPU time per request (its service time), far less sensitive to that contention than latency.',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadAverage: loadavg() },
    backend: (await getBackend()).name,
    items: ITEMS,
    users: USERS,
    dim: DIM,
    clusters: CLUSTERS,
    index: manifest.index,
    ivfIndex: ivfManifest?.index ?? null,
    bundleMiB: Object.values(manifest.files as Record<string, { bytes: number }>).reduce((s, f) => s + f.bytes, 0) / 2 ** 20,
    durationSeconds: DURATION,
    workers: WORKERS,
    request: { endpoint: 'POST /recommend', body: '{"user": <known user, round robin>, "k": 10, "search": "ann"|"exact"}', excludeSeen: '20 seen items per user' },
    recallAt10ApiVsExact: recall,
    servers,
    rows,
    peer: peer ? { service: 'bench/peer/serve_peer.py: FastAPI + uvicorn (uvloop, httptools, 1 worker) + faiss IndexIVFFlat (inner product, 1 OpenMP thread)', stack: peer.stack, lists: LISTS, data: peer.data, recallAt10VsExact: peer.recallAt10, towerlabRecallAt10VsSameExact: towerlabVsTruth, servers: peer.servers, comparison } : null,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeResultJson(join(ROOT, 'bench', 'results', OUT), result);
  const line = (c: string[]) => c.map((x, i) => (i < 3 ? x.padEnd(7) : x.padStart(10))).join(' ');
  console.log(`\nPOST /recommend, ${ITEMS} items × ${DIM} dims, k = 10, loopback, ${DURATION} s per row (${cpus().length} cores shared by server, load generator and anything else running; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
  console.log(line(['search', 'breadth', 'clients', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors', 'cpu µs/req', 'load']));
  for (const r of rows) console.log(line([r.search === 'ann' ? (r.reload ? `reload ${r.index}` : r.server === 'fastapi-faiss' ? 'peer' : r.index!) : 'exact', r.ef !== null ? `ef ${r.ef}` : r.nprobe !== null ? `np ${r.nprobe}` : '-', String(r.connections), r.requestsPerSec.toFixed(0), r.p50ms.toFixed(2), r.p99ms.toFixed(2), r.maxMs.toFixed(1), String(r.errors + r.non2xx), r.serverCpuUsPerRequest.toFixed(0), r.loadAverage1m.toFixed(1)]));
  for (const r of rows) if (r.reload) console.log(`hot reload under 16 clients: HTTP ${r.reload.status} after ${(r.reload.ms / 1000).toFixed(1)} s; ${r.errors + r.non2xx} failed requests, max latency ${r.maxMs.toFixed(0)} ms`);
  if (KINDS.includes('hnsw')) console.log(`hnsw recall@10 vs exact: ${manifest.index?.recallAt10.toFixed(4)} at build (ef ${manifest.index?.expansionSearch}, 500 users; built in ${manifest.index?.buildSeconds.toFixed(0)} s)`);
  if (ivfManifest) console.log(`ivf recall@10 vs exact: ${ivfManifest.index.recallAt10.toFixed(4)} at build (nprobe ${ivfManifest.index.nprobe} of ${ivfManifest.index.lists} lists, 500 users; built in ${ivfManifest.index.buildSeconds.toFixed(0)} s)`);
  console.log(`recall@10 through the API (200 users): ${Object.entries(recall).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ')}`);
  for (const sv of servers) console.log(`server (${sv.index} ${sv.ef !== null ? `ef ${sv.ef}` : `nprobe ${sv.nprobe}`}): up in ${sv.startSeconds.toFixed(1)} s, ${sv.afterLoad.rssMiB.toFixed(0)} MiB RSS after load, ${sv.afterRuns.rssMiB.toFixed(0)} MiB after the runs, peak ${sv.afterRuns.peakMiB.toFixed(0)} MiB; exit code ${sv.exitCode}`);
  console.log(`bundle: ${result.bundleMiB.toFixed(0)} MiB on disk`);
  if (comparison) {
    console.log(`\nTowerlab vs the FastAPI + uvicorn + faiss IVF peer (${LISTS} lists; ${peer!.stack})`);
    console.log('nprobe clients  Towerlab req/s  peer req/s  ratio  Towerlab p50/p99 ms  peer p50/p99 ms  recall@10 Towerlab/peer');
    for (const c of comparison) console.log(`${String(c.nprobe).padStart(6)} ${String(c.connections).padStart(7)}  ${c.towerlab.requestsPerSec.toFixed(0).padStart(14)} ${c.peer.requestsPerSec.toFixed(0).padStart(11)} ${c.requestsPerSecRatio.toFixed(2).padStart(6)}  ${`${c.towerlab.p50ms.toFixed(2)}/${c.towerlab.p99ms.toFixed(2)}`.padStart(19)} ${`${c.peer.p50ms.toFixed(2)}/${c.peer.p99ms.toFixed(2)}`.padStart(16)}  ${c.towerlab.recallAt10.toFixed(4)}/${c.peer.recallAt10.toFixed(4)}`);
  }
  console.log(`written to bench/results/${OUT}`);
}

await main();
