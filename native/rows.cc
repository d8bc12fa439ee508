// Row-level kernels of the training step outside the towers: merging duplicate gradient rows before a sparse
// table update, and the per-row pairwise losses (BCE, BPR). Semantics: src/compute/backend.ts.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "pool.h"
#include "scratch.h"
#include "seq_layers.h"
#include "simd.h"

namespace tl {

int64_t merge_rows(const int32_t* ids, const float* grads, int64_t n, int64_t dim, int32_t* slot, int32_t* uniq,
                   float* summed, int64_t u) {
  // Sequential in row order, as the TypeScript it replaces: first occurrences copied, later ones added in order,
  // so the sums (and their rounding) do not depend on anything but the input.
  for (int64_t r = 0; r < n; ++r) {
    const int32_t id = ids[r];
    const float* g = grads + r * dim;
    const int32_t s = slot[id];
    if (s < 0) {
      slot[id] = int32_t(u);
      uniq[u] = id;
      std::memcpy(summed + u * dim, g, size_t(dim) * sizeof(float));
      ++u;
    } else {
      float* o = summed + int64_t(s) * dim;
      int64_t j = 0;
#if TL_AVX2
      for (; j + 8 <= dim; j += 8) _mm256_storeu_ps(o + j, _mm256_add_ps(_mm256_loadu_ps(o + j), _mm256_loadu_ps(g + j)));
#endif
      for (; j < dim; ++j) o[j] += g[j];
    }
  }
  return u;
}

static inline double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }
static inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// o = a·x + b·y (float results of double coefficients).
static inline void axpby(float* o, float a, const float* x, float b, const float* y, int64_t d) {
  int64_t j = 0;
#if TL_AVX2
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
  for (; j + 8 <= d; j += 8)
    _mm256_storeu_ps(o + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + j), _mm256_mul_ps(vb, _mm256_loadu_ps(y + j))));
#endif
  for (; j < d; ++j) o[j] = a * x[j] + b * y[j];
}

static inline void scale_row(float* o, float a, const float* x, int64_t d) {
  for (int64_t j = 0; j < d; ++j) o[j] = a * x[j];
}

double pairwise_loss(bool bpr, const float* q, const float* c, int64_t R, int64_t K, int64_t d, float* dq, float* dc) {
  if (R <= 0) return 0.0;
  const int64_t chunkRows = fixed_chunk(R, 64, 16);
  const int64_t nchunks = (R + chunkRows - 1) / chunkRows;
  thread_local Scratch buf;
  double* part = reinterpret_cast<double*>(buf.floats(size_t(2 * nchunks)));
  const double inv = bpr ? 1.0 / double(R * K) : 1.0 / double(R);
  parallel_chunks(nchunks, double(chunkRows) * double(d) * double(K + 1) * 6.0, [&](int64_t ch, int) {
    double loss = 0;
    const int64_t r1 = std::min(R, (ch + 1) * chunkRows);
    for (int64_t t = ch * chunkRows; t < r1; ++t) {
      const float* h = q + t * d;
      const float* cp = c + t * d;
      float* gh = dq + t * d;
      const double sp = dot(h, cp, d);
      if (!bpr) {
        const float* cn = c + (R + t) * d;
        const double sn = dot(h, cn, d);
        loss += softplus(-sp) + softplus(sn);
        const float gp = float((sigmoid(sp) - 1) * inv), gn = float(sigmoid(sn) * inv);
        axpby(gh, gp, cp, gn, cn, d);
        scale_row(dc + t * d, gp, h, d);
        scale_row(dc + (R + t) * d, gn, h, d);
        continue;
      }
      std::fill(gh, gh + d, 0.f);
      double gPos = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float* cn = c + (R + t * K + k) * d;
        const double diff = sp - double(dot(h, cn, d));
        loss += softplus(-diff);
        const double g = (sigmoid(diff) - 1) * inv;
        gPos += g;
        const float gf = float(g);
        for (int64_t z = 0; z < d; ++z) gh[z] += gf * (cp[z] - cn[z]);
        scale_row(dc + (R + t * K + k) * d, -gf, h, d);
      }
      scale_row(dc + t * d, float(gPos), h, d);
    }
    part[ch] = loss;
  });
  double loss = 0;
  for (int64_t ch = 0; ch < nchunks; ++ch) loss += part[ch];
  return loss * inv;
}

}  // namespace tl
