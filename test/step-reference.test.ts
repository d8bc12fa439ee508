/**
 * The whole training step (src/train/step.ts TrainStep.run) against references computed here from first
 * principles (test/helpers/step64.ts), for every recipe module:
 *  - the loss value: embeddings read from the raw tables, each source's log expected count from the training
 *    data (uniform n/N, popularity n·(c+1)^α/Σ, stratified n/|stratum|, train frequency B·(c+1)/(T+N), streaming
 *    Algorithm 2 replayed over the steps, queue size·p, GNNO n·Σ p(j|pos), mined 0 or B·rate), their mixture,
 *    masks from the batch's ids, the queue's columns replayed (with momentum: the EMA of the tables), both
 *    directions when symmetric;
 *  - the gradient the step hands to the towers (captured where the tables apply it), by central finite
 *    differences of the step's own loss on every table coordinate.
 * Only the identities of randomly drawn negatives are read from the sources (recorded as they are returned).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsBackend } from '../src/compute/js.ts';
import type { Backend } from '../src/compute/backend.ts';
import { Vocab } from '../src/data/types.ts';
import { liveRetrievers } from '../src/mine/model-retriever.ts';
import { TwoTowerModel } from '../src/model/two-tower.ts';
import { parseRecipe, type Recipe, type SourceSpec } from '../src/recipe/schema.ts';
import { buildSources, type SourceSet } from '../src/sampling/build.ts';
import { TrainStep } from '../src/train/step.ts';
import { Rng } from '../src/util/rng.ts';
import { QueueSource } from '../src/sampling/queue.ts';
import {
  logMixture,
  Neighbourhood64,
  normRow64,
  popularityCount,
  stepLoss64,
  Streaming64,
  stratifiedCount,
  trainFrequencyCount,
  type Col64,
  type StepRecipe64,
  type Vec,
} from './helpers/step64.ts';

const queueOf = (set: SourceSet) => set.sources.find((s) => s instanceof QueueSource) as QueueSource;

const NUM_USERS = 10;
const NUM_ITEMS = 20;
const DIM = 4;
// The batch, with planted collisions: item 3 twice, user 1 three times.
const USERS = Int32Array.from([0, 1, 1, 2, 1, 4, 5, 6]);
const ITEMS = Int32Array.from([3, 1, 2, 3, 9, 0, 11, 5]);
const B = USERS.length;
// Another batch, for estimators that must see different items over time.
const USERS2 = Int32Array.from([3, 7, 8, 9, 0, 2, 4, 1]);
const ITEMS2 = Int32Array.from([5, 13, 15, 18, 0, 4, 7, 3]);
// Training sequences (row order = time order per user).
const SEQS = [[0, 1, 2, 3], [1, 2, 9], [4, 3], [5], [3, 3, 7, 0], [10, 11, 3], [12, 8, 3, 5], [13, 14], [15, 16, 17], [18, 19, 6]];
const TRAIN_USERS = Int32Array.from(SEQS.flatMap((s, u) => s.map(() => u)));
const TRAIN_ITEMS = Int32Array.from(SEQS.flat());
const STRATUM = Int32Array.from({ length: NUM_ITEMS }, (_, j) => j % 3);
const USER_IDS = Array.from({ length: NUM_USERS }, (_, u) => `u${u}`);
const ITEM_IDS = Array.from({ length: NUM_ITEMS }, (_, j) => `i${j}`);

// Mined groups (towerlab mine's JSONL): a list per (user, positive) of the batch and two more.
const dir = mkdtempSync(join(tmpdir(), 'towerlab-step64-'));
const MINED_GROUPS: Array<[number, number, number[]]> = [
  [0, 3, [7, 12, 19]],
  [1, 1, [12, 6, 3]],
  [1, 2, [17, 12]],
  [2, 3, [8, 13, 14]],
  [1, 9, [6]],
  [4, 0, [12, 14, 4]],
  [5, 11, [2, 16, 18]],
  [6, 5, [7, 8, 9]],
  [7, 13, [12, 4, 5]],
  [8, 15, [2, 3, 4]],
];
const MINED_FILE = join(dir, 'mined.jsonl');
writeFileSync(MINED_FILE, MINED_GROUPS.map(([u, p, n]) => JSON.stringify({ user: `u${u}`, positive: `i${p}`, negatives: n.map((j) => `i${j}`) })).join('\n') + '\n');
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface Case {
  recipe: object;
  /** Steps run before the checked one, each with one of these batches (cycled). */
  warm?: number;
  batches?: Array<[Int32Array, Int32Array]>;
}

