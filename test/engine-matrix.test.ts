/**
 * Every recipe module × every encoder kind (test/helpers/engine-kinds.ts: two-tower, SASRec, mean-pool, and the
 * text BoE and transformer towers of test/helpers/text-kinds.ts) through the one contrastive step:
 *  - the module changes the loss compared with its no-op (the same recipe without it), and
 *  - on a tiny case the step's loss equals a float64 reference computed here from the recipe's documented
 *    semantics (test/helpers/step64.ts: columns, masks, logQ from the data's counts, InfoNCE / debiased, both
 *    directions; gBCE and the full-catalogue softmax below), with queues and momentum copies replayed;
 *  - or the kind refuses the recipe with a one-line error naming the field and saying why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import type { Backend } from '../src/compute/backend.ts';
import { parseRecipe, type Recipe } from '../src/recipe/schema.ts';
import { QueueSource } from '../src/sampling/queue.ts';
import { UserError } from '../src/util/errors.ts';
import { Rng } from '../src/util/rng.ts';
import { cleanup, ENCODER_KINDS, MINED_FILE, type BuiltEncoder, type EncoderKind } from './helpers/engine-kinds.ts';
import { dot64, logMixture, normRow64, popularityCount, stepLoss64, stratifiedCount, trainFrequencyCount, type Col64, type Vec } from './helpers/step64.ts';
import { STRATUM } from './helpers/engine-kinds.ts';

test.after(cleanup);

const BASE = { temperature: 0.5, sources: [{ type: 'in-batch' }], corrections: { maskSameItem: false, maskSameUser: false } };
const WARM = 2;

interface Module {
  /** The recipe with the module (its no-op is BASE). */
  recipe: object;
  /** Kinds that refuse it, with the field and the reason the error must name. */
  refusedBy?: Record<string, RegExp>;
}

const NO_VOCAB = /sources\.1\.from'.*vocabularies/;
const MODULES: Record<string, Module> = {
  uniform: { recipe: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 5 }] } },
  popularity: { recipe: { sources: [{ type: 'in-batch' }, { type: 'popularity', n: 4, alpha: 0.75 }] } },
  stratified: {
    recipe: { sources: [{ type: 'in-batch' }, { type: 'stratified', n: 2, column: 'cat' }] },
    refusedBy: { sasrec: /sources\.1\.column'.*no item feature 'cat'/, 'mean-pool': /sources\.1\.column'.*no item feature 'cat'/, 'text-boe': /sources\.1\.column'.*no item feature 'cat'/, 'text-transformer': /sources\.1\.column'.*no item feature 'cat'/ },
  },
  queue: { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 12 }] } },
  'queue + momentum': { recipe: { sources: [{ type: 'in-batch' }, { type: 'queue', size: 12, momentum: 0.9 }] } },
  'same-tower': { recipe: { sources: [{ type: 'in-batch' }, { type: 'same-tower' }] } },
  neighbourhood: { recipe: { sources: [{ type: 'in-batch' }, { type: 'neighbourhood', n: 2, window: 2, temperature: 0.5, maxCandidates: 0, curriculum: { kind: 'constant', max: 0.9 } }] } },
  'mined (file)': {
    recipe: { sources: [{ type: 'in-batch' }, { type: 'mined', from: MINED_FILE, n: 2, sample: 'top' }] },
    refusedBy: { sasrec: NO_VOCAB, 'mean-pool': NO_VOCAB },
  },
  'mined (online)': {
    recipe: { sources: [{ type: 'in-batch' }, { type: 'mined', from: 'online', n: 2, rankRange: [0, 6], refreshEvery: 100 }] },
    refusedBy: {
      sasrec: /sources\.1\.from'.*online mining needs the live model/,
      'mean-pool': /sources\.1\.from'.*online mining needs the live model/,
      'text-boe': /sources\.1\.from'.*online mining is not available for text models/,
      'text-transformer': /sources\.1\.from'.*online mining is not available for text models/,
    },
  },
  'full-catalogue': { recipe: { sources: [{ type: 'full-catalogue' }] }, refusedBy: { 'text-transformer': /field 'sources': a 'full-catalogue' source would run the transformer tower over all 20 documents/ } },
  logQ: { recipe: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 4 }], corrections: { maskSameItem: false, maskSameUser: false, logQ: {} } } },
  maskSameItem: { recipe: { corrections: { maskSameItem: true, maskSameUser: false } } },
  maskSameUser: { recipe: { corrections: { maskSameItem: false, maskSameUser: true } } },
  fnMask: { recipe: { corrections: { maskSameItem: false, maskSameUser: false, fnMask: { threshold: 0.5, margin: 0.2 } } } },
  debiased: { recipe: { loss: { type: 'debiased', tauPlus: 0.1 } } },
  gbce: { recipe: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 5 }], loss: { type: 'gbce', t: 0.75 } } },
  "gbce (reduction 'sum')": { recipe: { sources: [{ type: 'in-batch' }, { type: 'uniform', n: 5 }], loss: { type: 'gbce', t: 0.75, reduction: 'sum' } } },
  symmetric: { recipe: { loss: { symmetric: true } } },
  'same-tower + symmetric': { recipe: { sources: [{ type: 'in-batch' }, { type: 'same-tower' }], loss: { symmetric: true } } },
};

