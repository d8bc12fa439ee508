#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "pool.h"
#include "scratch.h"
#include "simd.h"

namespace tl {

void pack_a(int64_t mc, int64_t kc, const float* src, int64_t rs, int64_t cs, float* dst) {
  for (int64_t i0 = 0; i0 < mc; i0 += MR) {
    const int mb = int(std::min<int64_t>(MR, mc - i0));
    float* d = dst + i0 * kc;
    if (cs == 1 && mb == MR) {
      // Rows are contiguous: transpose 6 rows x 8 depths at a time into depth-major order.
      const float* r[MR];
      for (int r_ = 0; r_ < MR; ++r_) r[r_] = src + (i0 + r_) * rs;
      int64_t p = 0;
#if TL_AVX2
      const __m256i six = tail_mask(6);
      for (; p + 8 <= kc; p += 8) {
        __m256 v[8];
        for (int r_ = 0; r_ < MR; ++r_) v[r_] = _mm256_loadu_ps(r[r_] + p);
        v[6] = v[7] = _mm256_setzero_ps();
        transpose8(v);
        float* o = d + p * MR;
        // Overlapping 8-wide stores: each one's two junk lanes are overwritten by the next.
        for (int k = 0; k < 7; ++k) _mm256_storeu_ps(o + k * MR, v[k]);
        _mm256_maskstore_ps(o + 7 * MR, six, v[7]);
      }
#endif
      for (; p < kc; ++p)
        for (int r_ = 0; r_ < MR; ++r_) d[p * MR + r_] = r[r_][p];
    } else if (rs == 1) {
      int64_t p = 0;
#if TL_AVX2
      if (mb == MR) {
        // Six contiguous values per depth: masked 8-wide loads (no read past the row), overlapping stores.
        const __m256i six = tail_mask(6);
        for (; p + 1 < kc; ++p) _mm256_storeu_ps(d + p * MR, _mm256_maskload_ps(src + p * cs + i0, six));
      }
#endif
      for (; p < kc; ++p) {
        const float* s = src + p * cs + i0;
        float* o = d + p * MR;
        int r_ = 0;
        for (; r_ < mb; ++r_) o[r_] = s[r_];
        for (; r_ < MR; ++r_) o[r_] = 0.f;
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        float* o = d + p * MR;
        int r_ = 0;
        for (; r_ < mb; ++r_) o[r_] = src[(i0 + r_) * rs + p * cs];
        for (; r_ < MR; ++r_) o[r_] = 0.f;
      }
    }
  }
}

void pack_b(int64_t kc, int64_t nc, const float* src, int64_t rs, int64_t cs, float* dst) {
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    const int nb = int(std::min<int64_t>(NR, nc - j0));
    float* d = dst + j0 * kc;
    if (cs == 1) {
      if (nb == NR) {
        for (int64_t p = 0; p < kc; ++p) std::memcpy(d + p * NR, src + p * rs + j0, NR * sizeof(float));
      } else {
        for (int64_t p = 0; p < kc; ++p) {
          const float* s = src + p * rs + j0;
          float* o = d + p * NR;
          int j = 0;
          for (; j < nb; ++j) o[j] = s[j];
          for (; j < NR; ++j) o[j] = 0.f;
        }
      }
      continue;
    }
    int64_t p = 0;
#if TL_AVX2
    if (rs == 1 && nb == NR) {
      // Columns are contiguous (transposed operand): 8x8 register transposes.
      for (; p + 8 <= kc; p += 8) {
        for (int h = 0; h < NR; h += 8) {
          __m256 v[8];
          for (int k = 0; k < 8; ++k) v[k] = _mm256_loadu_ps(src + (j0 + h + k) * cs + p);
          transpose8(v);
          for (int k = 0; k < 8; ++k) _mm256_store_ps(d + (p + k) * NR + h, v[k]);
        }
      }
    }
#endif
    for (; p < kc; ++p) {
      float* o = d + p * NR;
      int j = 0;
      for (; j < nb; ++j) o[j] = src[p * rs + (j0 + j) * cs];
      for (; j < NR; ++j) o[j] = 0.f;
    }
  }
}

// Writes one finished micro-tile value: alpha*acc + beta*C, bias, relu.
static inline float finish(float acc, float c, float alpha, float beta, const float* bias, int j, bool relu) {
  float r = alpha * acc;
  if (beta != 0.f) r += beta * c;
  if (bias) r += bias[j];
  if (relu) r = r > 0.f ? r : 0.f;
  return r;
}

