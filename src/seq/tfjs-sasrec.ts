/**
 * The same SASRec step written with TF.js autograd, kept only to measure the alternative the hand-written
 * tower (sasrec.ts) was chosen over. As TF.js's WASM backend lacks some gradient kernels (gather's), item rows
 * are gathered outside TF.js and fed in as variables; their gradients go to the same sparse lazy-Adam table
 * update, the dense weights to TF.js's Adam. Padded B×L batches with a causal mask (the TF.js idiom; the
 * throughput bench uses full-length sequences, so padding costs nothing extra here).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Backend } from '../compute/backend.ts';
import { EmbeddingTable } from '../model/embedding-table.ts';
import { Rng } from '../util/rng.ts';

export interface TfjsSasRecOptions {
  numItems: number;
  dim: number;
  maxLen: number;
  blocks: number;
  heads: number;
  dropout: number;
  lr: number;
  /** 'wasm' (default; single-threaded under Node) or 'cpu'. */
  tfBackend?: 'wasm' | 'cpu';
}

export interface TfjsTimer {
  backend: string;
  /** One training step on B full-length sequences of random items (BCE with one random negative per position). */
  step(items: Int32Array, targets: Int32Array, negatives: Int32Array, B: number): number;
}

/**
 * tfjs-core's Node (CommonJS) build registers no gradient functions — the umbrella @tensorflow/tfjs package
 * imports them from the ES-module build, which Node cannot load (directory imports). Bundle that module with
 * esbuild (a dependency of tsx) and run it: TF.js keeps its engine and registries on globalThis, so the
 * registrations reach the loaded tfjs-core.
 */
function registerGradients(): void {
  const g = globalThis as { __towerlabTfGrads?: boolean };
  if (g.__towerlabTfGrads) return;
  const require = createRequire(import.meta.url);
  const esbuild = require('esbuild');
  const entry = join(dirname(require.resolve('@tensorflow/tfjs-core/package.json')), 'dist', 'register_all_gradients.js');
  const out = esbuild.buildSync({ entryPoints: [entry], bundle: true, format: 'cjs', platform: 'node', write: false, logLevel: 'silent' });
  const mod = { exports: {} };
  new Function('require', 'module', 'exports', out.outputFiles[0].text)(require, mod, mod.exports);
  g.__towerlabTfGrads = true;
}

