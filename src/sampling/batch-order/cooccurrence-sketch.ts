/**
 * Item vectors whose dot products estimate item co-occurrence before any model exists (BatchSampler's warm-up
 * proximity): item i's vector is the sum of a random Gaussian code per user who interacted with it, row-normalised,
 * so vᵢ·vⱼ ≈ |Uᵢ ∩ Uⱼ| / √(|Uᵢ|·|Uⱼ|) (cosine of the items' user sets; a Johnson–Lindenstrauss sketch with
 * error ~1/√dim). This lets the warm-up graph reuse the GEMM path of the model graph instead of set intersections.
 */
import { Rng } from '../../util/rng.ts';

export function cooccurrenceSketch(users: Int32Array, items: Int32Array, numItems: number, dim: number, seed: number): Float32Array {
  let numUsers = 0;
  for (let i = 0; i < users.length; i++) if (users[i] >= numUsers) numUsers = users[i] + 1;
  const rng = new Rng(seed);
  const codes = new Float32Array(numUsers * dim);
  for (let i = 0; i < codes.length; i++) codes[i] = rng.normal();
  const out = new Float32Array(numItems * dim);
  for (let r = 0; r < users.length; r++) {
    const u = users[r] * dim;
    const it = items[r] * dim;
    for (let d = 0; d < dim; d++) out[it + d] += codes[u + d];
  }
  for (let i = 0; i < numItems; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += out[i * dim + d] ** 2;
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) out[i * dim + d] *= inv;
  }
  return out;
}