static inline void store_edge(const float* acc /* MR x NR */, float* C, int64_t ldc, int mb, int nb, float alpha,
                              float beta, const float* bias, bool relu) {
  for (int r = 0; r < mb; ++r)
    for (int j = 0; j < nb; ++j) C[r * ldc + j] = finish(acc[r * NR + j], C[r * ldc + j], alpha, beta, bias, j, relu);
}

#if TL_AVX2
static inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* C,
                                int64_t ldc, int mb, int nb, float alpha, float beta, const float* bias, bool relu) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 av = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
    a += MR;
    b += NR;
  }
  if (mb == MR && nb == NR) {
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta), zero = _mm256_setzero_ps();
    __m256 bias0 = zero, bias1 = zero;
    if (bias) {
      bias0 = _mm256_loadu_ps(bias);
      bias1 = _mm256_loadu_ps(bias + 8);
    }
    auto st = [&](float* p, __m256 acc, __m256 bv) {
      __m256 r = alpha == 1.f ? acc : _mm256_mul_ps(acc, va);
      if (beta != 0.f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(p), r);
      if (bias) r = _mm256_add_ps(r, bv);
      if (relu) r = _mm256_max_ps(r, zero);
      _mm256_storeu_ps(p, r);
    };
    st(C, c00, bias0);
    st(C + 8, c01, bias1);
    st(C + ldc, c10, bias0);
    st(C + ldc + 8, c11, bias1);
    st(C + 2 * ldc, c20, bias0);
    st(C + 2 * ldc + 8, c21, bias1);
    st(C + 3 * ldc, c30, bias0);
    st(C + 3 * ldc + 8, c31, bias1);
    st(C + 4 * ldc, c40, bias0);
    st(C + 4 * ldc + 8, c41, bias1);
    st(C + 5 * ldc, c50, bias0);
    st(C + 5 * ldc + 8, c51, bias1);
    return;
  }
  alignas(64) float acc[MR * NR];
  _mm256_store_ps(acc + 0, c00);
  _mm256_store_ps(acc + 8, c01);
  _mm256_store_ps(acc + 16, c10);
  _mm256_store_ps(acc + 24, c11);
  _mm256_store_ps(acc + 32, c20);
  _mm256_store_ps(acc + 40, c21);
  _mm256_store_ps(acc + 48, c30);
  _mm256_store_ps(acc + 56, c31);
  _mm256_store_ps(acc + 64, c40);
  _mm256_store_ps(acc + 72, c41);
  _mm256_store_ps(acc + 80, c50);
  _mm256_store_ps(acc + 88, c51);
  store_edge(acc, C, ldc, mb, nb, alpha, beta, bias, relu);
}
#else
static inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* C,
                                int64_t ldc, int mb, int nb, float alpha, float beta, const float* bias, bool relu) {
  float acc[MR * NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < MR; ++r) {
      const float av = a[r];
      for (int j = 0; j < NR; ++j) acc[r * NR + j] += av * b[j];
    }
    a += MR;
    b += NR;
  }
  store_edge(acc, C, ldc, mb, nb, alpha, beta, bias, relu);
}
#endif

static void macro_kernel_6x16(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp,
                              int64_t b_panel_stride, float* C, int64_t ldc, float alpha, float beta, Epilogue ep) {
  for (int64_t j = 0; j < nc; j += NR) {
    const int nb = int(std::min<int64_t>(NR, nc - j));
    const float* b = Bp + (j / NR) * b_panel_stride;
    const float* bias = ep.bias ? ep.bias + j : nullptr;
    for (int64_t i = 0; i < mc; i += MR) {
      const int mb = int(std::min<int64_t>(MR, mc - i));
      micro_kernel(kc, Ap + i * kc, b, C + i * ldc + j, ldc, mb, nb, alpha, beta, bias, ep.relu);
    }
  }
}

#if defined(__AVX512F__)
// NA A panels (6 rows each) x NB B panels (16 columns = one zmm each): up to 24 accumulators. Per element the
// same FMA sequence over p as micro_kernel.
template <int NA, int NB>
static inline void micro_kernel_512(int64_t kc, const float* __restrict a, int64_t a_panel_stride,
                                    const float* __restrict b, int64_t b_panel_stride, float* C, int64_t ldc, int mb,
                                    int nb, float alpha, float beta, const float* bias, bool relu) {
  __m512 c[NA * MR][NB];
#pragma GCC unroll 12
  for (int r = 0; r < NA * MR; ++r)
#pragma GCC unroll 2
    for (int q = 0; q < NB; ++q) c[r][q] = _mm512_setzero_ps();
  const float* a1 = a + a_panel_stride;
  const float* b1 = b + b_panel_stride;
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NB];
    bv[0] = _mm512_loadu_ps(b + p * NR);
    if (NB == 2) bv[NB - 1] = _mm512_loadu_ps(b1 + p * NR);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[p * MR + r]);
