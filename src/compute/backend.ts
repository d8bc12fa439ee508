/**
 * The compute seam. Everything numerically heavy in training and evaluation goes through a `Backend`,
 * so the hot path can run in a native addon (C++, both cores), in a portable fallback, or later on a GPU,
 * with the model code unchanged.
 *
 * Conventions: every matrix is a dense row-major Float32Array with no padding between rows; shapes are
 * given explicitly. Functions write into caller-provided outputs (no allocation on the hot path).
 * "+=" in a doc comment means the output is accumulated into, not overwritten.
 */

export interface ContrastiveArgs {
  /** Queries, B×d (normally L2-normalised user/query embeddings). */
  q: Float32Array;
  /** Candidates, N×d (normally L2-normalised item embeddings; in-batch positives first). */
  c: Float32Array;
  B: number;
  N: number;
  d: number;
  /** For each query row i, the column of its positive candidate (0 ≤ pos[i] < N). */
  pos: Int32Array;
  /** Multiplier applied to the raw similarity q·c (1/temperature). */
  scale: number;
  /**
   * Per-candidate additive logit bias, N entries, or null. logQ correction passes −log Q(j) here
   * (Yi et al. 2019: s^c(x, y) = s(x, y) − log p(y)). Applied to every column, including the positive.
   */
  colBias: Float32Array | null;
  /**
   * Accidental-hit masks: for each pair (rowKey, colKey), logit (i, j) is removed from the softmax when
   * rowKey[i] === colKey[j] && j !== pos[i] && rowKey[i] >= 0. Typical pairs: (positive item id of row i,
   * item id of candidate j) masks the same item appearing elsewhere; (user id of row i, user id whose
   * positive candidate j is) masks the same user's other positives. At most 2 pairs.
   */
  masks: Array<{ rowKey: Int32Array; colKey: Int32Array }>;
  /**
   * False-negative masking on the raw similarity s = q·c (RocketQA-style), or null/undefined for none:
   * a negative j ≠ pos[i] is removed when s_ij > absThreshold, or when s_ij > s_i,pos[i] − margin.
   * Either bound may be +Infinity / undefined to disable it.
   */
  fnMask?: { absThreshold?: number; margin?: number } | null;
  /** Per-row weight of the loss (e.g. rating), B entries, or null for 1. The loss is Σ w_i ℓ_i / Σ w_i. */
  rowWeight?: Float32Array | null;
  /** Output: dL/dq, B×d (overwritten). Null to skip. */
  dq: Float32Array | null;
  /** Output: dL/dc, N×d (overwritten). Null to skip. */
  dc: Float32Array | null;
  /**
   * Optional output, B entries: per-row number of candidates that were masked out (accidental hits plus
   * false-negative masking). Used by diagnostics; null to skip.
   */
  maskedCount?: Int32Array | null;
}

/**
 * Softmax cross-entropy over [positive ∪ negatives] per query row (InfoNCE / sampled softmax):
 *   z_ij = scale · q_i·c_j + colBias_j,   masked entries → −∞,
 *   ℓ_i  = −z_i,pos[i] + log Σ_j exp z_ij,   L = Σ_i w_i ℓ_i / Σ_i w_i.
 * Gradients: G_ij = w_i (softmax_ij − 1[j = pos_i]) / Σw;  dq = scale · G c;  dc = scale · Gᵀ q.
 * Implementations tile over query rows so the B×N matrix never needs to exist at once.
 */
export type ContrastiveFn = (args: ContrastiveArgs) => number;

