/**
 * Where one SASRec training step spends its time, by phase (self time: a phase's time minus the phases nested
 * in it). Same set-up as bench/sequential.ts section 2 (dim 64, 2 blocks, 1 head, max length 50, dropout 0.2,
 * 12,101 items, BCE with 1 negative per position, synthetic users with full-length sequences).
 *
 *   node --import tsx bench/sasrec-profile.ts [--batch 128] [--steps 30] [--threads 2] [--plain]
 *
 * Timing wrappers add a little overhead per call; the phase shares, not the totals, are the point. --plain times
 * the steps without wrappers (ms/step only), for before/after runs of two builds alternated in one window.
 */
import { cpus } from 'node:os';
import { getBackend } from '../src/compute/index.ts';
import { csrFromPairs } from '../src/data/csr.ts';
import { EmbeddingTable } from '../src/model/embedding-table.ts';
import { DenseLayer } from '../src/model/dense-layer.ts';
import { PerRowLoss } from '../src/loss/pairwise.ts';
import { CausalAttention } from '../src/nn/attention.ts';
import { Dropout } from '../src/nn/dropout.ts';
import { LayerNorm } from '../src/nn/layer-norm.ts';
import { Param } from '../src/nn/param.ts';
import type { SeqData } from '../src/seq/data.ts';
import { buildTower, defaultSeqModel } from '../src/seq/experiment.ts';
import { BceObjective } from '../src/seq/objectives.ts';
import { PackedBuilder } from '../src/seq/packed.ts';
import { SeqPair, seqBatch } from '../src/seq/pair.ts';
import { SasRecTower } from '../src/seq/sasrec.ts';
import { Rng } from '../src/util/rng.ts';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}
process.env.TOWERLAB_THREADS ??= arg('threads', '2');
const B = Number(arg('batch', '128'));
const STEPS = Number(arg('steps', '30'));
const L = 50;
const ITEMS = 12101;
const backend = await getBackend();

// ---- self-time profiler over wrapped methods
const self = new Map<string, number>();
const calls = new Map<string, number>();
const stack: number[] = []; // child time accumulated per open frame
let on = false;
function timed<T>(label: string, f: () => T): T {
  if (!on) return f();
  stack.push(0);
  const t0 = performance.now();
  const r = f();
  const dt = performance.now() - t0;
  const child = stack.pop()!;
  self.set(label, (self.get(label) ?? 0) + dt - child);
  calls.set(label, (calls.get(label) ?? 0) + 1);
  if (stack.length) stack[stack.length - 1] += dt;
  return r;
}
function wrap(proto: any, method: string, label: string): void {
  const orig = proto[method];
  if (typeof orig !== 'function') throw new Error(`no method ${method} for ${label}`);
  proto[method] = function (this: unknown, ...a: unknown[]) {
    return timed(label, () => orig.apply(this, a));
  };
}

const rng = new Rng(5);
const users = 16 * B;
const u: number[] = [];
const it: number[] = [];
for (let k = 0; k < users; k++) for (let j = 0; j < L + 1; j++) (u.push(k), it.push(rng.int(ITEMS)));
const train = csrFromPairs(users, Int32Array.from(u), Int32Array.from(it));
const data: SeqData = {
  numUsers: users,
  numItems: ITEMS,
  train,
  trainVal: train,
  valItem: new Int32Array(users).fill(-1),
  testItem: new Int32Array(users).fill(-1),
  trainSet: csrFromPairs(users, Int32Array.from(u), Int32Array.from(it), true),
  itemCounts: new Float64Array(ITEMS).fill(1),
  trainSize: it.length,
};
const tower = buildTower({ ...defaultSeqModel, tower: 'sasrec', dim: 64, maxLen: L, blocks: 2, heads: 1, dropout: 0.2, lr: 1e-3 }, ITEMS) as SasRecTower;
const step = new BceObjective(data, 64).stepFor(backend, new SeqPair(tower, 'dot'));

// Wrap: the backend's kernels (instance), then the modules (prototypes). Order of nesting decides self time.
const plain = process.argv.includes('--plain');
const be = plain ? {} : (backend as any);
if (!plain) {
for (const k of Object.keys(be)) if (typeof be[k] === 'function') { const f = be[k]; be[k] = (...a: unknown[]) => timed(`kernel ${k}`, () => f(...a)); }
const blockProto = Object.getPrototypeOf(tower.blocks[0]);
wrap(blockProto, 'forward', 'block fwd: residual adds, copies (rest)');
wrap(blockProto, 'backward', 'block bwd: copies (rest)');
wrap(LayerNorm.prototype, 'forward', 'layer norm fwd');
wrap(LayerNorm.prototype, 'backward', 'layer norm bwd');
wrap(Dropout.prototype, 'forward', 'dropout fwd');
wrap(Dropout.prototype, 'backward', 'dropout bwd');
wrap(Dropout.prototype, 'backwardInto', 'dropout bwd');
wrap(CausalAttention.prototype, 'forward', 'attention fwd wrapper');
wrap(CausalAttention.prototype, 'backward', 'attention bwd wrapper');
wrap(DenseLayer.prototype, 'forward', 'dense fwd wrapper');
wrap(DenseLayer.prototype, 'backward', 'dense bwd wrapper');
wrap(DenseLayer.prototype, 'adamStep', 'dense adam wrapper');
wrap(Param.prototype, 'adamStep', 'param adam wrapper');
wrap(SasRecTower.prototype, 'forward', 'tower fwd: embed scale+pos (TS)');
wrap(SasRecTower.prototype, 'backward', 'tower bwd: pos grad, emb grad (TS)');
wrap(SasRecTower.prototype, 'stepDense', 'dense optimiser (rest)');
wrap(EmbeddingTable.prototype, 'applyGradients', 'sparse update: merge duplicates (TS)');
wrap(PerRowLoss.prototype, 'loss', 'BCE loss (TS)');
wrap(PerRowLoss.prototype, 'layout', 'negative sampling (TS)');
wrap(SeqPair.prototype, 'forward', 'pair fwd (rest)');
wrap(SeqPair.prototype, 'backward', 'pair bwd: grads copy (rest)');
wrap(SeqPair.prototype, 'step', 'pair step (rest)');
}

const builder = new PackedBuilder(L);
const ids = Int32Array.from({ length: users }, (_, k) => k);
let k = 0;
const run = (n: number) => {
  for (let s = 0; s < n; s++, k++) {
    const batch = timed('batch packing (TS)', () => seqBatch(builder.training(data.train, ids.subarray((k % 16) * B, (k % 16 + 1) * B))));
    timed('step (rest)', () => step.run(batch, rng));
  }
};
run(3);
on = !plain;
const t0 = performance.now();
run(STEPS);
const total = performance.now() - t0;
const rows = [...self.entries()].sort((a, b) => b[1] - a[1]);
console.log(`SASRec step, B=${B}, full length ${L}, backend ${backend.name}, ${STEPS} steps, ${(total / STEPS).toFixed(1)} ms/step (${plain ? "no wrappers" : "with timing wrappers"}), cores ${cpus().length}`);
console.log('| phase (self time) | ms/step | share | calls/step |');
console.log('|---|---:|---:|---:|');
for (const [label, ms] of rows) console.log(`| ${label} | ${(ms / STEPS).toFixed(2)} | ${((100 * ms) / total).toFixed(1)} % | ${((calls.get(label) ?? 0) / STEPS).toFixed(0)} |`);
