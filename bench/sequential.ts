/**
 * Sequential recommendation on Amazon Beauty (leave-last-one-out, full ranking over all 12,101 items):
 *  1. the GNNO transition graph + neighbourhood overlap: build time and memory (training split only);
 *  2. training throughput of the SASRec tower (dim 64, 2 blocks, 1 head, max length 50, batch 128/256, BCE)
 *     against the same model in PyTorch on the CPU, measured in the same run (bench/peer/sasrec.sh, the
 *     environment of ../shared/peer/run.sh), and against the same step in TF.js autograd (WASM); on full-length
 *     sequences (identical work on both sides) and on Beauty's sequence lengths (Towerlab packs, PyTorch pads);
 *     two interleaved rounds, each side's faster round kept (the machine may be shared);
 *  3. quality: SASRec+ (exact softmax over the full catalogue, recipes/seq-full-softmax.json, the default),
 *     large sampled softmax and gBCE (recipes/seq-sampled-softmax.json, recipes/seq-gbce.json), SASRec-BCE,
 *     in-batch softmax, GNNO (BPR, uniform + neighbourhood negatives, curriculum; the official all-items sampler
 *     and a two-hop-only variant), with a BPR control of the same number of uniform negatives, in-batch +
 *     neighbourhood softmax, and the mean-pooling tower; several seeds, HR/NDCG@{5,10,20} mean ± std under
 *     ICLRec's protocol (full ranking, the user's history items excluded: primary), with nothing excluded and
 *     sampled (secondary). A run that collapses (train/collapse.ts) or never learns (train/no-learning.ts: e.g. its
 *     validation never beat popularity on the validation users) is marked and left out of the mean.
 *     Modules the sequential trainer runs since the one engine (#10), each alone on the in-batch base: logQ
 *     (inbatch-logq), queue + momentum (inbatch-queue), same-tower + symmetric (inbatch-samtone-sym), FN masking
 *     (inbatch-fnmask). Every method's recipe is a file in recipes/ (seq-*.json).
 * Training: up to --epochs (default 20) at lr 0.005, dropout 0.2, with early stopping on validation NDCG@10
 * (every epoch, patience 3) and the best epoch's weights kept: sized so the 5 default methods × 3 seeds finish
 * in about 30 min on a shared 2-core machine (SASRec papers train 200+ epochs at lr 1e-3).
 * Test metrics under full ranking (nothing excluded; history excluded) and GNNO's sampled protocol (target vs
 * 1000 and vs 99 uniform non-interacted items). The graph and throughput sections of the previous results are
 * kept unless --throughput is given.
 * Writes bench/results/sequential.json and prints tables.
 *
 *   npm run bench:sequential [-- --seeds 3 --epochs 20 --patience 3 --methods bce,inbatch,gnno --throughput --rounds 2 --no-peer --no-tfjs --no-quality --no-graph --out file.json]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { getBackend } from '../src/compute/index.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { buildNeighbourhood } from '../src/graph/build.ts';
import { neighbourhoodOverlap } from '../src/graph/jaccard.ts';
import { buildTransitionGraph } from '../src/graph/transition.ts';
import type { SeqData } from '../src/seq/data.ts';
import { evaluateSeq } from '../src/seq/evaluate.ts';
import { evaluateSampled, sampledProtocolText } from '../src/seq/sampled-eval.ts';
import { buildTower, defaultSeqModel, loadSeqData, runSeqExperiment, type SeqModelOptions } from '../src/seq/experiment.ts';
import { evaluateSeqPopularity } from '../src/seq/evaluate.ts';
import { loadRecipe } from '../src/recipe/schema.ts';
import { BceObjective, type ObjectiveSpec } from '../src/seq/objectives.ts';
import { PackedBuilder } from '../src/seq/packed.ts';
import { SeqPair, seqBatch } from '../src/seq/pair.ts';
import { tfjsSasRec } from '../src/seq/tfjs-sasrec.ts';
import { Rng } from '../src/util/rng.ts';
import { writeResultJson } from './result-paths.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const benchStart = performance.now();
const seeds = Number(arg('seeds', '3'));
// Training runs until validation NDCG@10 (every epoch, 5,000 users) has not improved for `patience` epochs, at
// most `epochs`; the best epoch's weights are evaluated.
const epochs = Number(arg('epochs', '20'));
const patience = Number(arg('patience', '3'));
const lr = Number(arg('lr', '0.005'));
const SAMPLED = [1000, 99];
// Keep the previous run's graph and throughput sections (they take minutes) unless asked to re-measure.
const OUT = arg('out', 'bench/results/sequential.json');
const previous = existsSync('bench/results/sequential.json') ? JSON.parse(readFileSync('bench/results/sequential.json', 'utf8')) : null;
const remeasure = flag('throughput') || !previous?.throughput;
const threads = arg('threads', '2');
process.env.TOWERLAB_THREADS ??= threads;
const BEAUTY = resolve('..', 'shared', 'data', 'amazon-beauty', 'Beauty.txt');
const L = 50;
const backend = await getBackend();
const log = (s: string) => process.stderr.write(s + '\n');
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const stats = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean: m, std: sd };
};

const haveBeauty = existsSync(BEAUTY);
const loaded = haveBeauty ? await loadSeqData({ path: BEAUTY }) : null;
if (!haveBeauty) log(`${BEAUTY} not found: graph and quality sections skipped, throughput on full-length sequences only`);

// ---------------------------------------------------------------- 1. graph build
let graph: any = null;
if (loaded && !flag('no-graph')) {
  const { data } = loaded;
  const spec = { window: 3, weight: 'bool' as const, candidates: 'all' as const, temperature: 1, excludeTop: 0 };
  const capped = buildNeighbourhood(data.train, data.numItems, { ...spec, maxCandidates: 256 }).stats;
  const t0 = performance.now();
  const g = buildTransitionGraph(data.train, data.numItems, { window: 3 });
  const t1 = performance.now();
  const full = neighbourhoodOverlap(g, { weight: 'bool', maxCandidates: 0 });
  const t2 = performance.now();
  graph = {
    data: 'Amazon Beauty training split (leave-last-one-out), 22,363 sequences, 153,776 interactions',
    window: 3,
    capped256: capped,
    uncapped: { graphSeconds: (t1 - t0) / 1000, overlapSeconds: (t2 - t1) / 1000, candidates: full.ids.length, overlapBytes: full.bytes },
  };
  log(`graph: ${capped.edges} directed edges in ${capped.graphSeconds.toFixed(2)} s; overlap (≤256/item) ${capped.overlapSeconds.toFixed(2)} s, ${capped.candidates} candidates; uncapped overlap ${graph.uncapped.overlapSeconds.toFixed(2)} s, ${full.ids.length} candidates`);
}

// ---------------------------------------------------------------- 2. throughput
/** Synthetic users whose training sequences give `positions` positions each (random items). */
function syntheticData(users: number, numItems: number, positions: () => number, rng: Rng): SeqData {
  const u: number[] = [];
  const it: number[] = [];
  for (let k = 0; k < users; k++) {
    const n = positions() + 1;
    for (let j = 0; j < n; j++) (u.push(k), it.push(rng.int(numItems)));
  }
  const train = csrFromPairs(users, Int32Array.from(u), Int32Array.from(it));
  return {
    numUsers: users,
    numItems,
    train,
    trainVal: train,
    valItem: new Int32Array(users).fill(-1),
    testItem: new Int32Array(users).fill(-1),
    trainSet: csrFromPairs(users, Int32Array.from(u), Int32Array.from(it), true),
    itemCounts: new Float64Array(numItems).fill(1),
    trainSize: it.length,
  };
}

