// Dense layer forward/backward (GEMM with fused bias/ReLU), row L2 normalisation and row gather.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "gemm.h"
#include "ops.h"
#include "pool.h"
#include "scratch.h"
#include "simd.h"

namespace tl {

void linear_forward(const float* x, const float* w, const float* bias, float* y, int64_t rows, int64_t in,
                    int64_t out, bool relu) {
  gemm(false, false, rows, out, in, 1.f, x, w, 0.f, y, Epilogue{bias, relu});
}

// dy *= 1[y > 0] (when relu) and colsum(dy) accumulated into acc (out entries), for rows [r0, r1).
static void relu_mask_colsum(const float* y, float* dy, float* acc, int64_t r0, int64_t r1, int64_t out, bool relu) {
  for (int64_t r = r0; r < r1; ++r) {
    float* g = dy + r * out;
    const float* yy = y + r * out;
    int64_t j = 0;
#if TL_AVX2
    const __m256 zero = _mm256_setzero_ps();
    for (; j + 8 <= out; j += 8) {
      __m256 v = _mm256_loadu_ps(g + j);
      if (relu) {
        v = _mm256_and_ps(v, _mm256_cmp_ps(_mm256_loadu_ps(yy + j), zero, _CMP_GT_OQ));
        _mm256_storeu_ps(g + j, v);
      }
      _mm256_storeu_ps(acc + j, _mm256_add_ps(_mm256_loadu_ps(acc + j), v));
    }
#endif
    for (; j < out; ++j) {
      if (relu && !(yy[j] > 0.f)) g[j] = 0.f;
      acc[j] += g[j];
    }
  }
}

void linear_backward(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw, float* dbias,
                     int64_t rows, int64_t in, int64_t out, bool relu) {
  // Column sums per fixed row chunk (at most kChunks, boundaries set by `rows` alone), then added to dbias in
  // chunk order, so the sum is the same whichever threads ran which chunk. Summing rows x out in one pass
  // also applies the ReLU mask.
  constexpr int64_t kChunks = 8;
  const int64_t chunkRows = fixed_chunk(rows, kChunks, 16);
  const int64_t nchunks = (rows + chunkRows - 1) / chunkRows;
  if (nchunks > 0) {
    thread_local Scratch buf;
    float* part = buf.floats(size_t(nchunks * out));
    parallel_chunks(nchunks, double(chunkRows) * double(out) * 2.0, [&](int64_t c, int) {
      float* acc = part + c * out;
      std::fill(acc, acc + out, 0.f);
      relu_mask_colsum(y, dy, acc, c * chunkRows, std::min(rows, (c + 1) * chunkRows), out, relu);
    });
    for (int64_t c = 0; c < nchunks; ++c)
      for (int64_t j = 0; j < out; ++j) dbias[j] += part[c * out + j];
  }
  gemm(true, false, in, out, rows, 1.f, x, dy, 1.f, dw);
  if (dx) gemm(false, true, rows, in, out, 1.f, dy, w, 0.f, dx);
}


void l2norm_forward(const float* x, float* y, float* norms, int64_t rows, int64_t dim) {
  parallel_ranges(rows, 16, double(dim) * 3.0, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      const float n = std::max(std::sqrt(dot(xr, xr, dim)), 1e-12f);
      norms[r] = n;
      const float inv = 1.f / n;
      for (int64_t j = 0; j < dim; ++j) yr[j] = xr[j] * inv;
    }
  });
}

void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t dim) {
  parallel_ranges(rows, 16, double(dim) * 4.0, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y + r * dim;
      const float* gr = dy + r * dim;
      float* o = dx + r * dim;  // may alias gr: each element is read before it is written
      const float yg = dot(yr, gr, dim);
      const float inv = 1.f / norms[r];
      for (int64_t j = 0; j < dim; ++j) o[j] = (gr[j] - yr[j] * yg) * inv;
    }
  });
}

void gather_rows(const float* table, const int32_t* ids, int64_t n, float* out, int64_t dim) {
  parallel_ranges(n, 64, double(dim), [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      std::memcpy(out + r * dim, table + int64_t(ids[r]) * dim, size_t(dim) * sizeof(float));
  });
}

}  // namespace tl