const SAME: Array<[Int32Array, Int32Array]> = [[USERS, ITEMS]];
const ALTERNATE: Array<[Int32Array, Int32Array]> = [
  [USERS2, ITEMS2],
  [USERS, ITEMS],
];

const CASES: Record<string, Case> = {
  'in-batch, no masks': { recipe: { corrections: { maskSameItem: false, maskSameUser: false } } },
  'in-batch + maskSameItem': { recipe: { corrections: { maskSameItem: true, maskSameUser: false } } },
  'in-batch + maskSameUser': { recipe: { corrections: { maskSameItem: false, maskSameUser: true } } },
  'logQ (train frequency)': { recipe: { corrections: { logQ: {} } } },
  'logQ (streaming, inside training)': { recipe: { corrections: { logQ: { estimator: 'streaming', alpha: 0.3 } } }, warm: 5, batches: ALTERNATE },
  'uniform + popularity(α=0.75) + logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 5 }, { type: 'popularity', n: 4, alpha: 0.75 }], corrections: { logQ: {} } } },
  'popularity(α=1), no logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'popularity', n: 6 }] } },
  'uniform only (no in-batch) + logQ': { recipe: { sources: [{ type: 'uniform', n: 6 }], corrections: { logQ: {} } } },
  'stratified + logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'stratified', n: 2, column: 'cat' }], corrections: { logQ: {} } } },
  'queue + logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 12 }], corrections: { logQ: {} } }, warm: 2, batches: ALTERNATE },
  // With in-batch alone the queue's expected count is proportional to in-batch's (a constant shift, invisible to the
  // softmax); a uniform source beside them makes its size matter.
  'queue + uniform + logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 12 }, { type: 'uniform', n: 4 }], corrections: { logQ: {} } }, warm: 2, batches: ALTERNATE },
  'queue with momentum 0.9': { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 12, momentum: 0.9 }] }, warm: 3, batches: SAME },
  'same-tower': { recipe: { sources: [{ type: 'in-batch' }, { type: 'same-tower' }] } },
  symmetric: { recipe: { loss: { symmetric: true } } },
  'symmetric + same-tower + logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], corrections: { logQ: {} }, loss: { symmetric: true } } },
  'fnMask threshold + margin': { recipe: { corrections: { fnMask: { threshold: 0.6, margin: 0.15 } } } },
  debiased: { recipe: { loss: { type: 'debiased', tauPlus: 0.1 } } },
  'debiased + fnMask threshold + margin': { recipe: { corrections: { fnMask: { threshold: 0.6, margin: 0.15 } }, loss: { type: 'debiased', tauPlus: 0.1 } } },
  'debiased + same-tower + symmetric + logQ': {
    recipe: { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], corrections: { logQ: {} }, loss: { type: 'debiased', tauPlus: 0.05, symmetric: true } },
  },
  'neighbourhood + logQ': {
    recipe: { sources: [{ type: 'in-batch' }, { type: 'neighbourhood', n: 2, window: 2, temperature: 0.5, maxCandidates: 0, curriculum: { kind: 'constant', max: 0.5 } }], corrections: { logQ: {} } },
  },
  'mined (no correction) + logQ': { recipe: { sources: [{ type: 'in-batch' }, { type: 'mined', from: MINED_FILE, n: 2, sample: 'top' }], corrections: { logQ: {} } } },
  'mined (frequency correction) + uniform + logQ': {
    recipe: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 3 }, { type: 'mined', from: MINED_FILE, n: 2, sample: 'top', correction: 'frequency' }], corrections: { logQ: {} } },
  },
};

/** Reference state replayed alongside the real step: streaming estimator, queue, momentum tables. */
class Replay {
  streaming: Streaming64 | null = null;
  queue: Array<{ item: number; user: number; emb: Vec }> = [];
  head = 0;
  shadow: Float64Array | null = null;
  constructor(
    readonly r: Recipe,
    itemTable: Float32Array,
  ) {
    const lq = r.corrections.logQ;
    if (lq && lq.estimator === 'streaming') this.streaming = new Streaming64(NUM_ITEMS, B, lq.alpha);
    const q = this.queueSpec();
    if (q && q.momentum > 0) this.shadow = Float64Array.from(itemTable);
  }
  queueSpec() {
    return this.r.sources.find((s) => s.type === 'queue') as Extract<SourceSpec, { type: 'queue' }> | undefined;
  }
  /** After a step: the batch was seen at step t; tables before (pre) and after (post) the update. */
  after(users: Int32Array, items: Int32Array, t: number, pre: Float32Array, post: Float32Array): void {
    this.streaming?.observe(items, t);
    const q = this.queueSpec();
    if (!q) return;
    if (this.shadow) {
      // θ_m ← m·θ_m + (1−m)·θ after every step (exact for rows the batch touches every step, as here).
      for (let k = 0; k < this.shadow.length; k++) this.shadow[k] = q.momentum * this.shadow[k] + (1 - q.momentum) * post[k];
    }
    for (let r = 0; r < items.length; r++) {
      const emb = this.shadow ? normRow64(this.shadow, DIM, items[r]) : normRow64(pre, DIM, items[r]);
      const entry = { item: items[r], user: users[r], emb };
      if (this.queue.length < q.size) this.queue.push(entry);
      else this.queue[this.head] = entry;
      this.head = (this.head + 1) % q.size;
    }
  }
}

