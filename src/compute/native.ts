/**
 * The native backend: a thin wrapper over the C++ addon built by scripts/build-native.mjs into
 * build/Release/towerlab.node. The addon checks every argument's type and length itself (and throws an
 * Error naming it), so the wrapper only reshapes arguments; it allocates nothing per call.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

import type { AttentionArgs, Backend, ContrastiveArgs, FullSoftmaxArgs, HistoryPoolArgs } from './backend.ts';

/** The addon's exports (native/addon.cc). Positional arguments, null for an absent optional array. */
interface Addon {
  gemm(tA: boolean, tB: boolean, M: number, N: number, K: number, alpha: number, a: Float32Array, b: Float32Array, beta: number, c: Float32Array): void;
  linearForward(x: Float32Array, w: Float32Array, bias: Float32Array, y: Float32Array, rows: number, inDim: number, outDim: number, relu: boolean): void;
  linearBackward(
    x: Float32Array,
    w: Float32Array,
    y: Float32Array,
    dy: Float32Array,
    dx: Float32Array | null,
    dw: Float32Array,
    dbias: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    relu: boolean,
  ): void;
  l2normForward(x: Float32Array, y: Float32Array, norms: Float32Array, rows: number, dim: number): void;
  l2normBackward(y: Float32Array, norms: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, dim: number): void;
  gatherRows(table: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void;
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, b1: number, b2: number, eps: number, step: number): void;
  sparseUpdate(
    kind: number,
    table: Float32Array,
    state1: Float32Array,
    state2: Float32Array | null,
    ids: Int32Array,
    grads: Float32Array,
    n: number,
    dim: number,
    lr: number,
    b1: number,
    b2: number,
    eps: number,
    step: number,
  ): void;
  contrastive(
    q: Float32Array,
    c: Float32Array,
    B: number,
    N: number,
    d: number,
    pos: Int32Array,
    scale: number,
    colBias: Float32Array | null,
    rowKey0: Int32Array | null,
    colKey0: Int32Array | null,
    rowKey1: Int32Array | null,
    colKey1: Int32Array | null,
    absThreshold: number,
    margin: number,
    rowWeight: Float32Array | null,
    dq: Float32Array | null,
    dc: Float32Array | null,
    maskedCount: Int32Array | null,
  ): number;
  fullSoftmax(
    q: Float32Array,
    e: Float32Array,
    R: number,
    N: number,
    d: number,
    target: Int32Array,
    scale: number,
    rowWeight: Float32Array | null,
    dq: Float32Array | null,
    de: Float32Array | null,
    rowLoss: Float32Array | null,
    bf16: boolean,
  ): number;
  layerNormForward(x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, xhat: Float32Array, rstd: Float32Array, rows: number, dim: number, eps: number): void;
  layerNormBackward(dy: Float32Array, gamma: Float32Array, xhat: Float32Array, rstd: Float32Array, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, rows: number, dim: number, accumulate: boolean): void;
  dropoutForward(x: Float32Array, mask: Uint8Array, n: number, p: number, seed: number): void;
  dropoutBackward(dy: Float32Array, mask: Uint8Array, out: Float32Array, n: number, p: number): void;
  attentionForward(
    Q: Float32Array,
    K: Float32Array,
    V: Float32Array,
    O: Float32Array,
    P: Float32Array,
    Pd: Float32Array | null,
    mask: Uint8Array | null,
    offsets: Int32Array,
    pOff: Int32Array,
    nseq: number,
    heads: number,
    dh: number,
    causal: boolean,
    p: number,
    seed: number,
  ): void;
  attentionBackward(
    dO: Float32Array,
    Q: Float32Array,
    K: Float32Array,
    V: Float32Array,
    P: Float32Array,
    Pd: Float32Array | null,
    mask: Uint8Array | null,
    offsets: Int32Array,
    pOff: Int32Array,
    nseq: number,
    heads: number,
    dh: number,
    causal: boolean,
    p: number,
    dQ: Float32Array,
    dK: Float32Array,
    dV: Float32Array,
  ): void;
  mergeRows(ids: Int32Array, grads: Float32Array, n: number, dim: number, slot: Int32Array, uniq: Int32Array, summed: Float32Array, u0: number): number;
  historyPoolForward(x: Float32Array, n: number, dim: number, table: Float32Array, ids: Int32Array, offsets: Int32Array, cols: Int32Array, gate: number, maxLen: number): void;
  historyPoolBackward(
    dX: Float32Array,
    n: number,
    dim: number,
    tableRows: number,
    ids: Int32Array,
    offsets: Int32Array,
    cols: Int32Array,
    gate: number,
    maxLen: number,
    uniq: Int32Array,
    grads: Float32Array,
  ): number;
  pairwiseLoss(bpr: boolean, q: Float32Array, c: Float32Array, R: number, K: number, d: number, dq: Float32Array, dc: Float32Array): number;
  topkRows(scores: Float32Array, rows: number, cols: number, k: number, outIdx: Int32Array, outVal: Float32Array): void;
  ivfSearch(q: Float32Array, centroids: Float32Array, lists: number, offsets: Int32Array, vectors: Float32Array, ids: Int32Array, dim: number, nprobe: number, k: number, outIdx: Int32Array, outVal: Float32Array): number;
  setThreads(n: number): number;
  setSimd(wide: boolean): string;
  setBf16Native(on: boolean): string;
  info(): NativeInfo;
}