#pragma GCC unroll 2
      for (int q = 0; q < NB; ++q) c[r][q] = _mm512_fmadd_ps(av, bv[q], c[r][q]);
    }
    if (NA == 2) {
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        const __m512 av = _mm512_set1_ps(a1[p * MR + r]);
#pragma GCC unroll 2
        for (int q = 0; q < NB; ++q) c[(NA - 1) * MR + r][q] = _mm512_fmadd_ps(av, bv[q], c[(NA - 1) * MR + r][q]);
      }
    }
  }
  // Store per 6 x 16 sub-tile exactly as micro_kernel does: a full one with the same vector operations
  // (alpha, then beta*C by FMA, bias, ReLU), a partial one through store_edge's scalar finish.
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), zero = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int h = 0; h < NA; ++h) {
    const int rows = std::min(MR, mb - h * MR);
    if (rows <= 0) break;
#pragma GCC unroll 2
    for (int q = 0; q < NB; ++q) {
      const int lanes = std::min(NR, nb - q * NR);
      if (lanes <= 0) break;
      float* pc = C + h * MR * ldc + q * NR;
      const float* bq = bias ? bias + q * NR : nullptr;
      if (rows == MR && lanes == NR) {
        const __m512 bv = bq ? _mm512_loadu_ps(bq) : zero;
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
          __m512 v = alpha == 1.f ? c[h * MR + r][q] : _mm512_mul_ps(c[h * MR + r][q], va);
          if (beta != 0.f) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(pc + r * ldc), v);
          if (bq) v = _mm512_add_ps(v, bv);
          if (relu) v = _mm512_max_ps(v, zero);
          _mm512_storeu_ps(pc + r * ldc, v);
        }
      } else {
        alignas(64) float acc[MR * NR];
        for (int r = 0; r < MR; ++r) _mm512_store_ps(acc + r * NR, c[h * MR + r][q]);
        store_edge(acc, pc, ldc, rows, lanes, alpha, beta, bq, relu);
      }
    }
  }
}
#endif

namespace {
bool wide_default() {
#if defined(__AVX512F__)
  const char* e = std::getenv("TOWERLAB_SIMD");
  if (e && std::strcmp(e, "avx2") == 0) return false;
  __builtin_cpu_init();  // runs in a static initialiser, possibly before libgcc's own
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}
// Read by every GEMM; written only by set_simd_wide between calls (from the JS thread, tests).
std::atomic<bool> g_wide{wide_default()};
}  // namespace

bool set_simd_wide(bool on) {
#if defined(__AVX512F__)
  g_wide.store(on && __builtin_cpu_supports("avx512f"), std::memory_order_relaxed);
#else
  (void)on;
#endif
  return g_wide.load(std::memory_order_relaxed);
}

bool simd_wide() { return g_wide.load(std::memory_order_relaxed); }

const char* simd_tile() {
  if (g_wide.load(std::memory_order_relaxed)) return "avx512-12x32";
  return TL_AVX2 ? "avx2-6x16" : "scalar-6x16";
}

#if defined(__AVX512F__)
static void macro_kernel_12x32(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp,
                               int64_t b_panel_stride, float* C, int64_t ldc, float alpha, float beta, Epilogue ep) {
  const int64_t as = MR * kc;
  for (int64_t j = 0; j < nc; j += 2 * NR) {
    const int nb = int(std::min<int64_t>(2 * NR, nc - j));
    const float* b = Bp + (j / NR) * b_panel_stride;
    const float* bias = ep.bias ? ep.bias + j : nullptr;
    for (int64_t i = 0; i < mc; i += 2 * MR) {
      const int mb = int(std::min<int64_t>(2 * MR, mc - i));
      const float* a = Ap + i * kc;
      float* c = C + i * ldc + j;
      if (mb > MR) {
        if (nb > NR) micro_kernel_512<2, 2>(kc, a, as, b, b_panel_stride, c, ldc, mb, nb, alpha, beta, bias, ep.relu);
        else micro_kernel_512<2, 1>(kc, a, as, b, b_panel_stride, c, ldc, mb, nb, alpha, beta, bias, ep.relu);
      } else {
        if (nb > NR) micro_kernel_512<1, 2>(kc, a, as, b, b_panel_stride, c, ldc, mb, nb, alpha, beta, bias, ep.relu);
        else micro_kernel_512<1, 1>(kc, a, as, b, b_panel_stride, c, ldc, mb, nb, alpha, beta, bias, ep.relu);
      }
    }
  }
}
#endif

