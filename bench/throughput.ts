/**
 * Training throughput of the id-only two-tower model sized like MovieLens-1M (6040 users × 3706 items,
 * dim 64, MLP 64→128→64, τ = 0.05, in-batch softmax with accidental-hit masking, lazy Adam on the tables,
 * Adam on the MLPs) at several batch sizes, against the same model in PyTorch measured in the same run
 * (../shared/peer/run.sh; it installs Debian's python3-torch if missing). Also times one full-corpus
 * evaluation (6040 users × 3706 items). Writes bench/results/throughput.json and prints a table.
 *
 *   npm run bench:throughput [-- --batch 256,1024,4096 --backend native|js --no-peer --threads 2]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getBackend, type BackendChoice } from '../src/compute/index.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { evaluateRanking } from '../src/eval/ranking.ts';
import { embeddingScorer } from '../src/eval/scorer.ts';
import { buildModel } from '../src/model/build.ts';
import { parseRecipe } from '../src/recipe/schema.ts';
import { buildSources } from '../src/sampling/build.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';
import { writeResultJson } from './result-paths.ts';

const USERS = 6040;
const ITEMS = 3706;

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const batches = arg('batch', '256,1024,4096').split(',').map(Number);
const backendChoice = arg('backend', 'auto') as BackendChoice;
const withPeer = !process.argv.includes('--no-peer');
const threads = arg('threads', '2');
process.env.TOWERLAB_THREADS ??= threads;

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

async function measureTowerlab(B: number) {
  const backend = await getBackend(backendChoice);
  const model = buildModel(
    { dim: 64, mlp: [128, 64], featureDim: 16, useFeatures: false, sparseOptimizer: 'lazyadam', sparseLr: 1e-3, denseLr: 1e-3, seed: 1 },
    USERS,
    ITEMS,
    [],
    [],
  );
  const recipe = parseRecipe({ temperature: 0.05, corrections: { maskSameItem: true, maskSameUser: true, logQ: false } });
  const step = new TrainStep(backend, model, recipe, buildSources(recipe, { numItems: ITEMS, trainItems: new Int32Array(0), dim: 64 }));
  // Like the peer: a pool of 16 pre-generated uniform batches, so id generation is not timed.
  const rng = new Rng(5);
  const pool = Array.from({ length: 16 }, () => ({
    u: Int32Array.from({ length: B }, () => rng.int(USERS)),
    i: Int32Array.from({ length: B }, () => rng.int(ITEMS)),
  }));
  const run = (n: number, from: number) => {
    let loss = 0;
    for (let s = 0; s < n; s++) loss = step.run(pool[(from + s) % 16].u, pool[(from + s) % 16].i, rng).loss;
    return loss;
  };
  const firstLoss = run(1, 0);
  run(5, 1);
  // Steps per repetition sized to ~1.5 s.
  const t0 = performance.now();
  run(3, 2);
  const perStep = (performance.now() - t0) / 3;
  const steps = Math.max(5, Math.min(200, Math.round(1500 / perStep)));
  const reps: number[] = [];
  let finalLoss = 0;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    finalLoss = run(steps, r * steps);
    reps.push((performance.now() - t) / steps);
  }
  const ms = median(reps);
  return { B, backend: backend.name, steps_per_rep: steps, ms_per_step: ms, examples_per_s: (B * 1000) / ms, rep_ms_per_step: reps, first_loss: firstLoss, final_loss: finalLoss };
}

async function measureEval() {
  const backend = await getBackend(backendChoice);
  const model = buildModel(
    { dim: 64, mlp: [128, 64], featureDim: 16, useFeatures: false, sparseOptimizer: 'lazyadam', sparseLr: 1e-3, denseLr: 1e-3, seed: 1 },
    USERS,
    ITEMS,
    [],
    [],
  );
  const rng = new Rng(9);
  const n = 100_000;
  const u = Int32Array.from({ length: n }, () => rng.int(USERS));
  const i = Int32Array.from({ length: n }, () => rng.int(ITEMS));
  const train = csrFromPairs(USERS, u, i, true);
  const test = csrFromPairs(USERS, Int32Array.from({ length: USERS }, (_, k) => k), Int32Array.from({ length: USERS }, () => rng.int(ITEMS)), true);
  const t = performance.now();
  const itemEmb = model.embedAllItems(backend);
  const scorer = embeddingScorer(backend, (ids, out) => model.user.embed(backend, ids, out), itemEmb, model.dim, ITEMS);
  evaluateRanking({ backend, scorer, test, exclude: train, ks: [10, 20, 50], itemPopularity: new Float64Array(ITEMS).fill(1) });
  return { users: USERS, items: ITEMS, seconds: (performance.now() - t) / 1000 };
}

function runPeer(): { results: any[]; note: string } {
  const script = resolve('..', 'shared', 'peer', 'run.sh');
  if (!existsSync(script)) return { results: [], note: `peer not run: ${script} not found` };
  const out = join(tmpdir(), `towerlab-peer-${process.pid}.json`);
  process.stderr.write(`running the PyTorch peer (${script}); it installs python3-torch if missing...\n`);
  const r = spawnSync('bash', [script, '--threads', threads, '--batch', batches.join(','), '--loss', 'mask', '--optim', 'sparse', '--json', out], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0 || !existsSync(out)) return { results: [], note: `peer failed (exit ${r.status}); it needs root and Debian's python3-torch` };
  return { results: JSON.parse(readFileSync(out, 'utf8')).results, note: 'PyTorch CPU, same model, accidental-hit masking, SparseAdam + Adam' };
}

const ours = [];
for (const B of batches) {
  process.stderr.write(`towerlab B=${B}...\n`);
  ours.push(await measureTowerlab(B));
}
const evalTime = await measureEval();
const peer = withPeer ? runPeer() : { results: [], note: 'peer skipped (--no-peer)' };
const rows = ours.map((o) => {
  const p = peer.results.find((r: any) => r.B === o.B && r.loss === 'mask');
  return { ...o, peer_examples_per_s: p?.examples_per_s ?? null, ratio: p ? o.examples_per_s / p.examples_per_s : null };
});
const result = {
  bench: 'throughput',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, threads: Number(threads) },
  model: 'id-only two-tower 6040×3706, dim 64, MLP 64→128→64, τ=0.05, in-batch softmax + accidental-hit masking, lazy Adam + Adam',
  rows,
  eval_full_corpus: evalTime,
  peer_note: peer.note,
};
mkdirSync('bench/results', { recursive: true });
writeResultJson('bench/results/throughput.json', result);
console.log(`\n${'batch'.padStart(6)} ${'towerlab ex/s'.padStart(14)} ${'ms/step'.padStart(8)} ${'pytorch ex/s'.padStart(13)} ${'ratio'.padStart(6)}`);
for (const r of rows) {
  console.log(
    `${String(r.B).padStart(6)} ${Math.round(r.examples_per_s).toLocaleString('en-US').padStart(14)} ${r.ms_per_step.toFixed(2).padStart(8)} ${(r.peer_examples_per_s ? Math.round(r.peer_examples_per_s).toLocaleString('en-US') : '-').padStart(13)} ${(r.ratio ? r.ratio.toFixed(2) + '×' : '-').padStart(6)}`,
  );
}
console.log(`full-corpus evaluation ${USERS}×${ITEMS}: ${evalTime.seconds.toFixed(3)} s  (backend ${rows[0]?.backend})`);
console.log(`peer: ${peer.note}\nwritten bench/results/throughput.json`);
