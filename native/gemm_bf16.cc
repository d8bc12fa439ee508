#include "gemm_bf16.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "gemm.h"
#include "scratch.h"
#include "simd.h"

#if TL_AVX512 && defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define TL_BF16 1
#else
#define TL_BF16 0
#endif

namespace tl {

namespace {

inline uint32_t pair_bits(float lo, float hi) { return uint32_t(to_bf16(lo)) | (uint32_t(to_bf16(hi)) << 16); }

#if TL_BF16
// 16 floats -> 8 bf16 pairs (as the 8 lanes of a float vector: the transposes move 32-bit lanes).
inline __m256 cvt16(const float* s) {
  return _mm256_castsi256_ps((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s)));
}
// Two rows of 16 floats -> 16 pairs (lo[j], hi[j]).
inline __m512i interleave16(const float* lo, const float* hi) {
  const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(hi), _mm512_loadu_ps(lo));  // lo in 0..15, hi in 16..31
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5,
                                       20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, v);
}
#endif

bool bf16_default() {
#if TL_BF16
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}
std::atomic<bool> g_bf16{bf16_default()};

}  // namespace

bool set_bf16_native(bool on) {
  g_bf16.store(on && bf16_default(), std::memory_order_relaxed);
  return g_bf16.load(std::memory_order_relaxed);
}

const char* bf16_kernel() { return g_bf16.load(std::memory_order_relaxed) ? "avx512-bf16" : "emulated"; }

// The vector conversions below round exactly as to_bf16 (RNE, subnormal inputs to zero), so the packed values
// never depend on which path packed them.
void pack_a_bf16(int64_t mc, int64_t kc, const float* src, int64_t rs, int64_t cs, uint16_t* dst) {
  const int64_t k2 = bf16_pairs(kc);
  const bool vec = g_bf16.load(std::memory_order_relaxed);
  (void)vec;  // only the AVX512-BF16 build has vector packing
  for (int64_t i0 = 0; i0 < mc; i0 += MRB) {
    const int mb = int(std::min<int64_t>(MRB, mc - i0));
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + i0 * 2 * k2);  // panel i0 / MRB: k2 pairs x MRB rows
    int64_t p = 0;
    bool twoPanels = false;  // the columns-contiguous path fills this panel and the next
#if TL_BF16
    if (vec && mb == MRB && cs == 1) {
      // Rows contiguous: 8 rows x 8 pairs, converted and transposed in registers.
      for (; 2 * p + 16 <= kc; p += 8) {
        __m256 v[8];
        for (int r = 0; r < MRB; ++r) v[r] = cvt16(src + (i0 + r) * rs + 2 * p);
        transpose8(v);
        for (int k = 0; k < 8; ++k) _mm256_storeu_ps(reinterpret_cast<float*>(d + (p + k) * MRB), v[k]);
      }
    } else if (vec && rs == 1 && i0 + 2 * MRB <= mc) {
      // Columns contiguous: two depths x 16 rows interleaved at once; rows 8..15 go to the next panel.
      twoPanels = true;
      uint32_t* d1 = d + k2 * MRB;
      for (; 2 * p + 2 <= kc; ++p) {
        const __m512i v = interleave16(src + i0 + 2 * p * cs, src + i0 + (2 * p + 1) * cs);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + p * MRB), _mm512_castsi512_si256(v));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(d1 + p * MRB), _mm512_extracti64x4_epi64(v, 1));
      }
      for (int64_t q = p; q < k2; ++q)
        for (int r = 0; r < MRB; ++r) {
          const float* s = src + (i0 + MRB + r) * rs;
          d1[q * MRB + r] = pair_bits(s[2 * q * cs], 2 * q + 1 < kc ? s[(2 * q + 1) * cs] : 0.f);
        }
    }
