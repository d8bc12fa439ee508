/**
 * Picks the compute backend: the native addon when it is built (fast path), else the portable one.
 * TOWERLAB_BACKEND=native|js forces a choice (native fails loudly when the addon is missing).
 */
import type { Backend } from './backend.ts';
import { createJsBackend } from './js.ts';
import { UserError } from '../util/errors.ts';

export type BackendChoice = 'auto' | 'native' | 'js';

const cache = new Map<BackendChoice, Promise<Backend>>();

export function getBackend(choice: BackendChoice = (process.env.TOWERLAB_BACKEND as BackendChoice) || 'auto'): Promise<Backend> {
  let p = cache.get(choice);
  if (!p) {
    p = create(choice);
    cache.set(choice, p);
  }
  return p;
}

async function create(choice: BackendChoice): Promise<Backend> {
  if (choice === 'js') return createJsBackend();
  const native = await import('./native.ts').catch(() => null);
  const b = native?.loadNativeBackend() ?? null;
  if (b) return b;
  if (choice === 'native') {
    throw new UserError(`native backend unavailable: ${native?.nativeLoadError() ?? 'module missing'} (run 'npm rebuild' or 'node scripts/build-native.mjs')`);
  }
  return createJsBackend();
}
