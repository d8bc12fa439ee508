/** Planted sequential data for tests: next-item chains a sequence model can learn. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Rng } from '../../src/util/rng.ts';

/**
 * 48 items in 6 chains of 8; each user walks one chain (wrapping) from a random start, 5–10 items. Writes
 * `chains-<users>-<seed>.txt` ("user item item …" lines, items 1-based) in `dir` and returns its path.
 */
export function writeChainFile(dir: string, users: number, seed: number): string {
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let u = 0; u < users; u++) {
    const chain = rng.int(6);
    let p = rng.int(8);
    const len = 5 + rng.int(6);
    const items: number[] = [];
    for (let k = 0; k < len; k++) {
      items.push(chain * 8 + p + 1);
      p = (p + 1) % 8;
    }
    lines.push(`u${u} ${items.join(' ')}`);
  }
  const path = join(dir, `chains-${users}-${seed}.txt`);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}