void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, int64_t b_panel_stride,
                  float* C, int64_t ldc, float alpha, float beta, Epilogue ep) {
#if defined(__AVX512F__)
  if (g_wide.load(std::memory_order_relaxed)) {
    macro_kernel_12x32(mc, nc, kc, Ap, Bp, b_panel_stride, C, ldc, alpha, beta, ep);
    return;
  }
#endif
  macro_kernel_6x16(mc, nc, kc, Ap, Bp, b_panel_stride, C, ldc, alpha, beta, ep);
}

void macro_kernel_wide(int64_t mc, int64_t nc, int64_t kc, const float* Ap, const float* Bp, int64_t b_panel_stride,
                       float* C, int64_t ldc, float alpha, float beta, Epilogue ep) {
  macro_kernel(mc, nc, kc, Ap, Bp, b_panel_stride, C, ldc, alpha, beta, ep);
}

// C = beta*C + epilogue, for K == 0 (no product term).
static void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc, Epilogue ep) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = finish(0.f, C[i * ldc + j], 0.f, beta, ep.bias, int(j), ep.relu);
}

void gemm_st(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t ars, int64_t acs, const float* B,
             int64_t brs, int64_t bcs, float beta, float* C, int64_t ldc, Epilogue ep) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, C, ldc, ep);
    return;
  }
  thread_local Scratch abuf, bbuf;
  const int64_t kcMax = std::min(K, KC);
  float* Ap = abuf.floats(packed_a_size(std::min(M, MC), kcMax));
  float* Bp = bbuf.floats(packed_b_size(kcMax, std::min(N, NC)));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      pack_b(kc, nc, B + pc * brs + jc * bcs, brs, bcs, Bp);
      const float be = pc == 0 ? beta : 1.f;
      const bool last = pc + kc == K;
      Epilogue e{last && ep.bias ? ep.bias + jc : nullptr, last && ep.relu};
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = std::min(MC, M - ic);
        pack_a(mc, kc, A + ic * ars + pc * acs, ars, acs, Ap);
        macro_kernel(mc, nc, kc, Ap, Bp, kc * NR, C + ic * ldc + jc, ldc, alpha, be, e);
      }
    }
  }
}

namespace {

// Below this many flops a GEMM stays on the calling thread (a dispatch costs a few microseconds).
// TOWERLAB_GEMM_PAR_MIN overrides it (for tuning).
double gemm_par_min_flops() {
  static const double v = [] {
    const char* s = std::getenv("TOWERLAB_GEMM_PAR_MIN");
    const double x = s ? std::strtod(s, nullptr) : 0.0;
    return x > 0 ? x : 1.0e6;  // ~15 us of work; measured 2-thread speedup >= 1.4x from 1 MFLOP up
  }();
  return v;
}
constexpr int kMaxThreads = 64;
// Split-K pieces: at most this many (a fixed count, so the sum order never depends on the threads).
constexpr int64_t kMaxKChunks = 8;

// Work is cut into chunks along one dimension and claimed dynamically, so a late or descheduled thread
// costs balance, not a stall. Results never depend on which thread ran which chunk (pool.h):
//  - split M / N: chunk boundaries are multiples of MR / NR (and MC, NC, KC are multiples of those), so
//    every output element goes through the same micro-tile and K blocking as in one gemm_st call; the
//    chunking may follow the thread count.
//  - split K: chunk c covers K range [c*chunk, ...) with the chunk count fixed by the shape; chunk 0
//    computes alpha*A0*B0 + beta*C into C, chunk c > 0 alpha*Ac*Bc into its own buffer, and the buffers
//    are added to C in chunk order afterwards. The same pieces run on one thread.
struct GemmJob {
  int64_t M, N, K;
  float alpha, beta;
  const float* A;
  int64_t ars, acs;
  const float* B;
  int64_t brs, bcs;
  float* C;
  Epilogue ep;
  char mode;  // 'M', 'N' or 'K': the dimension split into chunks
  int64_t chunk, nchunks;
  float* partials = nullptr;  // split-K: chunk c > 0 writes M x N floats at partials + (c-1)*M*N
  std::atomic<int64_t> next{0};

  static void call(void* p, int tid) {
    auto* j = static_cast<GemmJob*>(p);
    for (;;) {
      const int64_t k = j->next.fetch_add(1, std::memory_order_relaxed);
      if (k >= j->nchunks) return;
      j->do_chunk(k);
      count_task(tid);
    }
  }

