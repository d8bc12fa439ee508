/**
 * The loss chain (columns → scale → logQ → masks → softmax CE) against the float64 step-by-step reference,
 * on every available backend, plus tests that fail when a correction is a no-op.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createJsBackend } from '../src/compute/js.ts';
import type { Backend } from '../src/compute/backend.ts';
import { ColumnBuilder } from '../src/loss/columns.ts';
import { SampledSoftmax } from '../src/loss/sampled-softmax.ts';
import { applyKeyMask, applyLogQ, logits, logitsBackward, softmaxCrossEntropy } from '../src/loss/reference.ts';
import { TrainFrequency } from '../src/sampling/frequency.ts';
import { InBatchSource } from '../src/sampling/in-batch.ts';
import { UniformSource } from '../src/sampling/uniform.ts';
import type { NegativeSource } from '../src/sampling/source.ts';
import { Rng } from '../src/util/rng.ts';

async function backends(): Promise<Backend[]> {
  const list = [await createJsBackend({ wasm: false }), await createJsBackend()];
  const mod = await import('../src/compute/native.ts').catch(() => null);
  const n = mod?.loadNativeBackend() ?? null;
  if (n) list.push(n);
  return list;
}

function unitRows(rng: Rng, n: number, d: number): Float32Array {
  const a = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) {
      a[i * d + k] = rng.normal();
      s += a[i * d + k] ** 2;
    }
    for (let k = 0; k < d; k++) a[i * d + k] /= Math.sqrt(s);
  }
  return a;
}

interface Case {
  users: Int32Array;
  items: Int32Array;
  sources: NegativeSource[];
  logQ: boolean;
  maskSameItem: boolean;
  maskSameUser: boolean;
}

/** Runs the production path and the float64 reference chain on the same batch. */
function runBoth(backend: Backend, c: Case, seed: number, d = 8, temperature = 0.1) {
  const rng = new Rng(seed);
  const B = c.users.length;
  const cols = new ColumnBuilder(c.sources).build({ users: c.users, items: c.items, step: 1, rng: new Rng(seed + 1) }, c.logQ);
  const N = cols.N;
  const q = unitRows(rng, B, d);
  const cand = unitRows(rng, N, d);
  const loss = new SampledSoftmax({ temperature, logQ: c.logQ, maskSameItem: c.maskSameItem, maskSameUser: c.maskSameUser });
  const got = loss.run(backend, q, cand, d, c.users, c.items, cols);
  const pos = Array.from({ length: B }, (_, i) => i);
  let z = logits(q, cand, B, N, d, 1 / temperature);
  if (c.logQ) z = applyLogQ(z, B, N, cols.logq);
  if (c.maskSameItem) z = applyKeyMask(z, B, N, pos, c.items, cols.ids);
  if (cols.blockKey) z = applyKeyMask(z, B, N, pos, new Int32Array(B), cols.blockKey);
  else if (c.maskSameUser) z = applyKeyMask(z, B, N, pos, c.users, cols.userKey);
  const ref = softmaxCrossEntropy(z, B, N, pos);
  const g = logitsBackward(ref.dz, q, cand, B, N, d, 1 / temperature);
  return { got, ref: ref.loss, dq: loss.dq.slice(0, B * d), dc: loss.dc.slice(0, N * d), rdq: g.dq, rdc: g.dc, cols };
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

// A batch with planted collisions: item 3 twice, user 1 three times.
const users = Int32Array.from([0, 1, 1, 2, 1, 4, 5, 6]);
const items = Int32Array.from([3, 7, 8, 3, 9, 10, 11, 12]);
const freq = new TrainFrequency(Int32Array.from([3, 3, 3, 3, 7, 8, 9, 10, 11, 12, 3, 7]), 20);

const cases: Array<[string, Case]> = [
  ['plain in-batch', { users, items, sources: [new InBatchSource(freq)], logQ: false, maskSameItem: false, maskSameUser: false }],
  ['masks', { users, items, sources: [new InBatchSource(freq)], logQ: false, maskSameItem: true, maskSameUser: true }],
  ['masks + logQ', { users, items, sources: [new InBatchSource(freq)], logQ: true, maskSameItem: true, maskSameUser: true }],
  ['mixed in-batch + uniform + logQ', { users, items, sources: [new InBatchSource(freq), new UniformSource(20, 6)], logQ: true, maskSameItem: true, maskSameUser: true }],
  ['uniform only', { users, items, sources: [new UniformSource(20, 6)], logQ: true, maskSameItem: true, maskSameUser: true }],
];

for (const [name, c] of cases) {
  test(`loss chain matches the float64 reference: ${name}`, async () => {
    for (const b of await backends()) {
      const r = runBoth(b, c, 11);
      assert.ok(Math.abs(r.got - r.ref) < 1e-4 * (1 + r.ref), `${b.name}: loss ${r.got} vs ${r.ref}`);
      assertClose(r.dq, r.rdq, 2e-4, `${b.name} dq`);
      assertClose(r.dc, r.rdc, 2e-4, `${b.name} dc`);
    }
  });
}

test('accidental-hit masking changes the loss when collisions exist (not a no-op)', async () => {
  const b = await createJsBackend({ wasm: false });
  const off = runBoth(b, cases[0][1], 5);
  const on = runBoth(b, { ...cases[0][1], maskSameItem: true }, 5);
  const onUser = runBoth(b, { ...cases[0][1], maskSameUser: true }, 5);
  assert.ok(Math.abs(off.got - on.got) > 1e-4, 'same-item mask must change the loss');
  assert.ok(Math.abs(off.got - onUser.got) > 1e-4, 'same-user mask must change the loss');
  // Masked entries get exactly zero gradient: row 0 (item 3) vs column 3 (item 3 again).
  const d = 8;
  const r = runBoth(b, { ...cases[0][1], maskSameItem: true }, 5, d);
  let only = 0;
  for (let k = 0; k < d; k++) only += Math.abs(r.rdc[3 * d + k]);
  assert.ok(only > 0, 'column 3 still gets gradient from other rows');
});

test('logQ subtracts log(B·p) per column: popular negatives get a smaller logit, and it is not a no-op', async () => {
  const b = await createJsBackend({ wasm: false });
  const noQ = runBoth(b, cases[1][1], 9);
  const withQ = runBoth(b, cases[2][1], 9);
  assert.ok(Math.abs(noQ.got - withQ.got) > 1e-4, 'logQ must change the loss');
  // Item 3 is the most frequent in training: its log expected count is the largest.
  const lq = withQ.cols.logq;
  for (let j = 1; j < 8; j++) if (items[j] !== 3) assert.ok(lq[0] > lq[j], `logq of item 3 (${lq[0]}) > item ${items[j]} (${lq[j]})`);
});

test('mixture logQ: an item in both sources gets log(B·p + n/N)', () => {
  const src = [new InBatchSource(freq), new UniformSource(20, 6)];
  const cols = new ColumnBuilder(src).build({ users, items, step: 1, rng: new Rng(1) }, true);
  const a = new Float32Array(1);
  freq.logExpectedCount(Int32Array.of(items[0]), users.length, a);
  const expected = Math.log(Math.exp(a[0]) + 6 / 20);
  assert.ok(Math.abs(cols.logq[0] - expected) < 1e-5, `${cols.logq[0]} vs ${expected}`);
});

test('without an in-batch source the other positives are not negatives', async () => {
  const b = await createJsBackend({ wasm: false });
  const r = runBoth(b, cases[4][1], 3);
  assert.ok(r.cols.blockKey, 'block mask present');
  // Gradient w.r.t. candidate j<B comes only from its own row: dc_j = scale·(p_jj − 1)·q_j, never from other rows.
  const r2 = runBoth(b, { ...cases[4][1], sources: [new InBatchSource(freq), new UniformSource(20, 6)] }, 3);
  assert.notDeepEqual(Array.from(r.dc.slice(0, 8)), Array.from(r2.dc.slice(0, 8)));
});

test('finite differences: dL/dq of the production loss', async () => {
  const b = await createJsBackend({ wasm: false });
  const c = cases[3][1];
  const B = c.users.length;
  const d = 4;
  const rng = new Rng(21);
  const cols = new ColumnBuilder(c.sources).build({ users: c.users, items: c.items, step: 1, rng: new Rng(22) }, true);
  const q = unitRows(rng, B, d);
  const cand = unitRows(rng, cols.N, d);
  const loss = new SampledSoftmax({ temperature: 0.5, logQ: true, maskSameItem: true, maskSameUser: true });
  loss.run(b, q, cand, d, c.users, c.items, cols);
  const dq = loss.dq.slice(0, B * d);
  const h = 1e-2;
  for (const idx of [0, 5, 13, 30]) {
    const qp = q.slice();
    qp[idx] += h;
    const qm = q.slice();
    qm[idx] -= h;
    const lp = loss.run(b, qp, cand, d, c.users, c.items, cols);
    const lm = loss.run(b, qm, cand, d, c.users, c.items, cols);
    const fd = (lp - lm) / (2 * h);
    assert.ok(Math.abs(fd - dq[idx]) < 2e-3, `dq[${idx}] ${dq[idx]} vs finite difference ${fd}`);
  }
});