export interface FullSoftmaxArgs {
  /** Queries, R×d (e.g. a sequence tower's output at every position). */
  q: Float32Array;
  /** The whole item table, N×d: every item is a class. */
  e: Float32Array;
  R: number;
  N: number;
  d: number;
  /** For each row, its target item (0 ≤ target[i] < N). */
  target: Int32Array;
  /** Multiplier on the raw score q·e (1/temperature; 1 for SASRec's dot product). */
  scale: number;
  /** Per-row loss weight, R entries, or null for 1; weight 0 marks a padding row (no loss, no gradient). */
  rowWeight?: Float32Array | null;
  /** Output: dL/dq, R×d (overwritten). Null to skip. */
  dq: Float32Array | null;
  /** Output: dL/de, N×d, ACCUMULATED into (+=), so a caller can add other gradients first. Null to skip. */
  de: Float32Array | null;
  /** Optional output, R entries: each row's unweighted loss ℓ_i (diagnostics). */
  rowLoss?: Float32Array | null;
  /**
   * 'fp32' (default): float32 products. 'bf16': q, e and the gradient coefficients G are rounded to bfloat16
   * (8 significant bits) for the three products, sums stay float32 and the loss uses the same rounded logits;
   * the products run twice as fast where the CPU has AVX512-BF16 (a whole step measured 1.45–1.55× faster; see
   * NativeInfo.bf16Kernel). Every backend rounds the same operands, so a model trains the same way on any CPU up
   * to float32 summation order.
   */
  precision?: 'fp32' | 'bf16';
}

/**
 * Exact softmax cross-entropy over the full catalogue ("SASRec+", Klenitskiy & Vasilev 2023):
 *   z_ij = scale · q_i·e_j,  ℓ_i = log Σ_j exp z_ij − z_i,target_i,  L = Σ_i w_i ℓ_i / Σ_i w_i;
 *   G_ij = scale · w_i / Σw · (softmax_ij − 1[j = target_i]);  dq = G e;  de += Gᵀ q.
 * Implementations tile over items with an online log-sum-exp, so the R×N logits never exist at once
 * (memory O((R + N)·d) plus fixed tiles), and are deterministic for any thread count.
 */
export type FullSoftmaxFn = (args: FullSoftmaxArgs) => number;

/**
 * Attention over packed sequences (SASRec's causal self-attention; the text encoder's bidirectional one).
 * Sequence s has tokens [offsets[s], offsets[s+1]) of Q, K, V (tokens × heads·dh, token-major; head h is columns
 * [h·dh, (h+1)·dh)). Per sequence and head, with T its length:
 *   S = Q Kᵀ / √dh,  S_ij = −∞ for j > i when causal,  P = softmax_rows(S),  P̃ = dropout(P),  O = P̃ V.
 * Backward:  dP̃ = dO Vᵀ,  dV = P̃ᵀ dO,  dP = dropoutᵀ(dP̃),  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
 *            dQ = dS K / √dh,  dK = dSᵀ Q / √dh.
 * P (sequence s, head h at pOff[s] + h·T²; masked entries 0) is kept for the backward.
 */
export interface AttentionArgs {
  Q: Float32Array;
  K: Float32Array;
  V: Float32Array;
  /** nseq + 1 token offsets. */
  offsets: Int32Array;
  /** nseq + 1 offsets of each sequence's probability blocks in P: pOff[s+1] − pOff[s] = heads·T², pOff[0] = 0. */
  pOff: Int32Array;
  nseq: number;
  heads: number;
  dh: number;
  causal: boolean;
  /** Probabilities (output of forward, input of backward), pOff[nseq] entries. */
  P: Float32Array;
  /**
   * Dropout on the probabilities: null for none; else the keep mask over all pOff[nseq] entries (written by
   * forward, drawn like dropoutForward with `seed`) and Pd, the dropped probabilities P̃.
   */
  dropout: { p: number; seed: number; mask: Uint8Array; Pd: Float32Array } | null;
}

/**
 * User-history pooling of the user tower's id rows (SimpleX's behaviour aggregation; src/model/user-history.ts).
 * User u's history is cols[offsets[u] .. offsets[u+1]) (rows of an item embedding table); ids outside
 * [0, offsets.length − 1) have none. The c_u items used: all (maxLen 0 or len ≤ maxLen), else the maxLen at positions
 * offsets[u] + ⌊k·len/maxLen⌋, k = 0 … maxLen − 1 (evenly strided, computed as Math.floor((k * len) / maxLen)).
 */
export interface HistoryPoolArgs {
  /** n user ids, one per row of the block. */
  ids: Int32Array;
  n: number;
  dim: number;
  offsets: Int32Array;
  cols: Int32Array;
  /** Weight g of the id row; 1 − g goes to the history mean. */
  gate: number;
  /** At most this many items per user (0 = all). */
  maxLen: number;
}