  void do_chunk(int64_t k) const {
    const int64_t total = mode == 'M' ? M : mode == 'N' ? N : K;
    const int64_t b0 = k * chunk, b1 = std::min(total, b0 + chunk);
    if (mode == 'M') {
      gemm_st(b1 - b0, N, K, alpha, A + b0 * ars, ars, acs, B, brs, bcs, beta, C + b0 * N, N, ep);
    } else if (mode == 'N') {
      Epilogue e{ep.bias ? ep.bias + b0 : nullptr, ep.relu};
      gemm_st(M, b1 - b0, K, alpha, A, ars, acs, B + b0 * bcs, brs, bcs, beta, C + b0, N, e);
    } else {
      // The epilogue waits for the reduction; beta applies once, in chunk 0.
      float* c = k == 0 ? C : partials + (k - 1) * M * N;
      gemm_st(M, N, b1 - b0, alpha, A + b0 * acs, ars, acs, B + b0 * brs, brs, bcs, k == 0 ? beta : 0.f, c, N, {});
    }
  }
};

}  // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B,
          float beta, float* C, Epilogue ep) {
  if (M <= 0 || N <= 0) return;
  const int64_t ars = transA ? 1 : K, acs = transA ? M : 1;
  const int64_t brs = transB ? 1 : N, bcs = transB ? K : 1;
  const int nt = std::min(threads(), kMaxThreads);
  const double flops = 2.0 * double(M) * double(N) * double(K);
  // Everything that decides the split below depends on the shape only (not on nt): split-K changes the
  // summation order, so whether and how K is split must be the same on 1 thread as on many.
  if (flops < gemm_par_min_flops()) {
    gemm_st(M, N, K, alpha, A, ars, acs, B, brs, bcs, beta, C, N, ep);
    return;
  }
  // Each chunk re-packs the operand it shares (split M or N) or adds a partial product (split K); pick the
  // split with the least of that redundant work, and chunks big enough (~550 flops per redundant element,
  // about 2% overhead) but no more than 4 per thread (split M / N) or kMaxKChunks (split K).
  const double inf = 1e300;
  const double redM = M >= 2 * MR ? double(K) * double(N) : inf;
  const double redN = N >= 2 * NR ? double(K) * double(M) : inf;
  const double redK = K >= 2 * KC ? 3.0 * double(M) * double(N) : inf;
  char mode = redM <= redN && redM <= redK ? 'M' : redN <= redK ? 'N' : 'K';
  const double red = mode == 'M' ? redM : mode == 'N' ? redN : redK;
  if (red >= inf || (mode != 'K' && nt <= 1)) {
    gemm_st(M, N, K, alpha, A, ars, acs, B, brs, bcs, beta, C, N, ep);
    return;
  }
  const int64_t total = mode == 'M' ? M : mode == 'N' ? N : K;
  const int64_t align = mode == 'M' ? MR : mode == 'N' ? NR : KC;
  const int64_t blocks = (total + align - 1) / align;
  const double wantF = std::min(flops / (550.0 * red), 1e9);
  int64_t want = int64_t(wantF);
  if (mode == 'K')
    want = std::max<int64_t>(2, std::min<int64_t>(want, kMaxKChunks));
  else
    want = std::max<int64_t>(nt, std::min<int64_t>(want, 4 * nt));
  want = std::min(want, blocks);
  GemmJob job{M, N, K, alpha, beta, A, ars, acs, B, brs, bcs, C, ep, mode, 0, 0};
  job.chunk = (blocks + want - 1) / want * align;
  job.nchunks = (total + job.chunk - 1) / job.chunk;
  if (mode == 'K') {
    thread_local Scratch kparts;
    job.partials = kparts.floats(size_t((job.nchunks - 1) * M * N));
  }
  run(&GemmJob::call, &job, int(std::min<int64_t>(nt, job.nchunks)));
  if (mode == 'K') {
    // C += partial 1, += partial 2, ... in chunk order (elementwise, so any range split gives the same sums).
    const int64_t MN = M * N, np = job.nchunks - 1;
    const float* parts = job.partials;
    parallel_ranges(MN, 1024, double(np) + 1.0, [&](int64_t b, int64_t e, int) {
      for (int64_t k = 0; k < np; ++k) {
        const float* p = parts + k * MN;
        for (int64_t x = b; x < e; ++x) C[x] += p[x];
      }
      if (ep.bias || ep.relu) {
        for (int64_t x = b; x < e; ++x) C[x] = finish(C[x], 0.f, 1.f, 0.f, ep.bias, int(x % N), ep.relu);
      }
    });
  }
}

}  // namespace tl