const ITEMS = 12101;
const beautyLengths: number[] = [];
if (loaded) {
  const t = loaded.data.train;
  for (let u = 0; u < t.rows; u++) {
    const n = t.offsets[u + 1] - t.offsets[u] - 1;
    if (n >= 1) beautyLengths.push(Math.min(L, n));
  }
}

function measureOurs(tower: 'sasrec' | 'meanpool', B: number, lengths: 'full' | 'beauty') {
  const rng = new Rng(5);
  const pick = lengths === 'full' ? () => L : () => beautyLengths[rng.int(beautyLengths.length)];
  const data = syntheticData(16 * B, ITEMS, pick, rng);
  const model: SeqModelOptions = { ...defaultSeqModel, tower, dim: 64, maxLen: L, blocks: 2, heads: 1, dropout: 0.2, lr: 1e-3 };
  const step = new BceObjective(data, 64).stepFor(backend, new SeqPair(buildTower(model, ITEMS), 'dot'));
  const builder = new PackedBuilder(L);
  const users = Int32Array.from({ length: 16 * B }, (_, k) => k);
  let k = 0;
  let positions = 0;
  const run = (n: number) => {
    let loss = 0;
    for (let s = 0; s < n; s++, k++) {
      const batch = builder.training(data.train, users.subarray((k % 16) * B, (k % 16 + 1) * B));
      positions += batch.tokens;
      loss = step.run(seqBatch(batch), rng).loss;
    }
    return loss;
  };
  const firstLoss = run(1);
  run(2);
  const t0 = performance.now();
  run(2);
  const per = (performance.now() - t0) / 2;
  const steps = Math.max(3, Math.min(100, Math.round(1500 / per)));
  const reps: number[] = [];
  positions = 0;
  let finalLoss = 0;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    finalLoss = run(steps);
    reps.push((performance.now() - t) / steps);
  }
  const ms = median(reps);
  const posPerStep = positions / (5 * steps);
  return { tower, B, lengths, backend: backend.name, ms_per_step: ms, examples_per_s: (B * 1000) / ms, positions_per_s: (posPerStep * 1000) / ms, steps_per_rep: steps, rep_ms_per_step: reps, first_loss: firstLoss, final_loss: finalLoss };
}