function buildModel(seed: number): TwoTowerModel {
  const model = new TwoTowerModel({
    user: { vocabSize: NUM_USERS, idDim: DIM, features: [], mlp: [] },
    item: { vocabSize: NUM_ITEMS, idDim: DIM, features: [], mlp: [] },
    sparseOptimizer: 'adagrad',
    sparseLr: 0.05,
    denseLr: 0.01,
    seed,
  });
  model.init();
  // Rows of norm ~1, so a finite-difference step of 1e-3 is small against them.
  for (const t of [model.user.idTable, model.item.idTable]) for (let i = 0; i < t.data.length; i++) t.data[i] *= 10;
  return model;
}

interface Harness {
  r: Recipe;
  model: TwoTowerModel;
  set: SourceSet;
  step: TrainStep;
  replay: Replay;
  /** Ids each non-in-batch source returned at the last step, in recipe order (queue excluded). */
  drawn: Map<number, Int32Array>;
}

function harness(backend: Backend, c: Case, seed = 3): Harness {
  const r = parseRecipe({ temperature: 0.5, ...c.recipe });
  const model = buildModel(seed);
  const itemFeatures = [{ name: 'cat', vocab: Vocab.from(['?', 'a', 'b', 'c']), values: STRATUM }];
  const set = buildSources(r, {
    numItems: NUM_ITEMS,
    trainItems: TRAIN_ITEMS,
    trainUsers: TRAIN_USERS,
    itemFeatures,
    dim: DIM,
    liveRetriever: liveRetrievers(backend, model),
    userIds: USER_IDS,
    itemIds: ITEM_IDS,
  });
  const drawn = new Map<number, Int32Array>();
  set.sources.forEach((s, k) => {
    if (s.usesPositives || s.name === 'queue' || !s.sample) return;
    const sample = s.sample.bind(s);
    s.sample = (ctx) => {
      const out = sample(ctx);
      drawn.set(k, out.ids.slice());
      return out;
    };
  });
  const step = new TrainStep(backend, model, r, set);
  const replay = new Replay(r, model.item.idTable.data);
  const h = { r, model, set, step, replay, drawn };
  const batches = c.batches ?? SAME;
  for (let t = 0; t < (c.warm ?? 0); t++) {
    const [u, i] = batches[t % batches.length];
    runStep(h, u, i, new Rng(100 + t));
  }
  return h;
}

function runStep(h: Harness, users: Int32Array, items: Int32Array, rng: Rng): number {
  const pre = h.model.item.idTable.data.slice();
  const loss = h.step.run(users, items, rng).loss;
  h.replay.after(users, items, h.step.step, pre, h.model.item.idTable.data);
  return loss;
}

/** Per source: expected count of item j in one batch of B rows, from the raw training data. */
function expectedCount(h: Harness, s: SourceSpec, j: number): number {
  switch (s.type) {
    case 'in-batch':
      return h.replay.streaming ? h.replay.streaming.count(j) : trainFrequencyCount(TRAIN_ITEMS, NUM_ITEMS, j, B);
    case 'uniform':
      return s.n / NUM_ITEMS;
    case 'popularity':
      return popularityCount(TRAIN_ITEMS, NUM_ITEMS, j, s.n, s.alpha);
    case 'stratified':
      return stratifiedCount(STRATUM, j, s.n);
    case 'queue':
      return h.replay.streaming ? h.replay.streaming.count(j) : trainFrequencyCount(TRAIN_ITEMS, NUM_ITEMS, j, s.size);
    case 'neighbourhood': {
      const g = new Neighbourhood64(NUM_ITEMS, SEQS, s.window);
      let e = 0;
      for (const p of ITEMS) e += s.n * g.probability(p, j, s.curriculum.max, s.temperature);
      return e;
    }
    case 'mined': {
      if (s.correction !== 'frequency') return 0;
      // 'top': the first n negatives of every group are the draws of its row.
      let c = 0;
      for (const [, , negs] of MINED_GROUPS) if (negs.slice(0, s.n).includes(j)) c++;
      return (B * c) / MINED_GROUPS.length;
    }
    default:
      return 0;
  }
}

