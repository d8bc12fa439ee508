// Dense-layer, normalisation, gather, optimiser and top-k kernels (semantics: src/compute/backend.ts).
// Arguments are validated by the binding (addon.cc); these assume in-range sizes and ids.
#pragma once
#include <cstdint>

namespace tl {

// layers.cc
void linear_forward(const float* x, const float* w, const float* bias, float* y, int64_t rows, int64_t in,
                    int64_t out, bool relu);
void linear_backward(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw, float* dbias,
                     int64_t rows, int64_t in, int64_t out, bool relu);
void l2norm_forward(const float* x, float* y, float* norms, int64_t rows, int64_t dim);
void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t dim);
void gather_rows(const float* table, const int32_t* ids, int64_t n, float* out, int64_t dim);

// optim.cc
void adam(float* p, const float* g, float* m, float* v, int64_t n, double lr, double b1, double b2, double eps,
          double step);
void sparse_adagrad(float* table, float* acc, const int32_t* ids, const float* grads, int64_t n, int64_t dim,
                    double lr, double eps);
void sparse_lazyadam(float* table, float* m, float* v, const int32_t* ids, const float* grads, int64_t n,
                     int64_t dim, double lr, double b1, double b2, double eps, double step);

// topk.cc
void topk_rows(const float* scores, int64_t rows, int64_t cols, int64_t k, int32_t* outIdx, float* outVal);

// ivf.cc: one IVF-Flat query; returns the number of hits written (best first, at most k).
int64_t ivf_search(const float* q, const float* cent, int64_t lists, const int32_t* off, const float* vec,
                   const int32_t* ids, int64_t n, int64_t d, int64_t nprobe, int64_t k, int32_t* outIdx,
                   float* outVal);

}  // namespace tl
