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

/**
 * Float64 loss and gradients of the definition, from materialised logits: z = scale·q eᵀ, ℓ_i = lse_i − z_i,t,
 * L = Σ w_i ℓ_i / Σ w_i, G = scale·w/Σw·(softmax − onehot), dq = G e, de = Gᵀ q. `round` is applied to every
 * element of q, e and G (the bf16 test passes bfloat16 rounding; identity by default); `q`/`e` replace the
 * problem's (finite differences).
 */
export function softmaxReference(
  p: Problem,
  round: (x: number) => number = (x) => x,
  q0: ArrayLike<number> = p.q,
  e0: ArrayLike<number> = p.e,
): { loss: number; dq: Float64Array; de: Float64Array } {
  const { R, N, d, target, scale, w } = p;
  const q = Float64Array.from(q0, round);
  const e = Float64Array.from(e0, round);
  let den = 0;
  for (let i = 0; i < R; i++) den += w ? w[i] : 1;
  const dq = new Float64Array(R * d);
  const de = new Float64Array(N * d);
  const z = new Float64Array(N);
  let num = 0;
  for (let i = 0; i < R; i++) {
    let mx = -Infinity;
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += q[i * d + k] * e[j * d + k];
      z[j] = scale * s;
      mx = Math.max(mx, z[j]);
    }
    let se = 0;
    for (let j = 0; j < N; j++) se += Math.exp(z[j] - mx);
    const wi = w ? w[i] : 1;
    num += wi * (mx + Math.log(se) - z[target[i]]);
    const c = (scale * wi) / den;
    if (c === 0) continue;
    for (let j = 0; j < N; j++) {
      const g = round(c * (Math.exp(z[j] - mx) / se - (j === target[i] ? 1 : 0)));
      for (let k = 0; k < d; k++) {
        dq[i * d + k] += g * e[j * d + k];
        de[j * d + k] += g * q[i * d + k];
      }
    }
  }
  return { loss: den === 0 ? 0 : num / den, dq, de };
}