/** Negatives a source draws per batch, as documented (the ids themselves are random). */
function drawsPerBatch(s: SourceSpec): number {
  switch (s.type) {
    case 'uniform':
    case 'popularity':
      return s.n;
    case 'stratified':
      return s.n * new Set(STRATUM).size;
    case 'neighbourhood':
      return s.n * B;
    case 'mined': {
      // 'top': the first n of the row's (user, positive) group.
      let n = 0;
      for (let r = 0; r < B; r++) n += Math.min(s.n, MINED_GROUPS.find(([u, p]) => u === USERS[r] && p === ITEMS[r])![2].length);
      return n;
    }
    default:
      return NaN;
  }
}

/** The checked step's reference loss, from the tables before it and the ids the sources drew. */
function referenceLoss(h: Harness, uTab: Float32Array, iTab: Float32Array): number {
  const r = h.r;
  const withLogQ = r.corrections.logQ !== false;
  const logq = (j: number, mined: boolean) => {
    if (!withLogQ) return 0;
    const spec = r.sources.find((s) => s.type === 'mined') as Extract<SourceSpec, { type: 'mined' }> | undefined;
    if (mined && spec && spec.correction !== 'frequency') return 0; // chosen, not sampled
    return logMixture(r.sources.map((s) => expectedCount(h, s, j)));
  };
  const q = Array.from(USERS, (u) => normRow64(uTab, DIM, u));
  const cols: Col64[] = Array.from(ITEMS, (j, i) => ({ emb: normRow64(iTab, DIM, j), item: j, user: USERS[i], kind: 'positive', logq: logq(j, false) }));
  r.sources.forEach((s, k) => {
    const ids = h.drawn.get(k);
    if (!ids) return;
    assert.equal(ids.length, drawsPerBatch(s), `${s.type}: number of negatives drawn`);
    for (const j of ids) cols.push({ emb: normRow64(iTab, DIM, j), item: j, user: -1, kind: 'negative', logq: logq(j, s.type === 'mined') });
  });
  for (const e of h.replay.queue) cols.push({ emb: e.emb, item: e.item, user: e.user, kind: 'negative', logq: logq(e.item, false) });
  const same = r.sources.some((s) => s.type === 'same-tower');
  if (same) q.forEach((e, k) => cols.push({ emb: e, item: ITEMS[k], user: USERS[k], kind: 'query', logq: 0 }));
  const fn = r.corrections.fnMask;
  const rr: StepRecipe64 = {
    temperature: r.temperature,
    inBatch: r.sources.some((s) => s.type === 'in-batch'),
    maskSameItem: r.corrections.maskSameItem,
    maskSameUser: r.corrections.maskSameUser,
    fnMask: fn ? fn : null,
    loss: { type: r.loss.type === 'debiased' ? 'debiased' : 'infonce', tauPlus: r.loss.tauPlus, symmetric: r.loss.symmetric },
    sameTower: same,
  };
  return stepLoss64(rr, USERS, ITEMS, q, cols);
}

for (const [name, c] of Object.entries(CASES)) {
  test(`step loss equals the first-principles float64 reference: ${name}`, async () => {
    const b = await createJsBackend({ wasm: false });
    const h = harness(b, c);
    // The reference reads the tables as they were before the step and the ids the sources drew during it.
    const uTab = h.model.user.idTable.data.slice();
    const iTab = h.model.item.idTable.data.slice();
    const got = h.step.run(USERS, ITEMS, new Rng(99)).loss;
    const ref = referenceLoss(h, uTab, iTab);
    assert.ok(Number.isFinite(ref), `reference loss ${ref}`);
    assert.ok(Math.abs(got - ref) <= 2e-4 * (1 + Math.abs(ref)), `${name}: step loss ${got} vs reference ${ref}`);
  });
}

/**
 * The gradient TrainStep.run hands to the towers, captured where each table applies it (after the step summed
 * both directions, the same-tower block and the 0.5 of the symmetric loss), against central differences of the
 * step's loss in every table coordinate, each evaluation on a fresh copy brought to the same state.
 */