export interface Backend {
  /** 'native' (C++ addon), 'js' (portable TypeScript + TF.js-WASM matmul) or another later. */
  readonly name: string;

  /**
   * C = alpha · op(A) · op(B) + beta · C, with op(A) M×K and op(B) K×N.
   * A is stored M×K (or K×M when transA), B is stored K×N (or N×K when transB). C is M×N.
   */
  gemm(
    transA: boolean,
    transB: boolean,
    M: number,
    N: number,
    K: number,
    alpha: number,
    a: Float32Array,
    b: Float32Array,
    beta: number,
    c: Float32Array,
  ): void;

  /**
   * Dense layer forward: y = act(x · w + bias), x rows×inDim, w inDim×outDim, bias outDim, y rows×outDim.
   * act is identity or ReLU.
   */
  linearForward(
    x: Float32Array,
    w: Float32Array,
    bias: Float32Array,
    y: Float32Array,
    rows: number,
    inDim: number,
    outDim: number,
    relu: boolean,
  ): void;

  /**
   * Dense layer backward. dy (rows×outDim) is the gradient w.r.t. the layer OUTPUT; when relu is true it
   * is first multiplied in place by 1[y > 0] (y = the forward output). Then:
   *   dw += xᵀ · dy,  dbias += colsum(dy),  dx = dy · wᵀ (overwritten; skipped when dx is null).
   */
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

  /** Row-wise L2 normalisation: y_i = x_i / max(‖x_i‖, 1e-12); norms_i = max(‖x_i‖, 1e-12). */
  l2normForward(x: Float32Array, y: Float32Array, norms: Float32Array, rows: number, dim: number): void;

  /** Backward of l2normForward: dx_i = (dy_i − y_i (y_i·dy_i)) / norms_i. dx may alias dy. */
  l2normBackward(y: Float32Array, norms: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, dim: number): void;

  /** out[r] = table[ids[r]] for r < ids.length (rows of width dim). */
  gatherRows(table: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void;

  /**
   * Dense Adam step on a flat parameter vector (Kingma & Ba), bias-corrected with the 1-based `step`:
   *   m = b1 m + (1−b1) g;  v = b2 v + (1−b2) g²;  p −= lr · m̂ / (√v̂ + eps).  Leaves g untouched.
   */
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, b1: number, b2: number, eps: number, step: number): void;

