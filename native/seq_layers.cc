// Layer norm, dropout and fused attention for the sequence towers (see seq_layers.h). Every kernel is
// deterministic for any thread count: row-wise work is independent per row, attention per (sequence, head)
// block, and the only cross-row sums (dγ, dβ) are kept per fixed chunk and reduced in chunk order.
#include "seq_layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "gemm.h"
#include "pool.h"
#include "scratch.h"
#include "simd.h"

namespace tl {

// ---------------------------------------------------------------- layer norm

static inline void ln_row_forward(const float* x, const float* g, const float* b, float* y, float* xh, float* rs_out,
                                  int64_t d, float eps) {
  // Two passes (mean, then centred squares): no cancellation when |μ| ≫ σ.
  int64_t j = 0;
  float sum = 0.f;
#if TL_AVX2
  __m256 acc = _mm256_setzero_ps();
  for (; j + 8 <= d; j += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + j));
  sum = hsum(acc);
#endif
  for (; j < d; ++j) sum += x[j];
  const float mu = sum / float(d);
  float sq = 0.f;
  j = 0;
#if TL_AVX2
  const __m256 vmu = _mm256_set1_ps(mu);
  __m256 acq = _mm256_setzero_ps();
  for (; j + 8 <= d; j += 8) {
    const __m256 c = _mm256_sub_ps(_mm256_loadu_ps(x + j), vmu);
    acq = _mm256_fmadd_ps(c, c, acq);
  }
  sq = hsum(acq);
#endif
  for (; j < d; ++j) sq += (x[j] - mu) * (x[j] - mu);
  const float rs = 1.f / std::sqrt(sq / float(d) + eps);
  *rs_out = rs;
  j = 0;
#if TL_AVX2
  const __m256 vrs = _mm256_set1_ps(rs);
  for (; j + 8 <= d; j += 8) {
    const __m256 h = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vmu), vrs);
    _mm256_storeu_ps(xh + j, h);
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(_mm256_loadu_ps(g + j), h, _mm256_loadu_ps(b + j)));
  }
#endif
  for (; j < d; ++j) {
    const float h = (x[j] - mu) * rs;
    xh[j] = h;
    y[j] = g[j] * h + b[j];
  }
}

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y, float* xhat, float* rstd,
                        int64_t rows, int64_t d, float eps) {
  parallel_ranges(rows, 16, double(d) * 8.0, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      ln_row_forward(x + r * d, gamma, beta, y + r * d, xhat + r * d, rstd + r, d, eps);
  });
}

// One row of the backward; dγ/dβ partials accumulated into pg/pb (d entries each).
static inline void ln_row_backward(const float* dy, const float* g, const float* xh, float rs, float* dx, float* pg,
                                   float* pb, int64_t d, bool accumulate) {
  int64_t j = 0;
  float mg = 0.f, mgx = 0.f;
#if TL_AVX2
  __m256 a1 = _mm256_setzero_ps(), a2 = a1;
  for (; j + 8 <= d; j += 8) {
    const __m256 vy = _mm256_loadu_ps(dy + j), vh = _mm256_loadu_ps(xh + j);
    _mm256_storeu_ps(pg + j, _mm256_fmadd_ps(vy, vh, _mm256_loadu_ps(pg + j)));
    _mm256_storeu_ps(pb + j, _mm256_add_ps(vy, _mm256_loadu_ps(pb + j)));
    const __m256 gk = _mm256_mul_ps(vy, _mm256_loadu_ps(g + j));
    a1 = _mm256_add_ps(a1, gk);
    a2 = _mm256_fmadd_ps(gk, vh, a2);
  }
  mg = hsum(a1);
  mgx = hsum(a2);
#endif
  for (; j < d; ++j) {
    pg[j] += dy[j] * xh[j];
    pb[j] += dy[j];
    const float gk = dy[j] * g[j];
    mg += gk;
    mgx += gk * xh[j];
  }
  mg /= float(d);
  mgx /= float(d);
  j = 0;
#if TL_AVX2
  const __m256 vmg = _mm256_set1_ps(mg), vmgx = _mm256_set1_ps(mgx), vrs = _mm256_set1_ps(rs);
  for (; j + 8 <= d; j += 8) {
    const __m256 gk = _mm256_mul_ps(_mm256_loadu_ps(dy + j), _mm256_loadu_ps(g + j));
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(gk, vmg), _mm256_mul_ps(_mm256_loadu_ps(xh + j), vmgx)), vrs);
    if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(dx + j));
    _mm256_storeu_ps(dx + j, v);
  }
#endif
  for (; j < d; ++j) {
    const float v = (dy[j] * g[j] - mg - xh[j] * mgx) * rs;
    dx[j] = accumulate ? dx[j] + v : v;
  }
}

