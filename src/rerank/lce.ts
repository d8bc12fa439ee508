/**
 * The LCE reranker (Localized Contrastive Estimation, Gao, Dai & Callan, ECIR 2021): an MLP scoring
 * (user, candidate) feature vectors (rerank/features.ts), trained on groups of one positive and G − 1
 * negatives sampled from the TARGET retriever's top-k, with softmax cross-entropy over each group:
 *   L = −(1/Q) Σ_q log( exp(s_q0 / τ) / Σ_{g<G} exp(s_qg / τ) ),   positive at index 0 of its group.
 * dL/ds_qg = (softmax_qg − 1[g = 0]) / (τ Q). Dense layers (model/dense-layer.ts) with Adam.
 */
import type { Backend } from '../compute/backend.ts';
import { DenseLayer } from '../model/dense-layer.ts';
import { Rng } from '../util/rng.ts';

export interface LceConfig {
  inDim: number;
  hidden: number[];
  /** Softmax temperature of the group loss. */
  temperature: number;
  lr: number;
  seed: number;
}

/** Group softmax cross-entropy: scores Q×G (positive first); writes dScores; returns the mean loss. */
export function lceLoss(scores: Float32Array, Q: number, G: number, temperature: number, dScores: Float32Array | null): number {
  let loss = 0;
  for (let q = 0; q < Q; q++) {
    const o = q * G;
    let m = -Infinity;
    for (let g = 0; g < G; g++) m = Math.max(m, scores[o + g] / temperature);
    let z = 0;
    for (let g = 0; g < G; g++) z += Math.exp(scores[o + g] / temperature - m);
    const lse = m + Math.log(z);
    loss += lse - scores[o] / temperature;
    if (dScores) for (let g = 0; g < G; g++) dScores[o + g] = (Math.exp(scores[o + g] / temperature - lse) - (g === 0 ? 1 : 0)) / (temperature * Q);
  }
  return loss / Q;
}

export class LceReranker {
  readonly layers: DenseLayer[];
  private acts: Float32Array[] = [];
  private grads: Float32Array[] = [];
  private rows = 0;

  constructor(
    private readonly backend: Backend,
    readonly config: LceConfig,
  ) {
    const sizes = [config.inDim, ...config.hidden, 1];
    this.layers = sizes.slice(1).map((out, i) => new DenseLayer(sizes[i], out, i < sizes.length - 2));
    const rng = new Rng(config.seed);
    for (const l of this.layers) l.init(rng);
  }

  private ensure(rows: number): void {
    if (this.rows >= rows) return;
    this.rows = rows;
    this.acts = this.layers.map((l) => new Float32Array(rows * l.outDim));
    this.grads = this.layers.map((l) => new Float32Array(rows * l.inDim));
  }

  /** Scores of `rows` feature vectors (rows × inDim); the returned view is valid until the next call. */
  forward(x: Float32Array, rows: number): Float32Array {
    this.ensure(rows);
    let h = x;
    this.layers.forEach((l, i) => {
      const y = this.acts[i].subarray(0, rows * l.outDim);
      l.forward(this.backend, h, y, rows);
      h = y;
    });
    return h;
  }

  /** Back-propagates dScores (rows) through the last forward(x, rows); accumulates the layers' gradients. */
  backward(x: Float32Array, dScores: Float32Array, rows: number): void {
    let dy: Float32Array = Float32Array.from(dScores.subarray(0, rows));
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const l = this.layers[i];
      const input = i === 0 ? x : this.acts[i - 1].subarray(0, rows * l.inDim);
      const dx = i === 0 ? null : this.grads[i].subarray(0, rows * l.inDim);
      l.backward(this.backend, input, this.acts[i].subarray(0, rows * l.outDim), dy, dx, rows);
      if (dx) dy = dx;
    }
  }

  zeroGrad(): void {
    for (const l of this.layers) l.zeroGrad();
  }

  step(): void {
    for (const l of this.layers) l.adamStep(this.backend, this.config.lr);
  }

  /** One LCE update on Q groups of G feature rows (positive first): returns the loss before the update. */
  trainGroups(x: Float32Array, Q: number, G: number): number {
    const s = this.forward(x, Q * G);
    const ds = new Float32Array(Q * G);
    const loss = lceLoss(s, Q, G, this.config.temperature, ds);
    this.zeroGrad();
    this.backward(x, ds, Q * G);
    this.step();
    return loss;
  }
}