/** Where the install step puts the addon, relative to this file (src/compute/). */
export const NATIVE_ADDON_PATH = fileURLToPath(new URL('../../build/Release/towerlab.node', import.meta.url));

let addon: Addon | null | undefined;
let loadError: string | null = null;

function load(): Addon | null {
  if (addon !== undefined) return addon;
  try {
    addon = createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Addon;
  } catch (e) {
    addon = null;
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loadError = `cannot load the native addon ${NATIVE_ADDON_PATH}: ${msg} (build it with: node scripts/build-native.mjs)`;
  }
  return addon;
}

/** Why the native backend is unavailable (tries to load it first), or null when it loads. */
export function nativeLoadError(): string | null {
  load();
  return loadError;
}

export interface NativeInfo {
  /** SIMD path compiled in: 'avx2-fma' or 'scalar'. */
  simd: string;
  /**
   * GEMM register tile in use: 'avx512-12x32' (AVX-512 compiled in and on the CPU; also 16-lane softmax and
   * Adam passes), 'avx2-6x16' or 'scalar-6x16'. Both tiles give bit-identical results; TOWERLAB_SIMD=avx2
   * forces the AVX2 one.
   */
  gemmTile: string;
  /**
   * How bf16 products (the full-catalogue softmax's `precision: 'bf16'`) run: 'avx512-bf16' (vdpbf16ps) or
   * 'emulated' (the same products from the same rounded values with float32 FMAs, slower).
   */
  bf16Kernel: string;
  /** Threads kernels use now, and the pool size (TOWERLAB_THREADS or the core count). */
  threads: number;
  maxThreads: number;
  /** Times the pool ran single-threaded for a second because workers kept being descheduled (busy machine). */
  parallelBackoffs: number;
  /** Pool jobs a worker thread took part in so far. */
  workerJobs: number;
  /** Pieces of work (ranges, chunks) each thread id has computed so far (index 0 = the calling thread). */
  threadTasks: number[];
}

/** What the loaded addon was built with and is doing; null without the addon. */
export function nativeInfo(): NativeInfo | null {
  return load()?.info() ?? null;
}

/**
 * Threads the addon's kernels use from now on (clamped to [1, the pool size fixed at load from
 * TOWERLAB_THREADS or the core count]); returns the value set, or 0 without the addon.
 */
export function setNativeThreads(n: number): number {
  return load()?.setThreads(n) ?? 0;
}

/**
 * Turns the addon's 512-bit kernels on (where compiled in and the CPU has AVX-512F) or off (the AVX2 tile);
 * returns the tile now in use, or '' without the addon. Results do not change, only speed (tests compare).
 */
export function setNativeSimd(wide: boolean): string {
  return load()?.setSimd(wide) ?? '';
}

/**
 * Runs bf16 products with vdpbf16ps (on = true, where the CPU has AVX512-BF16) or with the portable kernel;
 * returns the kernel now in use, or '' without the addon. For tests comparing the two.
 */
export function setNativeBf16(on: boolean): string {
  return load()?.setBf16Native(on) ?? '';
}

/** The addon's IVF-Flat query kernel (native/ivf.cc), or null without the addon (src/index/ivf-index.ts). */
export function nativeIvfSearch(): Addon['ivfSearch'] | null {
  const a = load();
  return a && typeof a.ivfSearch === 'function' ? a.ivfSearch.bind(a) : null;
}

const SPARSE_KIND = { adagrad: 0, lazyadam: 1 } as const;