#endif
    for (; p < k2; ++p) {
      uint32_t* o = d + p * MRB;
      int r = 0;
      for (; r < mb; ++r) {
        const float* s = src + (i0 + r) * rs;
        o[r] = pair_bits(s[2 * p * cs], 2 * p + 1 < kc ? s[(2 * p + 1) * cs] : 0.f);
      }
      for (; r < MRB; ++r) o[r] = 0u;
    }
    if (twoPanels) i0 += MRB;
  }
}

void pack_b_bf16(int64_t kc, int64_t nc, const float* src, int64_t rs, int64_t cs, uint16_t* dst) {
  const int64_t k2 = bf16_pairs(kc);
  const bool vec = g_bf16.load(std::memory_order_relaxed);
  (void)vec;  // only the AVX512-BF16 build has vector packing
  for (int64_t j0 = 0; j0 < nc; j0 += NRB) {
    const int nb = int(std::min<int64_t>(NRB, nc - j0));
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + j0 * 2 * k2);  // panel j0 / NRB: k2 pairs x NRB columns
    int64_t p = 0;
#if TL_BF16
    if (vec && nb == NRB && cs == 1) {
      // Rows contiguous: rows 2p and 2p+1 interleaved, one store per pair.
      for (; 2 * p + 2 <= kc; ++p)
        _mm512_storeu_si512(d + p * NRB, interleave16(src + 2 * p * rs + j0, src + (2 * p + 1) * rs + j0));
    } else if (vec && nb == NRB && rs == 1) {
      // Columns contiguous (a transposed operand): 8 columns x 8 pairs, converted and transposed in registers.
      for (; 2 * p + 16 <= kc; p += 8) {
        for (int h = 0; h < NRB; h += 8) {
          __m256 v[8];
          for (int c = 0; c < 8; ++c) v[c] = cvt16(src + (j0 + h + c) * cs + 2 * p);
          transpose8(v);
          for (int k = 0; k < 8; ++k) _mm256_storeu_ps(reinterpret_cast<float*>(d + (p + k) * NRB + h), v[k]);
        }
      }
    }
#endif
    for (; p < k2; ++p) {
      uint32_t* o = d + p * NRB;
      const float* s0 = src + 2 * p * rs;
      const float* s1 = 2 * p + 1 < kc ? s0 + rs : nullptr;
      int j = 0;
      for (; j < nb; ++j) o[j] = pair_bits(s0[(j0 + j) * cs], s1 ? s1[(j0 + j) * cs] : 0.f);
      for (; j < NRB; ++j) o[j] = 0u;
    }
  }
}

namespace {

// Portable path: the packed bf16 panels unpacked to float32 (exact) and multiplied by the float32 GEMM tile
// (gemm.h), so CPUs without AVX512-BF16 run bf16 at about float32 speed. Products of bf16 values are exact in
// float32; only the order of the float32 additions differs from vdpbf16ps (which adds a pair's two products in
// one step), a difference of float32 rounding.
void macro_emulated(int64_t mc, int64_t nc, int64_t kc, const uint16_t* Ap, const uint16_t* Bp, int64_t bs, float* C,
                    int64_t ldc, float alpha, float beta) {
  thread_local Scratch tb, ab, bb;
  const int64_t as = a_bf16_panel_stride(kc);
  const int64_t rows = std::max(mc, kc), cols = std::max(kc, nc);
  float* t = tb.floats(size_t(rows * cols));
  // A: element (i, k) = panel i / MRB, pair k / 2, row i % MRB, half k % 2.
  for (int64_t i = 0; i < mc; ++i)
    for (int64_t k = 0; k < kc; ++k) t[i * kc + k] = from_bf16(Ap[(i / MRB) * as + (k / 2) * 2 * MRB + (i % MRB) * 2 + (k % 2)]);
  float* Af = ab.floats(size_t(packed_a_size(mc, kc)));
  pack_a(mc, kc, t, kc, 1, Af);
  // B: element (k, j) = panel j / NRB, pair k / 2, column j % NRB, half k % 2.
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = 0; j < nc; ++j) t[k * nc + j] = from_bf16(Bp[(j / NRB) * bs + (k / 2) * 2 * NRB + (j % NRB) * 2 + (k % 2)]);
  float* Bf = bb.floats(size_t(packed_b_size(kc, nc)));
  pack_b(kc, nc, t, nc, 1, Bf);
  macro_kernel(mc, nc, kc, Af, Bf, kc * NR, C, ldc, alpha, beta, {});
}