  /**
   * Sparse row updates on an embedding table for the UNIQUE row ids `ids` (length n) with their summed
   * gradients `grads` (n×dim):
   *  - 'adagrad' (row-wise Adagrad): acc[id] += mean(g²);  row −= lr · g / (√acc[id] + eps);  state1 has one
   *    entry per table row, state2 unused.
   *  - 'lazyadam' (TF LazyAdam / torch SparseAdam): per-element m, v (state1, state2: rows×dim) updated only
   *    for the touched rows, bias correction with the global 1-based `step`.
   */
  sparseUpdate(
    kind: 'adagrad' | 'lazyadam',
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

  /** Fused in-batch / sampled softmax loss with masks and bias; returns the loss. See ContrastiveArgs. */
  contrastive: ContrastiveFn;

  /** Exact softmax cross-entropy over every item, tiled over items; returns the loss. See FullSoftmaxArgs. */
  fullSoftmax: FullSoftmaxFn;

  /**
   * Merges gradient rows by id, continuing at u0 unique rows: for r < n in order, the first occurrence of id = ids[r]
   * takes slot[id] = u (uniq[u] = id, summed row u = grads row r, u + 1), a repeat is added (float32, in row order)
   * to summed row slot[id]. Returns the new unique count. slot has one entry per table row, −1 for ids not yet
   * seen (the caller resets the entries of uniq to −1 when done); uniq and summed must hold u0 + n rows.
   */
  mergeRows(ids: Int32Array, grads: Float32Array, n: number, dim: number, slot: Int32Array, uniq: Int32Array, summed: Float32Array, u0: number): number;

  /**
   * History pooling forward, in place on the n×dim block x (row r = the id row of ids[r]), each step rounded to
   * float32 from double:  x_r ← g·x_r,  then x_r ← x_r + w·E[item] for the user's used items in order, w = (1 − g)/c_u.
   * `table` is E (rows of width dim); every used item must be a row of it. See HistoryPoolArgs.
   */
  historyPoolForward(a: HistoryPoolArgs, table: Float32Array, x: Float32Array): void;

  /**
   * History pooling backward from dX (n×dim, gradient w.r.t. the pooled block): the used items' gradients
   * Σ w_r·dX_r, unique items in order of first use (rows, then k) into uniq (returns their count u), each item's sum
   * in that same (row, k) order, every step rounded to float32 from double, into grads (u×dim, overwritten);
   * then dX ← g·dX (the id rows' gradient). Items are rows of a table of `tableRows` rows; uniq and grads must hold
   * min(total uses, tableRows, cols.length) rows.
   */
  historyPoolBackward(a: HistoryPoolArgs, tableRows: number, dX: Float32Array, uniq: Int32Array, grads: Float32Array): number;

  /**
   * Per-row pairwise loss over item rows c laid out as [positives (R rows); row t's K negatives at R + t·K …],
   * scores s = ⟨q_t, c⟩:  'bce' (K = 1): L = (1/R) Σ_t softplus(−s⁺_t) + softplus(s⁻_t);
   * 'bpr': L = (1/(RK)) Σ_t Σ_k softplus(s_tk − s⁺_t). Writes dL/dq (R×d) and dL/dc ((R + RK)×d); returns L.
   */
  pairwiseLoss(kind: 'bce' | 'bpr', q: Float32Array, c: Float32Array, R: number, K: number, d: number, dq: Float32Array, dc: Float32Array): number;

  /**
   * Layer normalisation per row of width dim (Ba et al. 2016): x̂ = (x − μ)/σ with σ = √(var(x) + eps),
   * y = γ ⊙ x̂ + β; keeps x̂ (rows×dim) and 1/σ (rows) for the backward. y must not alias x.
   */
  layerNormForward(x: Float32Array, gamma: Float32Array, beta: Float32Array, y: Float32Array, xhat: Float32Array, rstd: Float32Array, rows: number, dim: number, eps: number): void;

  /**
   * Layer-norm backward, with g = dy ⊙ γ:  dx = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ  (written, or added with
   * `accumulate`);  dγ += Σ_rows dy ⊙ x̂;  dβ += Σ_rows dy.  dx may be dy itself.
   */
  layerNormBackward(dy: Float32Array, gamma: Float32Array, xhat: Float32Array, rstd: Float32Array, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array, rows: number, dim: number, accumulate: boolean): void;

  /**
   * Inverted dropout in place on x[0, n): keep mask m from the xorshift32 stream started at `seed` (an odd
   * uint32; each step gives two 16-bit uniforms, low half for element i, high half for i + 1; kept when the
   * uniform ≥ round(p·65536)); x_i ← m_i ? x_i / (1 − p) : 0 (product rounded once from double).
   */
  dropoutForward(x: Float32Array, mask: Uint8Array, n: number, p: number, seed: number): void;

  /** out_i = mask_i ? dy_i / (1 − p) : 0 for i < n (out may be dy). */
  dropoutBackward(dy: Float32Array, mask: Uint8Array, out: Float32Array, n: number, p: number): void;

  /** Attention forward: O (tokens × heads·dh, overwritten), P and the dropout state. See AttentionArgs. */
  attentionForward(a: AttentionArgs, O: Float32Array): void;

  /** Attention backward from dO: dQ, dK, dV (overwritten) of the last forward on the same `a`. */
  attentionBackward(a: AttentionArgs, dO: Float32Array, dQ: Float32Array, dK: Float32Array, dV: Float32Array): void;

  /**
   * Top-k per row of a rows×cols score matrix, best first: outIdx/outVal are rows×k. Entries equal to
   * −Infinity are never returned (their slots hold index −1 and value −Infinity). Ties: lower index first.
   */
  topkRows(scores: Float32Array, rows: number, cols: number, k: number, outIdx: Int32Array, outVal: Float32Array): void;
}
