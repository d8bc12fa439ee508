/**
 * The backends a numerical test runs on: the portable JS path (scalar; with `wasm`, also TF.js-WASM) and the
 * native addon when it loads, so every kernel is checked on each path the product can take.
 */
import type { Backend } from '../../src/compute/backend.ts';
import { createJsBackend } from '../../src/compute/js.ts';

export async function testBackends(opts: { wasm?: boolean } = {}): Promise<Backend[]> {
  const list: Backend[] = [await createJsBackend({ wasm: false })];
  if (opts.wasm) list.push(await createJsBackend());
  const mod = await import('../../src/compute/native.ts').catch(() => null);
  const n = mod?.loadNativeBackend() ?? null;
  if (n) list.push(n);
  return list;
}