function stepGradientCheck(b: Backend, c: Case): { worst: number; where: string; norm: number } {
  const grads = { user: new Float64Array(NUM_USERS * DIM), item: new Float64Array(NUM_ITEMS * DIM) };
  const h = harness(b, c);
  for (const side of ['user', 'item'] as const) {
    const table = h.model[side].idTable;
    table.applyGradients = (_b, ids, g) => {
      for (let r = 0; r < ids.length; r++) for (let k = 0; k < DIM; k++) grads[side][ids[r] * DIM + k] += g[r * DIM + k];
    };
  }
  h.step.run(USERS, ITEMS, new Rng(99));
  const eps = 1e-3;
  let worst = 0;
  let where = '';
  let norm = 0;
  for (const side of ['user', 'item'] as const) {
    for (let p = 0; p < grads[side].length; p++) {
      const f = (delta: number) => {
        const hh = harness(b, c);
        hh.model[side].idTable.data[p] += delta;
        return hh.step.run(USERS, ITEMS, new Rng(99)).loss;
      };
      const fd = (f(eps) - f(-eps)) / (2 * eps);
      const g = grads[side][p];
      norm += g * g;
      const err = Math.abs(fd - g) / (2e-3 + 0.02 * Math.abs(fd));
      if (err > worst) (worst = err), (where = `${side}[${Math.floor(p / DIM)}][${p % DIM}]: step ${g} vs fd ${fd}`);
    }
  }
  return { worst, where, norm: Math.sqrt(norm) };
}

for (const [name, c] of Object.entries(CASES)) {
  test(`finite differences through TrainStep.run: ${name}`, async () => {
    const b = await createJsBackend({ wasm: false });
    const { worst, where, norm } = stepGradientCheck(b, c);
    assert.ok(norm > 1e-3, `${name}: the step's gradient is zero`);
    assert.ok(worst <= 1, `${name}: ${where}`);
  });
}

test('streaming estimator inside training: the in-batch logQ columns follow Algorithm 2 replayed over the steps', async () => {
  const b = await createJsBackend({ wasm: false });
  const c = CASES['logQ (streaming, inside training)'];
  const h = harness(b, c);
  const { cols } = h.step.inspect(USERS, ITEMS, new Rng(1));
  for (let j = 0; j < B; j++) {
    const want = Math.log(h.replay.streaming!.count(ITEMS[j]));
    assert.ok(Math.abs(cols.logq[j] - want) < 1e-5, `column ${j} (item ${ITEMS[j]}): ${cols.logq[j]} vs ${want}`);
  }
  // The estimate moved away from the uniform prior for the items seen twice or more (B = 1 / rate).
  assert.ok(h.replay.streaming!.count(3) > 1 / (NUM_ITEMS / B) + 0.1);
});

test('queue columns are the replayed past positives; momentum m embeds them with the EMA tables, 0 with the online ones', async () => {
  const b = await createJsBackend({ wasm: false });
  for (const momentum of [0, 0.9]) {
    const c: Case = { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 12, momentum }] }, warm: 3, batches: SAME };
    const h = harness(b, c);
    const got = queueOf(h.set).sample({ users: USERS, items: ITEMS, step: 4, rng: new Rng(0) });
    assert.equal(got.ids.length, 12);
    // Order-free comparison: match each entry of the reference queue to one of the queue's.
    const used = new Set<number>();
    for (const e of h.replay.queue) {
      let hit = -1;
      for (let k = 0; k < got.ids.length && hit < 0; k++) {
        if (used.has(k) || got.ids[k] !== e.item || got.userKey![k] !== e.user) continue;
        let err = 0;
        for (let t = 0; t < DIM; t++) err = Math.max(err, Math.abs(got.embeddings![k * DIM + t] - e.emb[t]));
        if (err < 1e-5) hit = k;
      }
      assert.ok(hit >= 0, `momentum ${momentum}: queue entry (item ${e.item}, user ${e.user}) not found with the reference embedding`);
      used.add(hit);
    }
  }
  // And the two differ as the formula says: with m = 0.9 the queue lags the online tower.
  const h0 = harness(b, { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 8, momentum: 0 }] }, warm: 3, batches: SAME });
  const h9 = harness(b, { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 8, momentum: 0.9 }] }, warm: 3, batches: SAME });
  const e0 = queueOf(h0.set).sample({ users: USERS, items: ITEMS, step: 4, rng: new Rng(0) }).embeddings!;
  const e9 = queueOf(h9.set).sample({ users: USERS, items: ITEMS, step: 4, rng: new Rng(0) }).embeddings!;
  let diff = 0;
  for (let k = 0; k < e0.length; k++) diff = Math.max(diff, Math.abs(e0[k] - e9[k]));
  assert.ok(diff > 1e-3, `momentum 0.9 and 0 give the same queue (max diff ${diff})`);
});