export async function tfjsSasRec(o: TfjsSasRecOptions, nodeBackend: Backend): Promise<TfjsTimer> {
  const tf = await import('@tensorflow/tfjs-core');
  registerGradients();
  await import('@tensorflow/tfjs-backend-cpu');
  let name = o.tfBackend ?? 'wasm';
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
    if (!(await tf.setBackend('wasm'))) name = 'cpu';
  }
  if (name === 'cpu') await tf.setBackend('cpu');
  await tf.ready();
  const { dim: d, maxLen: L, heads: H } = o;
  const dh = d / H;
  const rng = new Rng(1);
  const glorot = (i: number, j: number) => tf.variable(tf.tensor2d(Float32Array.from({ length: i * j }, () => rng.normal() * Math.sqrt(2 / (i + j))), [i, j]));
  const zeros = (n: number) => tf.variable(tf.zeros([n]));
  const ones = (n: number) => tf.variable(tf.ones([n]));
  const table = new EmbeddingTable('item', o.numItems, d, { kind: 'lazyadam', lr: o.lr, beta1: 0.9, beta2: 0.98, eps: 1e-8 });
  table.initNormal(rng, 0.05);
  const pos = tf.variable(tf.randomNormal([L, d], 0, 0.1));
  const blocks = Array.from({ length: o.blocks }, () => ({
    g1: ones(d), b1: zeros(d), g2: ones(d), b2: zeros(d),
    wq: glorot(d, d), bq: zeros(d), wk: glorot(d, d), bk: zeros(d), wv: glorot(d, d), bv: zeros(d), wo: glorot(d, d), bo: zeros(d),
    w1: glorot(d, d), c1: zeros(d), w2: glorot(d, d), c2: zeros(d),
  }));
  const gF = ones(d);
  const bF = zeros(d);
  const causal = tf.tensor2d(Float32Array.from({ length: L * L }, (_, k) => (k % L > Math.floor(k / L) ? -1e9 : 0)), [L, L]);
  const opt = tf.train.adam(o.lr, 0.9, 0.98, 1e-8);
  const ln = (x: any, g: any, b: any) => {
    // Mean has no gradient kernel on WASM: sums instead.
    const c = tf.sub(x, tf.mul(tf.sum(x, -1, true), 1 / d));
    const variance = tf.mul(tf.sum(tf.square(c), -1, true), 1 / d);
    return tf.add(tf.mul(tf.div(c, tf.sqrt(tf.add(variance, 1e-8))), g), b);
  };
  const dense = (x2: any, w: any, b: any) => tf.add(tf.matMul(x2, w), b);
  const drop = (x: any) => (o.dropout > 0 ? tf.dropout(x, o.dropout) : x);
  return {
    backend: `tfjs-${tf.getBackend()}`,
    step(items, targets, negatives, B) {
      const R = B * L;
      const rows = (ids: Int32Array) => {
        const out = new Float32Array(R * d);
        nodeBackend.gatherRows(table.data, ids, out, d);
        return tf.variable(tf.tensor2d(out, [R, d]));
      };
      const xin = rows(items);
      const ep = rows(targets);
      const en = rows(negatives);
      const { value, grads } = tf.variableGrads(() => {
        let x: any = tf.add(tf.mul(tf.reshape(xin, [B, L, d]), Math.sqrt(d)), pos);
        x = drop(x);
        for (const p of blocks) {
          const a = ln(x, p.g1, p.b1);
          const a2 = tf.reshape(a, [R, d]);
          const x2 = tf.reshape(x, [R, d]);
          const heads = (t: any) => tf.transpose(tf.reshape(t, [B, L, H, dh]), [0, 2, 1, 3]);
          const Q = heads(dense(a2, p.wq, p.bq));
          const K = heads(dense(x2, p.wk, p.bk));
          const V = heads(dense(x2, p.wv, p.bv));
          const S = tf.add(tf.mul(tf.matMul(Q, K, false, true), 1 / Math.sqrt(dh)), causal);
          const P = drop(tf.softmax(S));
          const O = tf.reshape(tf.transpose(tf.matMul(P, V), [0, 2, 1, 3]), [R, d]);
          const y1 = tf.add(a2, dense(O, p.wo, p.bo));
          const b = ln(y1, p.g2, p.b2);
          const f = drop(dense(drop(tf.relu(dense(b, p.w1, p.c1))), p.w2, p.c2));
          x = tf.reshape(tf.add(b, f), [B, L, d]);
        }
        const h = tf.reshape(ln(x, gF, bF), [R, d]);
        const sp = tf.sum(tf.mul(h, ep), -1);
        const sn = tf.sum(tf.mul(h, en), -1);
        return tf.mul(tf.sum(tf.add(tf.softplus(tf.neg(sp)), tf.softplus(sn))), 1 / R) as any;
      });
      const loss = (value.dataSync() as Float32Array)[0];
      const rowGrads = [xin, ep, en].map((v) => grads[v.name].dataSync() as Float32Array);
      const ids = new Int32Array(3 * R);
      ids.set(items);
      ids.set(targets, R);
      ids.set(negatives, 2 * R);
      const g = new Float32Array(3 * R * d);
      rowGrads.forEach((a, k) => g.set(a, k * R * d));
      table.applyGradients(nodeBackend, ids, g);
      const denseGrads: Record<string, any> = {};
      for (const [k, v] of Object.entries(grads)) if (k !== xin.name && k !== ep.name && k !== en.name) denseGrads[k] = v;
      opt.applyGradients(denseGrads);
      tf.dispose([value, ...Object.values(grads), xin, ep, en]);
      return loss;
    },
  };
}
