/**
 * Layer normalisation over the last dimension (Ba et al. 2016), per row x of width d:
 *   μ = mean(x),  σ = √(var(x) + ε),  x̂ = (x − μ)/σ,  y = γ ⊙ x̂ + β.
 * Backward, with g = dy ⊙ γ:  dx = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ;  dγ += Σ_rows dy ⊙ x̂;  dβ += Σ_rows dy.
 * Keeps x̂ and 1/σ of the last forward for the backward pass.
 */
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
  forward(x: Float32Array, y: Float32Array, rows: number): void {
    const d = this.dim;
    if (this.xhat.length < rows * d) {
      this.xhat = new Float32Array(Math.ceil(rows * 1.5) * d);
      this.rstd = new Float32Array(Math.ceil(rows * 1.5));
    }
    this.rows = rows;
    const g = this.gamma.p;
    const b = this.beta.p;
    const xh = this.xhat;
    const rstd = this.rstd;
    const eps = this.eps;
    for (let r = 0; r < rows; r++) {
      const o = r * d;
      let sum = 0;
      let sq = 0;
      for (let k = 0; k < d; k++) {
        const v = x[o + k];
        sum += v;
        sq += v * v;
      }
      const mu = sum / d;
      const v = Math.max(0, sq / d - mu * mu);
      const rs = 1 / Math.sqrt(v + eps);
      rstd[r] = rs;
      for (let k = 0; k < d; k++) {
        const h = (x[o + k] - mu) * rs;
        xh[o + k] = h;
        y[o + k] = g[k] * h + b[k];
      }
    }
  }

  /** dx from dy (the last forward's rows), or dx += it with `accumulate`; accumulates dγ, dβ. dx may alias dy. */
  backward(dy: Float32Array, dx: Float32Array, accumulate = false): void {
    const d = this.dim;
    const g = this.gamma.p;
    const dg = this.gamma.g;
    const db = this.beta.g;
    const xh = this.xhat;
    for (let r = 0; r < this.rows; r++) {
      const o = r * d;
      let mg = 0;
      let mgx = 0;
      for (let k = 0; k < d; k++) {
        const dyk = dy[o + k];
        const h = xh[o + k];
        dg[k] += dyk * h;
        db[k] += dyk;
        const gk = dyk * g[k];
        mg += gk;
        mgx += gk * h;
      }
      mg /= d;
      mgx /= d;
      const rs = this.rstd[r];
      if (accumulate) for (let k = 0; k < d; k++) dx[o + k] += (dy[o + k] * g[k] - mg - xh[o + k] * mgx) * rs;
      else for (let k = 0; k < d; k++) dx[o + k] = (dy[o + k] * g[k] - mg - xh[o + k] * mgx) * rs;
    }
  }
}
