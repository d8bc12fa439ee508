/**
 * A dense parameter tensor with its gradient and Adam state (Kingma & Ba), stepped through the backend.
 * Used by the sequence towers for layer norms, position embeddings and attention/FFN weights.
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';

export class Param {
  readonly p: Float32Array;
  readonly g: Float32Array;
  readonly m: Float32Array;
  readonly v: Float32Array;
  step = 0;

  constructor(
    readonly name: string,
    readonly size: number,
  ) {
    this.p = new Float32Array(size);
    this.g = new Float32Array(size);
    this.m = new Float32Array(size);
    this.v = new Float32Array(size);
  }

  fill(x: number): this {
    this.p.fill(x);
    return this;
  }

  normal(rng: Rng, std: number): this {
    for (let i = 0; i < this.size; i++) this.p[i] = rng.normal() * std;
    return this;
  }

  adamStep(backend: Backend, lr: number, b1: number, b2: number, eps = 1e-8): void {
    this.step++;
    backend.adam(this.p, this.g, this.m, this.v, lr, b1, b2, eps, this.step);
    this.g.fill(0);
  }
}
