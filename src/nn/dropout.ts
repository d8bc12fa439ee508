/**
 * Inverted dropout (Srivastava et al. 2014): in training, y = x · m / (1 − p) with m ~ Bernoulli(1 − p)
 * per element; identity at inference. The mask of the last forward is kept for the backward pass
 * (dx = dy · m / (1 − p)). The mask comes from a local xorshift32 stream seeded from the caller's generator
 * (one draw per forward), two 16-bit uniforms per step (Backend.dropoutForward: native or portable, same mask).
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';

export class Dropout {
  private mask = new Uint8Array(0);
  private n = 0;
  private active = false;

  constructor(readonly p: number) {
    if (!(p >= 0 && p < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${p}`);
  }

  /** In place on x[0, n) when training; returns x. */
  forward(b: Backend, x: Float32Array, n: number, train: boolean, rng: Rng): Float32Array {
    this.active = train && this.p > 0;
    this.n = n;
    if (!this.active) return x;
    if (this.mask.length < n) this.mask = new Uint8Array(Math.ceil(n * 1.5));
    b.dropoutForward(x, this.mask, n, this.p, (rng.u32() | 1) >>> 0);
    return x;
  }

  /** out[i] = dy[i] · m[i] / (1 − p) for the last forward's n elements (out may alias dy). */
  backwardInto(b: Backend, dy: Float32Array, out: Float32Array): Float32Array {
    if (!this.active) {
      if (out !== dy) out.set(dy.subarray(0, this.n));
      return out;
    }
    b.dropoutBackward(dy, this.mask, out, this.n, this.p);
    return out;
  }

  /** In place on dy[0, n) of the last forward. */
  backward(b: Backend, dy: Float32Array): Float32Array {
    return this.backwardInto(b, dy, dy);
  }
}