/** The C++ backend, or null when the addon is missing or fails to load (see nativeLoadError()). */
export function loadNativeBackend(): Backend | null {
  const a = load();
  if (!a) return null;
  return {
    name: 'native',
    gemm: (tA, tB, M, N, K, alpha, x, y, beta, c) => a.gemm(tA, tB, M, N, K, alpha, x, y, beta, c),
    linearForward: (x, w, bias, y, rows, inDim, outDim, relu) => a.linearForward(x, w, bias, y, rows, inDim, outDim, relu),
    linearBackward: (x, w, y, dy, dx, dw, dbias, rows, inDim, outDim, relu) =>
      a.linearBackward(x, w, y, dy, dx, dw, dbias, rows, inDim, outDim, relu),
    l2normForward: (x, y, norms, rows, dim) => a.l2normForward(x, y, norms, rows, dim),
    l2normBackward: (y, norms, dy, dx, rows, dim) => a.l2normBackward(y, norms, dy, dx, rows, dim),
    gatherRows: (table, ids, out, dim) => a.gatherRows(table, ids, out, dim),
    adam: (p, g, m, v, lr, b1, b2, eps, step) => a.adam(p, g, m, v, lr, b1, b2, eps, step),
    sparseUpdate: (kind, table, s1, s2, ids, grads, n, dim, lr, b1, b2, eps, step) => {
      const k = SPARSE_KIND[kind];
      if (k === undefined) throw new Error(`sparseUpdate: unknown kind '${String(kind)}' (expected 'adagrad' or 'lazyadam')`);
      a.sparseUpdate(k, table, s1, s2, ids, grads, n, dim, lr, b1, b2, eps, step);
    },
    contrastive: (args: ContrastiveArgs) => {
      const masks = args.masks;
      if (masks.length > 2) throw new Error(`contrastive: at most 2 mask pairs are supported, got ${masks.length}`);
      const m0 = masks.length > 0 ? masks[0] : undefined;
      const m1 = masks.length > 1 ? masks[1] : undefined;
      const fn = args.fnMask;
      return a.contrastive(
        args.q,
        args.c,
        args.B,
        args.N,
        args.d,
        args.pos,
        args.scale,
        args.colBias,
        m0 ? m0.rowKey : null,
        m0 ? m0.colKey : null,
        m1 ? m1.rowKey : null,
        m1 ? m1.colKey : null,
        fn?.absThreshold ?? Infinity,
        fn?.margin ?? Infinity,
        args.rowWeight ?? null,
        args.dq,
        args.dc,
        args.maskedCount ?? null,
      );
    },
    fullSoftmax: (x: FullSoftmaxArgs) =>
      a.fullSoftmax(x.q, x.e, x.R, x.N, x.d, x.target, x.scale, x.rowWeight ?? null, x.dq, x.de, x.rowLoss ?? null, x.precision === 'bf16'),
    mergeRows: (ids, grads, n, dim, slot, uniq, summed, u0) => a.mergeRows(ids, grads, n, dim, slot, uniq, summed, u0),
    historyPoolForward: (h: HistoryPoolArgs, table, x) => a.historyPoolForward(x, h.n, h.dim, table, h.ids, h.offsets, h.cols, h.gate, h.maxLen),
    historyPoolBackward: (h: HistoryPoolArgs, tableRows, dX, uniq, grads) =>
      a.historyPoolBackward(dX, h.n, h.dim, tableRows, h.ids, h.offsets, h.cols, h.gate, h.maxLen, uniq, grads),
    pairwiseLoss: (kind, q, c, R, K, d, dq, dc) => {
      if (kind !== 'bce' && kind !== 'bpr') throw new Error(`pairwiseLoss: unknown kind '${String(kind)}' (expected 'bce' or 'bpr')`);
      return a.pairwiseLoss(kind === 'bpr', q, c, R, K, d, dq, dc);
    },
    layerNormForward: (x, g, beta, y, xhat, rstd, rows, dim, eps) => a.layerNormForward(x, g, beta, y, xhat, rstd, rows, dim, eps),
    layerNormBackward: (dy, g, xhat, rstd, dx, dg, db, rows, dim, acc) => a.layerNormBackward(dy, g, xhat, rstd, dx, dg, db, rows, dim, acc),
    dropoutForward: (x, mask, n, p, seed) => a.dropoutForward(x, mask, n, p, seed >>> 0),
    dropoutBackward: (dy, mask, out, n, p) => a.dropoutBackward(dy, mask, out, n, p),
    attentionForward: (x: AttentionArgs, O) => {
      const d = x.dropout;
      a.attentionForward(x.Q, x.K, x.V, O, x.P, d ? d.Pd : null, d ? d.mask : null, x.offsets, x.pOff, x.nseq, x.heads, x.dh, x.causal, d ? d.p : 0, d ? d.seed >>> 0 : 1);
    },
    attentionBackward: (x: AttentionArgs, dO, dQ, dK, dV) => {
      const d = x.dropout;
      a.attentionBackward(dO, x.Q, x.K, x.V, x.P, d ? d.Pd : null, d ? d.mask : null, x.offsets, x.pOff, x.nseq, x.heads, x.dh, x.causal, d ? d.p : 0, dQ, dK, dV);
    },
    topkRows: (scores, rows, cols, k, outIdx, outVal) => a.topkRows(scores, rows, cols, k, outIdx, outVal),
  };
}
