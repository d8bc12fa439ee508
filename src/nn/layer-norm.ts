/**
 * Layer normalisation over the last dimension (Ba et al. 2016), per row x of width d:
 *   μ = mean(x),  σ = √(var(x) + ε),  x̂ = (x − μ)/σ,  y = γ ⊙ x̂ + β.
 * Backward, with g = dy ⊙ γ:  dx = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ;  dγ += Σ_rows dy ⊙ x̂;  dβ += Σ_rows dy.
 * Both run on the backend (Backend.layerNormForward/Backward: native kernel or the portable loops); x̂ and 1/σ of
 * the last forward are kept for the backward pass.
 */
import type { Backend } from '../compute/backend.ts';
import { Param } from './param.ts';

export class LayerNorm {
  readonly gamma: Param;
  readonly beta: Param;
  private xhat = new Float32Array(0);
  private rstd = new Float32Array(0);
  private rows = 0;

  constructor(
    name: string,
    readonly dim: number,
    readonly eps = 1e-8,
  ) {
    this.gamma = new Param(`${name}.gamma`, dim).fill(1);
    this.beta = new Param(`${name}.beta`, dim);
  }

  params(): Param[] {
    return [this.gamma, this.beta];
  }

  /** y = LN(x) for `rows` rows; y may not alias x. */
  forward(b: Backend, x: Float32Array, y: Float32Array, rows: number): void {
    const d = this.dim;
    if (this.xhat.length < rows * d) {
      this.xhat = new Float32Array(Math.ceil(rows * 1.5) * d);
      this.rstd = new Float32Array(Math.ceil(rows * 1.5));
    }
    this.rows = rows;
    b.layerNormForward(x, this.gamma.p, this.beta.p, y, this.xhat, this.rstd, rows, d, this.eps);
  }

  /** dx from dy (the last forward's rows), or dx += it with `accumulate`; accumulates dγ, dβ. dx may alias dy. */
  backward(b: Backend, dy: Float32Array, dx: Float32Array, accumulate = false): void {
    b.layerNormBackward(dy, this.gamma.p, this.xhat, this.rstd, dx, this.gamma.g, this.beta.g, this.rows, this.dim, accumulate);
  }
}