#if TL_BF16
// MRB rows x NB panels of 16 columns: per pair, NB loads of B, MRB broadcasts of A, MRB*NB vdpbf16ps.
template <int NB>
inline void tile_bf16(int64_t k2, const uint16_t* __restrict a, const uint16_t* __restrict b, int64_t bs, float* C,
                      int64_t ldc, int mb, int nb, float alpha, float beta) {
  __m512 c[MRB][NB];
#pragma GCC unroll 8
  for (int r = 0; r < MRB; ++r)
#pragma GCC unroll 2
    for (int q = 0; q < NB; ++q) c[r][q] = _mm512_setzero_ps();
  const uint16_t* b1 = b + bs;
#pragma GCC unroll 2
  for (int64_t p = 0; p < k2; ++p) {
    __m512i bv[NB];
    bv[0] = _mm512_loadu_si512(b + p * 2 * NRB);
    if (NB == 2) bv[NB - 1] = _mm512_loadu_si512(b1 + p * 2 * NRB);
#pragma GCC unroll 8
    for (int r = 0; r < MRB; ++r) {
      int32_t x;
      std::memcpy(&x, a + p * 2 * MRB + 2 * r, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(x);
#pragma GCC unroll 2
      for (int q = 0; q < NB; ++q) c[r][q] = _mm512_dpbf16_ps(c[r][q], av, (__m512bh)bv[q]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 2
  for (int q = 0; q < NB; ++q) {
    const int lanes = std::min(NRB, nb - q * NRB);
    const __mmask16 m = lanes >= 16 ? __mmask16(0xffff) : __mmask16((1u << lanes) - 1u);
    for (int r = 0; r < mb; ++r) {
      float* pc = C + r * ldc + q * NRB;
      __m512 v = alpha == 1.f ? c[r][q] : _mm512_mul_ps(c[r][q], va);
      if (beta != 0.f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, pc), v);
      _mm512_mask_storeu_ps(pc, m, v);
    }
  }
}
#endif

}  // namespace

void macro_kernel_bf16(int64_t mc, int64_t nc, int64_t kc, const uint16_t* Ap, const uint16_t* Bp,
                       int64_t b_panel_stride, float* C, int64_t ldc, float alpha, float beta) {
  if (mc <= 0 || nc <= 0) return;
  if (!g_bf16.load(std::memory_order_relaxed) || kc <= 0) {
    macro_emulated(mc, nc, kc, Ap, Bp, b_panel_stride, C, ldc, alpha, beta);
    return;
  }
#if TL_BF16
  const int64_t k2 = bf16_pairs(kc), as = a_bf16_panel_stride(kc);
  for (int64_t j = 0; j < nc; j += 2 * NRB) {
    const int nb = int(std::min<int64_t>(2 * NRB, nc - j));
    const uint16_t* b = Bp + (j / NRB) * b_panel_stride;
    for (int64_t i = 0; i < mc; i += MRB) {
      const int mb = int(std::min<int64_t>(MRB, mc - i));
      const uint16_t* a = Ap + (i / MRB) * as;
      float* c = C + i * ldc + j;
      if (nb > NRB) tile_bf16<2>(k2, a, b, b_panel_stride, c, ldc, mb, nb, alpha, beta);
      else tile_bf16<1>(k2, a, b, b_panel_stride, c, ldc, mb, nb, alpha, beta);
    }
  }
#endif
}

}  // namespace tl
