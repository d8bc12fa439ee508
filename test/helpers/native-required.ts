/**
 * The native addon is built at install, so its absence is a failure, not a reason to skip — unless the run says
 * the portable backend is intended (TOWERLAB_NO_NATIVE=1), as test/compute-native.test.ts does.
 * Returns true when the caller should skip (after printing why); fails the test otherwise.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { nativeLoadError } from '../../src/compute/native.ts';

export function skipWithoutNative(t: TestContext, available: boolean): boolean {
  if (available) return false;
  const why = nativeLoadError() ?? 'native addon not loaded';
  if (process.env.TOWERLAB_NO_NATIVE !== '1') assert.fail(`${why} (set TOWERLAB_NO_NATIVE=1 to run without it)`);
  console.log(`# skipping native test: ${why} and TOWERLAB_NO_NATIVE=1`);
  t.skip(`${why}; TOWERLAB_NO_NATIVE=1`);
  return true;
}

/**
 * The `skip` option of a describe() whose tests all need the addon: false when it loaded. When it did not, and
 * TOWERLAB_NO_NATIVE=1 says the portable backend is intended, the reason (also printed); otherwise a failing test
 * "native addon loads" is registered and the suite is skipped pointing at it.
 */
export function nativeSuiteSkip(available: boolean, what: string): string | false {
  if (available) return false;
  const why = nativeLoadError() ?? 'native addon not loaded';
  if (process.env.TOWERLAB_NO_NATIVE === '1') {
    const reason = `native addon unavailable (${why}) and TOWERLAB_NO_NATIVE=1`;
    console.log(`# skipping ${what}: ${reason}`);
    return reason;
  }
  test(`native addon loads (needed by ${what})`, () => assert.fail(`${why} (set TOWERLAB_NO_NATIVE=1 to run without it)`));
  return 'native addon unavailable (see the failing test "native addon loads")';
}
