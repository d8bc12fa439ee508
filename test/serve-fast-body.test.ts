/**
 * POST /recommend's hand-checked body fast path (src/serve/schemas.ts fastRecommendBody) against the zod
 * schema it shortcuts: over generated bodies (valid and invalid values, unknown and extra fields, non-objects),
 * whatever the fast path accepts zod accepts with the same result; every zod-valid body of the fast shape is
 * taken by the fast path; and the parser the server uses answers exactly as zod does (same value, same error).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientError } from '../src/serve/errors.ts';
import { fastRecommendBody, parseBody, recommendBodyParser, recommendSchema } from '../src/serve/schemas.ts';
import { Rng } from '../src/util/rng.ts';

const MAX_K = 1000;
const VALUES: Record<string, unknown[]> = {
  user: ['u1', 'x', '', 'é'.repeat(256), 'y'.repeat(257), 7, 0, -1.5, 1e21, null, true, [], {}, ['u1']],
  k: [1, 10, 1000, 1001, 0, -1, 2.5, '10', null, 1e300, Number.MAX_SAFE_INTEGER + 2, true],
  excludeSeen: [true, false, 'true', 0, null],
  search: ['ann', 'exact', 'hnsw', '', null, 1],
  history: [['i1'], [], 'i1'],
  features: [{ age: '30' }, {}],
  filter: [{ exclude: ['i1'] }, {}],
  exclude_seen: [false],
  K: [10],
};
const KEYS = Object.keys(VALUES);

function randomBody(rng: Rng): unknown {
  const r = rng.int(20);
  if (r === 0) return [null, [], 'u1', 5, [{ user: 'u1' }], true][rng.int(6)];
  const body: Record<string, unknown> = {};
  // Mostly the fast shape (user plus some of k / excludeSeen / search), sometimes anything.
  const keys = r < 12 ? ['user', 'k', 'excludeSeen', 'search'].filter((k, i) => i === 0 || rng.int(2) === 0) : KEYS.filter(() => rng.int(3) === 0);
  for (const k of keys) body[k] = VALUES[k][rng.int(VALUES[k].length)];
  return body;
}

const SCHEMA = recommendSchema(MAX_K);

function zodOutcome(body: unknown): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: parseBody(SCHEMA, body) };
  } catch (e) {
    assert.ok(e instanceof ClientError, `zod path throws a ClientError, got ${e}`);
    return { ok: false, message: `${e.status} ${e.code} ${e.message}` };
  }
}

test('the /recommend body fast path accepts only what zod accepts, with the same value, and takes every zod-valid body of its shape', () => {
  const rng = new Rng(3);
  const parse = recommendBodyParser(MAX_K);
  let fastTaken = 0;
  let zodOnly = 0;
  let refused = 0;
  for (let i = 0; i < 6000; i++) {
    const body = randomBody(rng);
    const fast = fastRecommendBody(body, MAX_K);
    const z = zodOutcome(body);
    const shown = JSON.stringify(body);
    if (fast !== null) {
      fastTaken++;
      assert.ok(z.ok, `fast path accepted ${shown}, zod refuses it`);
      assert.deepEqual(fast, z.value, `fast path and zod disagree on ${shown}`);
    } else if (z.ok) {
      zodOnly++;
      const keys = Object.keys(body as object);
      const fastShape = keys.includes('user') && keys.every((k) => ['user', 'k', 'excludeSeen', 'search'].includes(k));
      assert.ok(!fastShape, `zod accepts ${shown} of the fast shape but the fast path does not`);
    } else refused++;
    // The server's parser: zod's answer in every case, its error message included.
    let got: ReturnType<typeof zodOutcome>;
    try {
      got = { ok: true, value: parse(body) };
    } catch (e) {
      got = { ok: false, message: `${(e as ClientError).status} ${(e as ClientError).code} ${(e as Error).message}` };
    }
    assert.deepEqual(got, z, `the server's parser differs from zod on ${shown}`);
  }
  // Each kind of outcome is exercised (the test is not vacuous).
  assert.ok(fastTaken > 300 && zodOnly > 50 && refused > 1000, `fast ${fastTaken}, zod only ${zodOnly}, refused ${refused}`);
});

test('the fast path answers the bench body and applies the defaults', () => {
  assert.deepEqual(fastRecommendBody({ user: 'u12', k: 10, search: 'ann' }, MAX_K), { user: 'u12', k: 10, excludeSeen: true, search: 'ann' });
  assert.deepEqual(fastRecommendBody({ user: 12 }, MAX_K), { user: '12', k: 10, excludeSeen: true });
  assert.equal(fastRecommendBody({ user: 'u1', k: 11 }, 10), null, 'k over the server max goes to zod (which names the limit)');
  assert.throws(() => recommendBodyParser(10)({ user: 'u1', k: 11 }), /k: must be at most 10/);
  assert.throws(() => recommendBodyParser(10)({ user: 'u1', exclude_seen: false }), /unknown field 'exclude_seen'/);
});
