/**
 * Inverted dropout (Srivastava et al. 2014): in training, y = x · m / (1 − p) with m ~ Bernoulli(1 − p)
 * per element; identity at inference. The mask of the last forward is kept for the backward pass
 * (dx = dy · m / (1 − p)). Draws 16-bit uniforms, two per step of a local xorshift32 stream seeded from the
 * caller's generator.
 */
import type { Rng } from '../util/rng.ts';

export class Dropout {
  private mask = new Uint8Array(0);
  private n = 0;
  private active = false;

  constructor(readonly p: number) {
    if (!(p >= 0 && p < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${p}`);
  }

  /** In place on x[0, n) when training; returns x. */
  forward(x: Float32Array, n: number, train: boolean, rng: Rng): Float32Array {
    this.active = train && this.p > 0;
    this.n = n;
    if (!this.active) return x;
    if (this.mask.length < n) this.mask = new Uint8Array(Math.ceil(n * 1.5));
    const thr = Math.round(this.p * 65536);
    const s = 1 / (1 - this.p);
    const m = this.mask;
    // A local xorshift32 stream seeded from the caller's generator: reproducible, and no call per element.
    let z = rng.u32() | 1;
    for (let i = 0; i < n; i += 2) {
      z ^= z << 13;
      z ^= z >>> 17;
      z ^= z << 5;
      const a = (z & 0xffff) >= thr ? 1 : 0;
      m[i] = a;
      x[i] = a ? x[i] * s : 0;
      if (i + 1 < n) {
        const b = (z >>> 16) >= thr ? 1 : 0;
        m[i + 1] = b;
        x[i + 1] = b ? x[i + 1] * s : 0;
      }
    }
    return x;
  }

  /** out[i] = dy[i] · m[i] / (1 − p) for the last forward's n elements (out may alias dy). */
  backwardInto(dy: Float32Array, out: Float32Array): Float32Array {
    if (!this.active) {
      if (out !== dy) out.set(dy.subarray(0, this.n));
      return out;
    }
    const s = 1 / (1 - this.p);
    const m = this.mask;
    for (let i = 0; i < this.n; i++) out[i] = m[i] ? dy[i] * s : 0;
    return out;
  }

  /** In place on dy[0, n) of the last forward. */
  backward(dy: Float32Array): Float32Array {
    if (!this.active) return dy;
    const s = 1 / (1 - this.p);
    const m = this.mask;
    for (let i = 0; i < this.n; i++) dy[i] = m[i] ? dy[i] * s : 0;
    return dy;
  }
}