/** What the reference replays over the steps: the queue (with the momentum copy) and the drawn ids. */
interface Run {
  enc: BuiltEncoder;
  recipe: Recipe;
  drawn: Map<number, Int32Array>;
  queue: Array<{ item: number; user: number; emb: Vec }>;
  loss: number;
  /** Query and item vectors before the checked step. */
  q: Vec[];
  itemBefore: (j: number) => Vec;
}

async function run(kind: EncoderKind, b: Backend, recipeJson: object, withRef: boolean): Promise<Run> {
  const recipe = parseRecipe({ ...BASE, ...recipeJson });
  const enc = await kind.build(b, recipe);
  const { step, batch } = enc;
  const d = enc.dim;
  const drawn = new Map<number, Int32Array>();
  step.sources.sources.forEach((s, k) => {
    if (s.usesPositives || s instanceof QueueSource || !s.sample) return;
    const sample = s.sample.bind(s);
    s.sample = (ctx) => {
      const out = sample(ctx);
      drawn.set(k, out.ids.slice());
      return out;
    };
  });
  const qs = recipe.sources.find((s) => s.type === 'queue') as { size: number; momentum: number } | undefined;
  const queue: Run['queue'] = [];
  let head = 0;
  let shadow: Float64Array | null = qs && qs.momentum > 0 ? Float64Array.from(enc.itemTable()) : null;
  for (let t = 0; t < WARM; t++) {
    const pre = Float64Array.from(enc.itemTable());
    step.run(batch, new Rng(100 + t));
    if (!qs) continue;
    const post = enc.itemTable();
    if (shadow) for (let k = 0; k < shadow.length; k++) shadow[k] = qs.momentum * shadow[k] + (1 - qs.momentum) * post[k];
    for (let r = 0; r < batch.rows; r++) {
      const entry = { item: batch.items[r], user: batch.users[r], emb: itemOf(enc, shadow ?? pre, batch.items[r]) };
      if (queue.length < qs.size) queue.push(entry);
      else queue[head] = entry;
      head = (head + 1) % qs.size;
    }
  }
  const q = withRef ? enc.queries() : [];
  const table = Float64Array.from(enc.itemTable());
  const itemBefore = (j: number) => itemOf(enc, table, j);
  const loss = step.run(batch, new Rng(99)).loss;
  return { enc, recipe, drawn, queue, loss, q, itemBefore };
}

/** Item j's score-space vector from a snapshot of the item side (a table row, unless the kind says otherwise). */
const itemOf = (enc: BuiltEncoder, weights: Float64Array, j: number): Vec => (enc.itemFrom ? enc.itemFrom(weights, j) : normRow64(weights, enc.dim, j));

const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

