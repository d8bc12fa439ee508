// Transformer-block kernels for the sequence towers (SASRec, the text transformer): layer norm, inverted dropout
// and causal/full multi-head attention over packed sequences. Semantics: src/compute/backend.ts. Arguments are
// validated by the binding (addon.cc); these assume in-range sizes.
#pragma once
#include <cstdint>

namespace tl {

// y = γ ⊙ x̂ + β with x̂ = (x − μ)/√(var + eps) per row of width d; keeps x̂ (rows×d) and 1/σ (rows).
void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y, float* xhat, float* rstd,
                        int64_t rows, int64_t d, float eps);
// dx (= or +=) (g − mean(g) − x̂ mean(g ⊙ x̂)) / σ with g = dy ⊙ γ; dγ += Σ dy ⊙ x̂, dβ += Σ dy (row sums in fixed
// chunks reduced in chunk order: identical for any thread count). dx may be dy itself.
void layer_norm_backward(const float* dy, const float* gamma, const float* xhat, const float* rstd, float* dx,
                         float* dgamma, float* dbeta, int64_t rows, int64_t d, bool accumulate);

// Inverted dropout in place on x[0, n): the mask comes from the xorshift32 stream started at `seed` (two 16-bit
// uniforms per step, element i kept when its uniform ≥ round(p·65536)), exactly as src/nn/dropout.ts draws it.
void dropout_forward(float* x, uint8_t* mask, int64_t n, double p, uint32_t seed);
// out[i] = mask[i] ? dy[i] / (1 − p) : 0 (out may be dy).
void dropout_backward(const float* dy, const uint8_t* mask, float* out, int64_t n, double p);

// Attention over packed sequences: sequence s has tokens [offsets[s], offsets[s+1]), Q/K/V/O are tokens × (H·dh)
// token-major, and head h of sequence s owns the T×T block at P + pOff[s] + h·T². Dropout on the probabilities
// (mask over the whole P buffer, drawn as dropout_forward draws it) when `mask` is given; Pd then holds the dropped
// probabilities (the values multiplied into V).
struct AttentionArgs {
  const float* Q = nullptr;
  const float* K = nullptr;
  const float* V = nullptr;
  float* O = nullptr;
  float* P = nullptr;
  float* Pd = nullptr;       // null: no dropout (P is used)
  uint8_t* mask = nullptr;   // null: no dropout
  const int32_t* offsets = nullptr;
  const int32_t* pOff = nullptr;
  int64_t nseq = 0, heads = 1, dh = 0;
  bool causal = true;
  double p = 0;
  uint32_t seed = 1;
  // Backward: dO in, dQ/dK/dV out (overwritten).
  const float* dO = nullptr;
  float* dQ = nullptr;
  float* dK = nullptr;
  float* dV = nullptr;
};
void attention_forward(const AttentionArgs& a);
void attention_backward(const AttentionArgs& a);

}  // namespace tl

namespace tl {

// rows.cc. Merges gradient rows by id into (uniq, summed), continuing at u unique rows: a first occurrence takes
// slot[id] = u and is copied, a repeat is added to its slot in row order; returns the new count. slot entries of
// ids not yet seen must be −1 (the caller resets them afterwards).
int64_t merge_rows(const int32_t* ids, const float* grads, int64_t n, int64_t dim, int32_t* slot, int32_t* uniq,
                   float* summed, int64_t u);
// Per-row pairwise loss (BCE with K = 1, or BPR) over c laid out as [positives (R); row t's K negatives at
// R + t·K ...]; writes dq (R×d) and dc ((R + R·K)×d); returns the mean loss.
double pairwise_loss(bool bpr, const float* q, const float* c, int64_t R, int64_t K, int64_t d, float* dq, float* dc);

}  // namespace tl
