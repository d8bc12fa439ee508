/** A random full-catalogue softmax problem for the kernel tests (test/full-softmax*.test.ts). */
import { Rng } from '../../src/util/rng.ts';

export interface Problem {
  q: Float32Array;
  e: Float32Array;
  R: number;
  N: number;
  d: number;
  target: Int32Array;
  scale: number;
  w: Float32Array | null;
}

export function problem(seed: number, R: number, N: number, d: number, scale: number, withWeights: boolean): Problem {
  const rng = new Rng(seed);
  const q = new Float32Array(R * d);
  const e = new Float32Array(N * d);
  for (let i = 0; i < q.length; i++) q[i] = rng.normal();
  for (let i = 0; i < e.length; i++) e[i] = rng.normal() * 0.5;
  const target = new Int32Array(R);
  for (let i = 0; i < R; i++) target[i] = rng.int(N);
  let w: Float32Array | null = null;
  if (withWeights) {
    w = new Float32Array(R);
    // Every fifth row is padding (weight 0); the others get weights in [0.5, 1.5).
    for (let i = 0; i < R; i++) w[i] = i % 5 === 3 ? 0 : 0.5 + rng.next();
  }
  return { q, e, R, N, d, target, scale, w };
}
