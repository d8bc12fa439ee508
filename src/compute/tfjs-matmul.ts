/**
 * Large matrix products on TF.js's WASM backend (XNNPACK, SIMD), for the portable backend.
 * XNNPACK has no path for a transposed operand (≈2 GFLOPS instead of ≈30), so operands are transposed
 * explicitly first. Returns null when the WASM backend cannot start; callers then use plain loops.
 */
import { createRequire } from 'node:module';
import type { Backend } from './backend.ts';
import { dirname, join } from 'node:path';

export type Matmul = Backend['gemm'];

let cached: Promise<Matmul | null> | null = null;

export function tfjsMatmul(): Promise<Matmul | null> {
  cached ??= start();
  return cached;
}

async function start(): Promise<Matmul | null> {
  try {
    const tf = await import('@tensorflow/tfjs-core');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const require = createRequire(import.meta.url);
    const dist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
    wasm.setWasmPaths(dist);
    if (!(await tf.setBackend('wasm'))) return null;
    await tf.ready();
    return (transA, transB, M, N, K, alpha, a, b, beta, c) => {
      const out = tf.tidy(() => {
        let ta = tf.tensor2d(a.subarray(0, M * K), transA ? [K, M] : [M, K]);
        let tb = tf.tensor2d(b.subarray(0, K * N), transB ? [N, K] : [K, N]);
        if (transA) ta = tf.transpose(ta);
        if (transB) tb = tf.transpose(tb);
        return tf.matMul(ta, tb);
      });
      const r = out.dataSync() as Float32Array;
      out.dispose();
      if (beta === 0 && alpha === 1) c.set(r.subarray(0, M * N));
      else for (let i = 0; i < M * N; i++) c[i] = alpha * r[i] + (beta === 0 ? 0 : beta * c[i]);
    };
  } catch {
    return null;
  }
}