/** The float64 reference of the checked step (see the header). */
function reference(r: Run): number {
  const { recipe, enc } = r;
  const { batch } = enc;
  const B = batch.rows;
  const users = Array.from(batch.users);
  const items = Array.from(batch.items);
  const scale = 1 / recipe.temperature;
  if (recipe.sources.some((s) => s.type === 'full-catalogue')) {
    let total = 0;
    for (let i = 0; i < B; i++) {
      const z = Array.from({ length: enc.numItems }, (_, j) => scale * dot64(r.q[i], r.itemBefore(j)));
      const m = Math.max(...z);
      total += m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) - z[items[i]];
    }
    return total / B;
  }
  const withLogQ = recipe.corrections.logQ !== false;
  const N = enc.numItems;
  const counts = (j: number) =>
    recipe.sources.map((s) => {
      switch (s.type) {
        case 'in-batch':
          return trainFrequencyCount(enc.trainItems, N, j, B);
        case 'uniform':
          return s.n / N;
        case 'popularity':
          return popularityCount(enc.trainItems, N, j, s.n, s.alpha);
        case 'stratified':
          return stratifiedCount(STRATUM, j, s.n);
        case 'queue':
          return trainFrequencyCount(enc.trainItems, N, j, s.size);
        default:
          return 0;
      }
    });
  const logq = (j: number) => (withLogQ ? logMixture(counts(j)) : 0);
  const cols: Col64[] = items.map((j, i) => ({ emb: r.itemBefore(j), item: j, user: users[i], kind: 'positive', logq: logq(j) }));
  for (const [, ids] of [...r.drawn.entries()].sort((a, b) => a[0] - b[0])) for (const j of ids) cols.push({ emb: r.itemBefore(j), item: j, user: -1, kind: 'negative', logq: logq(j) });
  for (const e of r.queue) cols.push({ emb: e.emb, item: e.item, user: e.user, kind: 'negative', logq: logq(e.item) });
  const same = recipe.sources.some((s) => s.type === 'same-tower');
  if (same) r.q.forEach((e, k) => cols.push({ emb: e, item: items[k], user: users[k], kind: 'query', logq: 0 }));
  const inBatch = recipe.sources.some((s) => s.type === 'in-batch');
  if (recipe.loss.type === 'gbce') {
    // gSASRec, β = 1 − t(1 − α), α = k/(N − 1): 'sum' [β·softplus(−z_pos) + Σ_unmasked negatives softplus(z_neg)] / (k + 1);
    // 'mean' β·softplus(−z_pos) + (1/k) Σ softplus(z_neg).
    let total = 0;
    for (let i = 0; i < B; i++) {
      const zPos = scale * dot64(r.q[i], cols[i].emb) - cols[i].logq;
      const neg: number[] = [];
      cols.forEach((c, j) => {
        if (j === i || (c.kind === 'positive' && !inBatch)) return;
        if (recipe.corrections.maskSameItem && c.item === items[i]) return;
        if (inBatch && recipe.corrections.maskSameUser && c.user >= 0 && c.user === users[i]) return;
        neg.push(scale * dot64(r.q[i], c.emb) - c.logq);
      });
      const k = neg.length;
      const alpha = Math.min(1, k / (N - 1));
      const beta = 1 - recipe.loss.t * (1 - alpha);
      const negSum = neg.reduce((s, z) => s + softplus(z), 0);
      total += recipe.loss.reduction === 'sum' ? (beta * softplus(-zPos) + negSum) / (k + 1) : beta * softplus(-zPos) + negSum / Math.max(k, 1);
    }
    return total / B;
  }
  const fn = recipe.corrections.fnMask;
  return stepLoss64(
    {
      temperature: recipe.temperature,
      inBatch,
      maskSameItem: recipe.corrections.maskSameItem,
      maskSameUser: recipe.corrections.maskSameUser,
      fnMask: fn ? fn : null,
      loss: { type: recipe.loss.type === 'debiased' ? 'debiased' : 'infonce', tauPlus: recipe.loss.tauPlus, symmetric: recipe.loss.symmetric },
      sameTower: same,
    },
    users,
    items,
    r.q,
    cols,
  );
}

for (const kind of ENCODER_KINDS) {
  test(`engine matrix, ${kind.name}: the no-op recipe matches the float64 reference`, async () => {
    const b = await createJsBackend({ wasm: false });
    const base = await run(kind, b, {}, true);
    const ref = reference(base);
    assert.ok(Math.abs(base.loss - ref) <= 2e-4 * (1 + Math.abs(ref)), `${kind.name} in-batch: step ${base.loss} vs reference ${ref}`);
  });
  for (const [name, m] of Object.entries(MODULES)) {
    test(`engine matrix, ${kind.name} × ${name}: changes the loss and matches the float64 reference, or is refused naming the field`, async () => {
      const b = await createJsBackend({ wasm: false });
      const refused = m.refusedBy?.[kind.name];
      if (refused) {
        await assert.rejects(
          () => run(kind, b, m.recipe, false),
          (e: unknown) => e instanceof UserError && refused.test(e.message) && !e.message.includes('\n'),
          `${kind.name} × ${name} must be refused with a message matching ${refused}`,
        );
        return;
      }
      const base = await run(kind, b, {}, false);
      const got = await run(kind, b, m.recipe, true);
      assert.ok(Number.isFinite(got.loss), `${name}: loss ${got.loss}`);
      assert.ok(Math.abs(got.loss - base.loss) > 1e-6, `${kind.name} × ${name}: the module does not change the loss (${got.loss} vs no-op ${base.loss})`);
      const ref = reference(got);
      assert.ok(Number.isFinite(ref), `reference ${ref}`);
      assert.ok(Math.abs(got.loss - ref) <= 2e-4 * (1 + Math.abs(ref)), `${kind.name} × ${name}: step ${got.loss} vs float64 reference ${ref}`);
    });
  }
}
