// Dense Adam and sparse row-wise Adagrad / LazyAdam updates.
#include <cmath>

#include "gemm.h"
#include "ops.h"
#include "pool.h"
#include "simd.h"

namespace tl {

namespace {

// Adam on n contiguous elements; constants already bias-corrected.
struct AdamConsts {
  float b1, c1, b2, c2, invBc1, invBc2, lr, eps;
};

AdamConsts adam_consts(double lr, double b1, double b2, double eps, double step) {
  const double bc1 = 1.0 - std::pow(b1, step), bc2 = 1.0 - std::pow(b2, step);
  return {float(b1), float(1.0 - b1), float(b2), float(1.0 - b2), float(1.0 / bc1), float(1.0 / bc2), float(lr),
          float(eps)};
}

inline void adam_span(float* p, const float* g, float* m, float* v, int64_t n, const AdamConsts& k) {
  int64_t i = 0;
#if TL_AVX512
  if (simd_wide()) {
    // The 8-lane loop's operations on 16 lanes: the same values.
    const __m512 b1 = _mm512_set1_ps(k.b1), c1 = _mm512_set1_ps(k.c1), b2 = _mm512_set1_ps(k.b2),
                 c2 = _mm512_set1_ps(k.c2), ib1 = _mm512_set1_ps(k.invBc1), ib2 = _mm512_set1_ps(k.invBc2),
                 lr = _mm512_set1_ps(k.lr), eps = _mm512_set1_ps(k.eps);
    for (; i + 16 <= n; i += 16) {
      const __m512 gv = _mm512_loadu_ps(g + i);
      const __m512 mv = _mm512_fmadd_ps(b1, _mm512_loadu_ps(m + i), _mm512_mul_ps(c1, gv));
      const __m512 vv = _mm512_fmadd_ps(b2, _mm512_loadu_ps(v + i), _mm512_mul_ps(c2, _mm512_mul_ps(gv, gv)));
      _mm512_storeu_ps(m + i, mv);
      _mm512_storeu_ps(v + i, vv);
      const __m512 den = _mm512_add_ps(_mm512_sqrt_ps(_mm512_mul_ps(vv, ib2)), eps);
      const __m512 upd = _mm512_div_ps(_mm512_mul_ps(lr, _mm512_mul_ps(mv, ib1)), den);
      _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_loadu_ps(p + i), upd));
    }
  }
#endif
#if TL_AVX2
  const __m256 b1 = _mm256_set1_ps(k.b1), c1 = _mm256_set1_ps(k.c1), b2 = _mm256_set1_ps(k.b2),
               c2 = _mm256_set1_ps(k.c2), ib1 = _mm256_set1_ps(k.invBc1), ib2 = _mm256_set1_ps(k.invBc2),
               lr = _mm256_set1_ps(k.lr), eps = _mm256_set1_ps(k.eps);
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 mv = _mm256_fmadd_ps(b1, _mm256_loadu_ps(m + i), _mm256_mul_ps(c1, gv));
    const __m256 vv = _mm256_fmadd_ps(b2, _mm256_loadu_ps(v + i), _mm256_mul_ps(c2, _mm256_mul_ps(gv, gv)));
    _mm256_storeu_ps(m + i, mv);
    _mm256_storeu_ps(v + i, vv);
    const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vv, ib2)), eps);
    const __m256 upd = _mm256_div_ps(_mm256_mul_ps(lr, _mm256_mul_ps(mv, ib1)), den);
    _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), upd));
  }
#endif
  for (; i < n; ++i) {
    const float gv = g[i];
    const float mv = k.b1 * m[i] + k.c1 * gv;
    const float vv = k.b2 * v[i] + k.c2 * gv * gv;
    m[i] = mv;
    v[i] = vv;
    p[i] -= k.lr * (mv * k.invBc1) / (std::sqrt(vv * k.invBc2) + k.eps);
  }
}

}  // namespace

void adam(float* p, const float* g, float* m, float* v, int64_t n, double lr, double b1, double b2, double eps,
          double step) {
  const AdamConsts k = adam_consts(lr, b1, b2, eps, step);
  parallel_ranges(n, 1024, 12.0, [&](int64_t b, int64_t e, int) { adam_span(p + b, g + b, m + b, v + b, e - b, k); });
}

void sparse_adagrad(float* table, float* acc, const int32_t* ids, const float* grads, int64_t n, int64_t dim,
                    double lr, double eps) {
  // Single-threaded: rows are tiny and ids are only promised unique, not checked.
  const float lrf = float(lr), epsf = float(eps), invDim = dim > 0 ? float(1.0 / double(dim)) : 0.f;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t id = ids[r];
    const float* g = grads + r * dim;
    float* row = table + id * dim;
    int64_t j = 0;
    float ss = 0.f;
#if TL_AVX2
    __m256 s8 = _mm256_setzero_ps();
    for (; j + 8 <= dim; j += 8) {
      const __m256 gv = _mm256_loadu_ps(g + j);
      s8 = _mm256_fmadd_ps(gv, gv, s8);
    }
    ss = hsum(s8);
#endif
    for (; j < dim; ++j) ss += g[j] * g[j];
    const float a = acc[id] + ss * invDim;
    acc[id] = a;
    const float f = lrf / (std::sqrt(a) + epsf);
    j = 0;
#if TL_AVX2
    const __m256 vf = _mm256_set1_ps(f);
    for (; j + 8 <= dim; j += 8)
      _mm256_storeu_ps(row + j, _mm256_fnmadd_ps(vf, _mm256_loadu_ps(g + j), _mm256_loadu_ps(row + j)));
#endif
    for (; j < dim; ++j) row[j] -= f * g[j];
  }
}

void sparse_lazyadam(float* table, float* m, float* v, const int32_t* ids, const float* grads, int64_t n,
                     int64_t dim, double lr, double b1, double b2, double eps, double step) {
  const AdamConsts k = adam_consts(lr, b1, b2, eps, step);
  // Every row in id order (a step whose gradient covers the whole table: the full-catalogue softmax): the rows
  // are distinct, so they update in parallel; each row is the same adam_span call as in the serial loop, so
  // the result does not depend on the number of threads.
  bool everyRow = n * dim >= (int64_t(1) << 16);
  for (int64_t r = 0; everyRow && r < n; ++r) everyRow = ids[r] == r;
  if (everyRow) {
    parallel_ranges(n, 16, double(dim) * 12.0, [&](int64_t b, int64_t e, int) {
      for (int64_t r = b; r < e; ++r) adam_span(table + r * dim, grads + r * dim, m + r * dim, v + r * dim, dim, k);
    });
    return;
  }
  for (int64_t r = 0; r < n; ++r) {
    const int64_t off = int64_t(ids[r]) * dim;
    adam_span(table + off, grads + r * dim, m + off, v + off, dim, k);
  }
}

}  // namespace tl
