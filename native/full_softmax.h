// Full-catalogue softmax cross-entropy ("SASRec+": every item is a class) with gradients, tiled over items
// with an online log-sum-exp so the R x N logits never exist: memory is O(R d + N d + tiles).
//   z_ij = scale * q_i . e_j,  l_i = logsumexp_j z_ij - z_i,target_i,  L = sum_i w_i l_i / sum_i w_i
//   G_ij = scale * w_i / sum w * (softmax_ij - 1[j = target_i]);  dq = G e (overwritten);  de += G^T q.
// Pass 1 (parallel over row tiles) runs each row's online max / sum-exp across item tiles and accumulates
// sum_j exp(z_ij - m_i) e_j alongside (rescaled when the running max grows), which gives dq. Pass 2 (parallel
// over item tiles) recomputes each item tile's logits against every row tile and accumulates de in row-tile
// order. Tiles depend on R, N, d only, so the result is bit-identical for any number of threads.
#pragma once
#include <cstdint>

namespace tl {

struct FullSoftmaxIn {
  const float* q = nullptr;  // R x d
  const float* e = nullptr;  // N x d
  int64_t R = 0, N = 0, d = 0;
  const int32_t* target = nullptr;   // R, each in [0, N) (validated by the caller)
  float scale = 1.f;
  const float* rowWeight = nullptr;  // R or null (1); 0 marks a padding row
  float* dq = nullptr;               // R x d or null (overwritten)
  float* de = nullptr;               // N x d or null (accumulated into)
  float* rowLoss = nullptr;          // R or null: each row's unweighted loss l_i
  // bf16 products (gemm_bf16.h): q, e and G are rounded to bfloat16 for the three products, sums stay float32,
  // and the loss uses the same rounded logits. About twice as fast where the CPU has AVX512-BF16.
  bool bf16 = false;
};

// Returns the weighted mean loss (0 when sum(rowWeight) == 0; dq is then zeroed and de left unchanged).
double full_softmax(const FullSoftmaxIn& in);

}  // namespace tl