void layer_norm_backward(const float* dy, const float* gamma, const float* xhat, const float* rstd, float* dx,
                         float* dgamma, float* dbeta, int64_t rows, int64_t d, bool accumulate) {
  if (rows <= 0) return;
  constexpr int64_t kChunks = 16;
  const int64_t chunkRows = fixed_chunk(rows, kChunks, 16);
  const int64_t nchunks = (rows + chunkRows - 1) / chunkRows;
  thread_local Scratch buf;
  float* part = buf.floats(size_t(nchunks * 2 * d));
  parallel_chunks(nchunks, double(chunkRows) * double(d) * 10.0, [&](int64_t c, int) {
    float* pg = part + c * 2 * d;
    float* pb = pg + d;
    std::fill(pg, pg + 2 * d, 0.f);
    const int64_t r1 = std::min(rows, (c + 1) * chunkRows);
    for (int64_t r = c * chunkRows; r < r1; ++r)
      ln_row_backward(dy + r * d, gamma, xhat + r * d, rstd[r], dx + r * d, pg, pb, d, accumulate);
  });
  for (int64_t c = 0; c < nchunks; ++c) {
    const float* pg = part + c * 2 * d;
    for (int64_t j = 0; j < d; ++j) {
      dgamma[j] += pg[j];
      dbeta[j] += pg[d + j];
    }
  }
}

// ---------------------------------------------------------------- dropout

// The xorshift32 stream of src/nn/dropout.ts: per step one 32-bit state, low half for element i, high half for
// i + 1. Writes the keep mask only.
static void dropout_mask(uint8_t* m, int64_t n, double p, uint32_t z) {
  const uint32_t thr = uint32_t(std::floor(p * 65536.0 + 0.5));  // Math.round for p ≥ 0
  int64_t i = 0;
  for (; i + 1 < n; i += 2) {
    z ^= z << 13;
    z ^= z >> 17;
    z ^= z << 5;
    m[i] = (z & 0xffffu) >= thr;
    m[i + 1] = (z >> 16) >= thr;
  }
  if (i < n) {
    z ^= z << 13;
    z ^= z >> 17;
    z ^= z << 5;
    m[i] = (z & 0xffffu) >= thr;
  }
}

// out[i] = m[i] ? in[i]·s : 0 with the product rounded from double, as the TypeScript does (bit-identical).
static inline void apply_mask(const float* in, const uint8_t* m, float* out, int64_t n, double s) {
  for (int64_t i = 0; i < n; ++i) out[i] = m[i] ? float(double(in[i]) * s) : 0.f;
}

void dropout_forward(float* x, uint8_t* mask, int64_t n, double p, uint32_t seed) {
  dropout_mask(mask, n, p, seed);
  const double s = 1.0 / (1.0 - p);
  parallel_ranges(n, 1024, 2.0, [&](int64_t b, int64_t e, int) { apply_mask(x + b, mask + b, x + b, e - b, s); });
}

void dropout_backward(const float* dy, const uint8_t* mask, float* out, int64_t n, double p) {
  const double s = 1.0 / (1.0 - p);
  parallel_ranges(n, 1024, 2.0, [&](int64_t b, int64_t e, int) { apply_mask(dy + b, mask + b, out + b, e - b, s); });
}

// ---------------------------------------------------------------- attention

// C (M×N, ldc) = alpha · A · B with strided A (M×K) and B (K×N), beta = 0: one packed block through the wide
// (AVX-512 where compiled) tile when it fits one block, else the general single-threaded GEMM. Shapes alone decide
// the path, so results never depend on threads.
static void small_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t ars, int64_t acs,
                       const float* B, int64_t brs, int64_t bcs, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || K > KC || M > MC || N > NC) {
    gemm_st(M, N, K, alpha, A, ars, acs, B, brs, bcs, 0.f, C, ldc, {});
    return;
  }
  thread_local Scratch abuf, bbuf;
  float* Ap = abuf.floats(size_t(packed_a_size(M, K)));
  float* Bp = bbuf.floats(size_t(packed_b_size(K, N)));
  pack_a(M, K, A, ars, acs, Ap);
  pack_b(K, N, B, brs, bcs, Bp);
  macro_kernel_wide(M, N, K, Ap, Bp, K * NR, C, ldc, alpha, 0.f);
}

// Row softmax over the first n entries of r (length T); entries ≥ n become 0.
static inline void softmax_row(float* r, int64_t n, int64_t T) {
  float m = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, r[j]);
  int64_t j = 0;
  float sum = 0.f;
