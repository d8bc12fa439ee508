// Fused in-batch / sampled softmax cross-entropy with masks, logit bias and gradients (see backend.ts,
// ContrastiveArgs, for the exact semantics). Tiles over query rows so the B x N logits never exist at once.
// The loss and gradients are bit-identical whatever the number of threads (tiling, chunking and the
// order partial sums are added in depend on B, N, d only; see contrastive.cc).
#pragma once
#include <cstdint>

namespace tl {

struct ContrastiveIn {
  const float* q = nullptr;  // B x d
  const float* c = nullptr;  // N x d
  int64_t B = 0, N = 0, d = 0;
  const int32_t* pos = nullptr;  // B, each in [0, N) (validated by the caller)
  float scale = 1.f;
  const float* colBias = nullptr;  // N or null
  int nmasks = 0;                  // 0..2
  const int32_t* rowKey[2] = {nullptr, nullptr};
  const int32_t* colKey[2] = {nullptr, nullptr};
  float absThreshold = 0.f;  // +inf: off
  float margin = 0.f;        // +inf or NaN: off
  const float* rowWeight = nullptr;  // B or null
  float* dq = nullptr;               // B x d or null
  float* dc = nullptr;               // N x d or null
  int32_t* maskedCount = nullptr;    // B or null
};

// Returns the weighted mean loss. With sum(rowWeight) == 0 the loss and both gradients are 0.
double contrastive(const ContrastiveIn& in);

}  // namespace tl
