/**
 * A fully connected layer y = act(x·W + b) with its gradient buffers and Adam state. Weights are plain
 * Float32Arrays driven through the compute backend (see docs/performance.md: the fused native path
 * replaces TF.js autograd for these small MLPs; gradients are checked against finite differences in tests).
 */
import type { Backend } from '../compute/backend.ts';
import type { Rng } from '../util/rng.ts';

export class DenseLayer {
  readonly w: Float32Array;
  readonly b: Float32Array;
  readonly dw: Float32Array;
  readonly db: Float32Array;
  readonly mw: Float32Array;
  readonly vw: Float32Array;
  readonly mb: Float32Array;
  readonly vb: Float32Array;
  step = 0;

  constructor(
    readonly inDim: number,
    readonly outDim: number,
    readonly relu: boolean,
  ) {
    this.w = new Float32Array(inDim * outDim);
    this.b = new Float32Array(outDim);
    this.dw = new Float32Array(inDim * outDim);
    this.db = new Float32Array(outDim);
    this.mw = new Float32Array(inDim * outDim);
    this.vw = new Float32Array(inDim * outDim);
    this.mb = new Float32Array(outDim);
    this.vb = new Float32Array(outDim);
  }

  /** PyTorch's nn.Linear default: U(−1/√in, 1/√in) for weights and bias. */
  init(rng: Rng): void {
    const k = 1 / Math.sqrt(this.inDim);
    for (let i = 0; i < this.w.length; i++) this.w[i] = (rng.next() * 2 - 1) * k;
    for (let i = 0; i < this.b.length; i++) this.b[i] = (rng.next() * 2 - 1) * k;
  }

  forward(backend: Backend, x: Float32Array, y: Float32Array, rows: number): void {
    backend.linearForward(x, this.w, this.b, y, rows, this.inDim, this.outDim, this.relu);
  }

  /** Accumulates dW, db; writes dx when given. dy is modified in place (ReLU gate). */
  backward(backend: Backend, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array | null, rows: number): void {
    backend.linearBackward(x, this.w, y, dy, dx, this.dw, this.db, rows, this.inDim, this.outDim, this.relu);
  }

  zeroGrad(): void {
    this.dw.fill(0);
    this.db.fill(0);
  }

  adamStep(backend: Backend, lr: number, b1 = 0.9, b2 = 0.999, eps = 1e-8, l2 = 0): void {
    this.step++;
    if (l2 > 0) for (let i = 0; i < this.w.length; i++) this.dw[i] += 2 * l2 * this.w[i];
    backend.adam(this.w, this.dw, this.mw, this.vw, lr, b1, b2, eps, this.step);
    backend.adam(this.b, this.db, this.mb, this.vb, lr, b1, b2, eps, this.step);
  }
}

/** Xavier/Glorot normal init of a layer's weights (std √(2/(in+out))), zero bias; returns the layer. */
export function xavier(l: DenseLayer, rng: Rng): DenseLayer {
  const std = Math.sqrt(2 / (l.inDim + l.outDim));
  for (let i = 0; i < l.w.length; i++) l.w[i] = rng.normal() * std;
  l.b.fill(0);
  return l;
}