#if TL_AVX2
  const __m256 vm = _mm256_set1_ps(m);
  __m256 acc = _mm256_setzero_ps();
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(r + j), vm));
    _mm256_storeu_ps(r + j, e);
    acc = _mm256_add_ps(acc, e);
  }
  if (j < n) {
    const __m256i tm = tail_mask(int(n - j));
    const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(r + j, tm), vm)), _mm256_castsi256_ps(tm));
    _mm256_maskstore_ps(r + j, tm, e);
    acc = _mm256_add_ps(acc, e);
    j = n;
  }
  sum = hsum(acc);
#endif
  for (; j < n; ++j) {
    const float e = std::exp(r[j] - m);
    r[j] = e;
    sum += e;
  }
  const float inv = 1.f / sum;
  for (j = 0; j < n; ++j) r[j] *= inv;
  for (; j < T; ++j) r[j] = 0.f;
}

// Cost estimate (flops) of one (sequence, head) block, for the parallel split.
static double attention_cost(const AttentionArgs& a) {
  const int64_t items = a.nseq * a.heads;
  return items > 0 ? 6.0 * double(a.pOff[a.nseq]) / double(a.nseq) * double(a.dh) : 0.0;
}

void attention_forward(const AttentionArgs& a) {
  const int64_t H = a.heads, dh = a.dh, D = H * dh;
  const float alpha = 1.f / std::sqrt(float(dh));
  const bool drop = a.mask != nullptr;
  if (drop) dropout_mask(a.mask, a.pOff[a.nseq], a.p, a.seed);
  const double s = drop ? 1.0 / (1.0 - a.p) : 1.0;
  parallel_ranges(a.nseq * H, 1, attention_cost(a), [&](int64_t i0, int64_t i1, int) {
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t sq = it / H, h = it % H;
      const int64_t t0 = a.offsets[sq], T = a.offsets[sq + 1] - t0;
      if (T <= 0) continue;
      const int64_t blk = a.pOff[sq] + h * T * T;
      float* P = a.P + blk;
      const int64_t base = t0 * D + h * dh;
      // S = Q Kᵀ / √dh (K read transposed through its strides), then the masked row softmax in place.
      small_gemm(T, T, dh, alpha, a.Q + base, D, 1, a.K + base, 1, D, P, T);
      for (int64_t i = 0; i < T; ++i) softmax_row(P + i * T, a.causal ? i + 1 : T, T);
      const float* Pv = P;
      if (drop) {
        apply_mask(P, a.mask + blk, a.Pd + blk, T * T, s);
        Pv = a.Pd + blk;
      }
      small_gemm(T, dh, T, 1.f, Pv, T, 1, a.V + base, D, 1, a.O + base, D);
    }
  });
}

void attention_backward(const AttentionArgs& a) {
  const int64_t H = a.heads, dh = a.dh, D = H * dh;
  const float alpha = 1.f / std::sqrt(float(dh));
  const bool drop = a.mask != nullptr;
  const double s = drop ? 1.0 / (1.0 - a.p) : 1.0;
  parallel_ranges(a.nseq * H, 1, 1.5 * attention_cost(a), [&](int64_t i0, int64_t i1, int) {
    thread_local Scratch dpbuf;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t sq = it / H, h = it % H;
      const int64_t t0 = a.offsets[sq], T = a.offsets[sq + 1] - t0;
      if (T <= 0) continue;
      const int64_t blk = a.pOff[sq] + h * T * T;
      const float* P = a.P + blk;
      const float* Pv = drop ? a.Pd + blk : P;
      const int64_t base = t0 * D + h * dh;
      float* dP = dpbuf.floats(size_t(T * T));
      const float* dO = a.dO + base;
      // dP̃ = dO Vᵀ;  dV = P̃ᵀ dO.
      small_gemm(T, T, dh, 1.f, dO, D, 1, a.V + base, 1, D, dP, T);
      small_gemm(T, dh, T, 1.f, Pv, 1, T, dO, D, 1, a.dV + base, D);
      if (drop) apply_mask(dP, a.mask + blk, dP, T * T, s);
      // dS = P ⊙ (dP − rowsum(dP ⊙ P)) over the unmasked columns; masked ones 0.
      for (int64_t i = 0; i < T; ++i) {
        float* g = dP + i * T;
        const float* p = P + i * T;
        const int64_t n = a.causal ? i + 1 : T;
        const float dot_ = dot(g, p, n);
        int64_t j = 0;
        for (; j < n; ++j) g[j] = p[j] * (g[j] - dot_);
        for (; j < T; ++j) g[j] = 0.f;
      }
      // dQ = dS K / √dh;  dK = dSᵀ Q / √dh.
      small_gemm(T, dh, T, alpha, dP, T, 1, a.K + base, D, 1, a.dQ + base, D);
      small_gemm(T, dh, T, alpha, dP, 1, T, a.Q + base, D, 1, a.dK + base, D);
    }
  });
}

}  // namespace tl