async function measureTfjs(B: number) {
  const t = await tfjsSasRec({ numItems: ITEMS, dim: 64, maxLen: L, blocks: 2, heads: 1, dropout: 0.2, lr: 1e-3 }, backend);
  const rng = new Rng(3);
  const ids = () => Int32Array.from({ length: B * L }, () => rng.int(ITEMS));
  const batches = Array.from({ length: 2 }, () => [ids(), ids(), ids()]);
  const first = t.step(batches[0][0], batches[0][1], batches[0][2], B);
  const times: number[] = [];
  let last = 0;
  for (let s = 0; s < 3; s++) {
    const b = batches[s % 2];
    const t0 = performance.now();
    last = t.step(b[0], b[1], b[2], B);
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  return { tower: 'sasrec', B, lengths: 'full', backend: t.backend, ms_per_step: ms, examples_per_s: (B * 1000) / ms, positions_per_s: (B * L * 1000) / ms, step_ms: times, first_loss: first, final_loss: last };
}

function runPeer(batches: number[], lengthsFile: string | null): { results: any[]; note: string } {
  const script = resolve('bench', 'peer', 'sasrec.sh');
  const out = join(tmpdir(), `towerlab-sasrec-peer-${process.pid}-${lengthsFile ? 'beauty' : 'full'}.json`);
  log(`running the PyTorch peer (${script}${lengthsFile ? ', Beauty lengths' : ''})...`);
  const args = [script, '--threads', threads, '--batch', batches.join(','), '--items', String(ITEMS), '--maxlen', String(L), '--json', out];
  if (lengthsFile) args.push('--lengths-file', lengthsFile);
  const r = spawnSync('bash', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 || !existsSync(out)) return { results: [], note: `peer failed (exit ${r.status}); it needs root and Debian's python3-torch` };
  return { results: JSON.parse(readFileSync(out, 'utf8')).results, note: 'PyTorch CPU (Debian python3-torch, OpenBLAS-openmp, jemalloc), same model and BCE step, SparseAdam + Adam' };
}

// Two interleaved rounds (Towerlab, PyTorch, Towerlab, PyTorch); each side keeps its faster round, so a
// burst of load from other processes on a shared machine does not decide the comparison.
const rounds = Number(arg('rounds', '2'));
const configs: Array<['sasrec' | 'meanpool', number, 'full' | 'beauty']> = [['sasrec', 128, 'full'], ['sasrec', 256, 'full']];
if (beautyLengths.length) configs.push(['sasrec', 128, 'beauty']);
configs.push(['meanpool', 128, 'full']);
const oursRounds: any[][] = [];
const peerRounds: any[][] = [];
let peerNote = 'peer skipped (--no-peer)';
let lengthsFile: string | null = null;
if (beautyLengths.length) {
  lengthsFile = join(tmpdir(), `towerlab-beauty-lengths-${process.pid}.txt`);
  writeFileSync(lengthsFile, beautyLengths.join('\n'));
}
for (let r = 0; r < (remeasure ? rounds : 0); r++) {
  const ours: any[] = [];
  for (const [tower, B, lengths] of configs) {
    log(`round ${r + 1}: towerlab ${tower} B=${B} ${lengths} lengths...`);
    ours.push(measureOurs(tower, B, lengths));
  }
  oursRounds.push(ours);
  if (!flag('no-peer')) {
    const full = runPeer([128, 256], null);
    const beauty = lengthsFile ? runPeer([128], lengthsFile) : { results: [] };
    peerNote = full.note;
    peerRounds.push([...full.results, ...beauty.results]);
  }
}
const best = <T extends { examples_per_s: number }>(xs: T[]) => xs.reduce((a, b) => (b.examples_per_s > a.examples_per_s ? b : a));
const throughput: any[] = !remeasure ? previous.throughput.rows : configs.map((_, i) => ({ ...best(oursRounds.map((o) => o[i])), rounds_examples_per_s: oursRounds.map((o) => o[i].examples_per_s) }));
const peerAll = peerRounds.flat();
const peer = { results: peerAll, note: peerNote };
let tfjs: any = null;
if (!remeasure) tfjs = previous.throughput.tfjs;
else if (!flag('no-tfjs')) {
  log('TF.js autograd sasrec B=128 full-length (slow: a few steps)...');
  tfjs = await measureTfjs(128).catch((e) => ({ error: String(e) }));
}
for (const row of remeasure ? throughput : []) {
  const same = peerAll.filter((r) => r.B === row.B && r.lengths === (row.lengths === 'full' ? 'full' : 'file'));
  if (row.tower === 'sasrec' && same.length) {
    const p = best(same);
    row.peer_examples_per_s = p.examples_per_s;
    row.peer_positions_per_s = p.positions_per_s;
    row.peer_ms_per_step = p.ms_per_step;
    row.peer_rounds_examples_per_s = same.map((x) => x.examples_per_s);
    row.ratio = row.examples_per_s / p.examples_per_s;
  }
}

// ---------------------------------------------------------------- 3. quality
const METHODS: Record<string, { label: string; tower: 'sasrec' | 'meanpool'; objective: ObjectiveSpec; lr?: number; epochs?: number }> = {
  // The default configuration (chosen on validation NDCG@10): exact softmax over every item at SASRec's lr 1e-3.
  full: { label: 'SASRec+ (full-catalogue softmax)', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-full-softmax.json') }, lr: 0.001, epochs: 40 },
  // The same with bf16 products (recipes/seq-full-softmax-bf16.json): opt-in, faster where the CPU has AVX512-BF16.
  'full-bf16': { label: 'SASRec+ (full-catalogue softmax, bf16 products)', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-full-softmax-bf16.json') }, lr: 0.001, epochs: 40 },
  sampled: { label: 'SASRec + sampled softmax (2048 uniform, logQ)', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-sampled-softmax.json') }, lr: 0.001, epochs: 40 },
  gbce: { label: 'gBCE (t=0.75, negatives averaged; in-batch + 256 uniform)', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-gbce.json') }, lr: 0.001, epochs: 40 },
  bce: { label: 'SASRec-BCE (1 uniform negative / position)', tower: 'sasrec', objective: { kind: 'bce' } },
  inbatch: { label: 'SASRec + in-batch softmax', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-in-batch.json') } },
  gnno: { label: 'SASRec + GNNO (BPR, 3 uniform + 16 neighbourhood / position)', tower: 'sasrec', objective: { kind: 'bpr', recipe: loadRecipe('recipes/seq-gnno-bpr.json') } },
  'gnno-overlap': { label: 'SASRec + GNNO, two-hop candidates only (BPR, 3 + 16)', tower: 'sasrec', objective: { kind: 'bpr', recipe: loadRecipe('recipes/seq-gnno-overlap.json') } },
  'bpr-uniform': { label: 'SASRec + BPR, 19 uniform / position (control for GNNO)', tower: 'sasrec', objective: { kind: 'bpr', recipe: loadRecipe('recipes/seq-bpr-uniform.json') } },
  'inbatch-nbr': { label: 'SASRec + in-batch + neighbourhood softmax', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-in-batch-neighbourhood.json') } },
  meanpool: { label: 'mean-pool + in-batch softmax', tower: 'meanpool', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-in-batch.json') } },
  // Recipe modules the sequential trainer could not run before the one engine (#10), each added alone to the
  // in-batch base above (temperature 1, lr 0.005); settings fixed in advance, not tuned.
  'inbatch-logq': { label: 'SASRec + in-batch softmax + logQ', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-in-batch-logq.json') } },
  'inbatch-queue': { label: 'SASRec + in-batch + queue 2048 (momentum 0.99)', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-queue-momentum.json') } },
  'inbatch-samtone-sym': { label: 'SASRec + in-batch + same-tower + symmetric', tower: 'sasrec', objective: { kind: 'softmax', score: 'dot', recipe: loadRecipe('recipes/seq-same-tower-symmetric.json') } },
  'inbatch-fnmask': { label: 'SASRec + in-batch on cosine scores + FN masking (margin 0.05)', tower: 'sasrec', objective: { kind: 'softmax', score: 'cosine', recipe: loadRecipe('recipes/seq-fn-mask.json') } },
};
const methods = arg('methods', 'full,inbatch,inbatch-nbr').split(',').filter((m) => METHODS[m]);
const KS = [5, 10, 20];
const quality: any[] = [];
if (loaded && !flag('no-quality')) {
  for (const key of methods) {
    const m = METHODS[key];
    const runs: any[] = [];
    for (let s = 0; s < seeds; s++) {
      const seed = 1 + s;
      const t0 = performance.now();
      const r = await runSeqExperiment(
        {
          data: loaded.raw,
          model: { ...defaultSeqModel, tower: m.tower, dim: 64, maxLen: L, blocks: 2, heads: 1, dropout: 0.2, lr: m.lr ?? lr, seed },
          objective: m.objective,
          // Validation under the primary protocol (history excluded), as the test.
          train: { epochs: m.epochs ?? epochs, batchSize: 128, seed, evalEvery: 1, patience, valMetric: 'ndcg@10', valUsers: 5000, progress: 'none' },
          ks: KS,
          excludeHistory: true,
        },
        loaded,
      );
      const score = m.objective.kind === 'softmax' ? m.objective.score : 'dot';
      const ex = evaluateSeq(backend, r.tower, r.seqData, 'test', { ks: KS, excludeHistory: false, score });
      const sampled = Object.fromEntries(SAMPLED.map((n) => [`sampled${n}`, evaluateSampled(backend, r.tower, r.seqData, 'test', { negatives: n, ks: KS, score, seed: 0 }).metrics]));
      const pickM = (x: Record<string, number>) => Object.fromEntries(KS.flatMap((k) => [[`hr@${k}`, x[`hr@${k}`]], [`ndcg@${k}`, x[`ndcg@${k}`]]]));
      runs.push({
        seed,
        collapsed: r.train.collapse.collapsed,
        collapsePeakEpoch: r.train.collapse.collapsed ? r.train.collapse.peakEpoch : null,
        learned: r.train.noLearning.learned,
        noLearning: r.train.noLearning.learned === false ? { reason: r.train.noLearning.reason, detail: r.train.noLearning.detail } : null,
        valPopularity: r.train.valPopularity,
        metricsHistoryExcluded: pickM(r.metrics),
        metrics: pickM(ex.metrics),
        ...Object.fromEntries(Object.entries(sampled).map(([k, v]) => [k, pickM(v)])),
        epochs: r.train.epochs,
        stoppedEarly: r.train.stoppedEarly,
        bestEpoch: r.train.bestEpoch,
        trainSeconds: r.train.trainSeconds,
        sequencesPerSecond: r.train.sequencesPerSecond,
        positionsPerSecond: r.train.positionsPerSecond,
        validation: r.train.history.filter((h) => h.val).map((h) => ({ epoch: h.epoch, loss: h.loss, ...h.val })),
        graph: r.graph,
      });
      if (r.train.noLearning.learned === false) log(`${key} seed ${seed}: DID NOT LEARN (${r.train.noLearning.reason}: ${r.train.noLearning.detail}); left out of the mean`);
      else if (r.train.collapse.collapsed) log(`${key} seed ${seed}: COLLAPSED (validation peaked at epoch ${r.train.collapse.peakEpoch}); left out of the mean`);
      log(`${key} seed ${seed}: history excluded ndcg@10 ${r.metrics['ndcg@10'].toFixed(4)} hr@10 ${r.metrics['hr@10'].toFixed(4)}; sampled-1000 ndcg@10 ${sampled.sampled1000['ndcg@10'].toFixed(4)}; best epoch ${r.train.bestEpoch}/${r.train.epochs} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
    }
    // Collapsed runs and runs that never learned are reported per run but never averaged in.
    const kept = runs.filter((r) => !r.collapsed && r.learned !== false);
    const agg = (field: string) =>
      Object.fromEntries(Object.keys(runs[0][field]).map((k) => [k, kept.length ? stats(kept.map((r) => r[field][k])) : { mean: NaN, std: NaN }]));
    quality.push({
      key,
      label: m.label,
      runs,
      collapsedRuns: runs.filter((r) => r.collapsed && r.learned !== false).length,
      notLearnedRuns: runs.filter((r) => r.learned === false).length,
      mean: agg('metrics'),
      meanHistoryExcluded: agg('metricsHistoryExcluded'),
      ...Object.fromEntries(SAMPLED.map((n) => [`meanSampled${n}`, agg(`sampled${n}`)])),
      bestEpoch: stats(runs.map((r) => r.bestEpoch)),
      trainSeconds: stats(runs.map((r) => r.trainSeconds)),
      sequencesPerSecond: stats(runs.map((r) => r.sequencesPerSecond)) });
  }
}

const popularity = loaded
  ? {
      historyExcluded: evaluateSeqPopularity(backend, loaded.data, 'test', { ks: KS, excludeHistory: true }).metrics,
      nothingExcluded: evaluateSeqPopularity(backend, loaded.data, 'test', { ks: KS, excludeHistory: false }).metrics,
    }
  : null;
const result = {
  bench: 'sequential',
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, model: cpus()[0]?.model, threads: Number(threads) },
  protocol: {
    primary: "ICLRec's protocol: leave-last-one-out (last item test, second-last validation, input = all earlier items, max length 50), HR@K and NDCG@K by full ranking over ALL 12,101 items with each user's history items (train + validation) removed from the ranking, the target kept (ICLRec's trainer zeroes the scores of every earlier item: rating_pred[train_matrix > 0] = 0)",
    secondary: 'the same full ranking with nothing excluded',
    sampled: Object.fromEntries(SAMPLED.map((n) => [`sampled${n}`, sampledProtocolText(n, 12101)])),
    gnno_paper: "GNNO's own evaluation ranks the target among 1000 (Beauty notebook) or 99 sampled negatives (ReChorus), not full ranking: our sampled1000/sampled99 columns follow that protocol (on our leave-last-one-out split of Beauty.txt, with our own negative draw); GNNO's result table could not be retrieved (see ../shared/REFERENCES.md §1), so no GNNO figure stands beside ours",
    training: `up to ${epochs} epochs, early stopping after ${patience} validations without improvement of NDCG@10 (full ranking, 5,000 seeded validation users, every epoch), best epoch's weights restored; batch 128 sequences, Adam lr ${lr} (SASRec+, sampled softmax, gBCE: lr 0.001, up to 40 epochs) β=(0.9, 0.98), dropout 0.2, dim 64, 2 blocks, 1 head, max length 50`,
    machine: 'timings taken on a shared 2-core machine (other jobs running)',
  },
  references: {
    'ICLRec (Chen et al. 2022), full ranking, Beauty test': { 'hr@5': 0.05, 'ndcg@5': 0.0326, 'hr@10': 0.0744, 'ndcg@10': 0.0403, 'hr@20': 0.1058, 'ndcg@20': 0.0483 },
  },
  graph,
  throughput: !remeasure ? { ...previous.throughput, note: previous.throughput.note ?? `kept from the run of ${previous.date} (not re-measured; pass --throughput)` } : { rows: throughput, tfjs, rounds, peer_note: peer.note, peer_raw: peer.results, model: 'SASRec dim 64, 2 blocks, 1 head, max length 50, dropout 0.2, 12,101 items, BCE (1 negative per position); examples = sequences' },
  quality,
  popularity,
  wall_seconds: (performance.now() - benchStart) / 1000,
};
mkdirSync('bench/results', { recursive: true });
writeResultJson(OUT, result);

// ---------------------------------------------------------------- tables
const f4 = (x: number) => x.toFixed(4);
const n0 = (x: number | undefined) => (x === undefined ? '-' : Math.round(x).toLocaleString('en-US'));
if (graph) {
  const c = graph.capped256;
  console.log(`\ntransition graph (Beauty train split): ${c.items} items, ${c.edges} directed edges in ${c.graphSeconds.toFixed(2)} s (${(c.graphBytes / 2 ** 20).toFixed(1)} MiB, build peak ${(c.buildPeakBytes / 2 ** 20).toFixed(1)} MiB)`);
  console.log(`neighbourhood overlap, ≤256 candidates/item: ${c.candidates} in ${c.overlapSeconds.toFixed(2)} s (${(c.overlapBytes / 2 ** 20).toFixed(1)} MiB + sampler ${(c.samplerBytes / 2 ** 20).toFixed(1)} MiB); uncapped: ${graph.uncapped.candidates} in ${graph.uncapped.overlapSeconds.toFixed(2)} s (${(graph.uncapped.overlapBytes / 2 ** 20).toFixed(1)} MiB)`);
}
console.log(`\n${'tower'.padEnd(9)} ${'B'.padStart(4)} ${'lengths'.padEnd(8)} ${'towerlab seq/s'.padStart(15)} ${'positions/s'.padStart(12)} ${'pytorch seq/s'.padStart(14)} ${'ratio'.padStart(6)}`);
for (const r of throughput) {
  console.log(`${r.tower.padEnd(9)} ${String(r.B).padStart(4)} ${r.lengths.padEnd(8)} ${n0(r.examples_per_s).padStart(15)} ${n0(r.positions_per_s).padStart(12)} ${n0(r.peer_examples_per_s).padStart(14)} ${(r.ratio ? r.ratio.toFixed(2) + '×' : '-').padStart(6)}`);
}
if (tfjs && !tfjs.error) console.log(`${'sasrec'.padEnd(9)} ${'128'.padStart(4)} ${'full'.padEnd(8)} ${n0(tfjs.examples_per_s).padStart(15)} ${n0(tfjs.positions_per_s).padStart(12)}  (${tfjs.backend} autograd)`);
if (tfjs?.error) console.log(`TF.js: ${tfjs.error}`);
console.log(`peer: ${remeasure ? peer.note : result.throughput.peer_note + ' (' + result.throughput.note + ')'}`);
if (quality.length) {
  const cols = KS.flatMap((k) => [`hr@${k}`, `ndcg@${k}`]);
  const mark = (q: any) => {
    const out = [q.collapsedRuns ? `${q.collapsedRuns} collapsed` : '', q.notLearnedRuns ? `${q.notLearnedRuns} not learned` : ''].filter(Boolean);
    return out.length ? ` [${out.join(', ')} run(s) left out]` : '';
  };
  console.log(`\nBeauty test, ICLRec's protocol: full ranking, history items excluded (mean ± std over ${seeds} seeds, patience ${patience}):`);
  console.log(`${'method'.padEnd(62)} ${cols.map((c) => c.padStart(15)).join(' ')}`);
  for (const q of quality) console.log(`${q.label.padEnd(62)} ${cols.map((c) => `${f4(q.meanHistoryExcluded[c].mean)}±${f4(q.meanHistoryExcluded[c].std)}`.padStart(15)).join(' ')}${mark(q)}`);
  if (popularity) console.log(`${'popularity'.padEnd(62)} ${cols.map((c) => f4(popularity.historyExcluded[c]).padStart(15)).join(' ')}`);
  for (const [name, ref] of Object.entries(result.references)) console.log(`${name.padEnd(62)} ${cols.map((c) => f4((ref as any)[c]).padStart(15)).join(' ')}`);
  console.log(`\nsecondary: full ranking, nothing excluded:`);
  for (const q of quality) console.log(`${q.label.padEnd(62)} ${cols.map((c) => `${f4(q.mean[c].mean)}±${f4(q.mean[c].std)}`.padStart(15)).join(' ')}${mark(q)}`);
  if (popularity) console.log(`${'popularity'.padEnd(62)} ${cols.map((c) => f4(popularity.nothingExcluded[c]).padStart(15)).join(' ')}`);
  for (const n of SAMPLED) {
    console.log(`\nsampled protocol: target vs ${n} uniform non-interacted items (GNNO/ReChorus):`);
    for (const q of quality) console.log(`${q.label.padEnd(62)} ${cols.map((c) => `${f4(q[`meanSampled${n}`][c].mean)}±${f4(q[`meanSampled${n}`][c].std)}`.padStart(15)).join(' ')}`);
  }
  console.log('\nepochs (best / run), train seconds:');
  for (const q of quality) console.log(`${q.label.padEnd(62)} ${q.runs.map((r: any) => `${r.bestEpoch}/${r.epochs}`).join(' ')}  ${q.runs.map((r: any) => r.trainSeconds.toFixed(0) + 's').join(' ')}`);
}
console.log(`written ${OUT}`);
