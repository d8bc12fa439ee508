// User-history pooling kernels (semantics: history_pool.h, src/compute/backend.ts). Results are bit-identical to
// the TypeScript they replace (src/compute/js-history.ts): every update is done in double and rounded to float
// once, in the same order, and products are never fused into an FMA (that would skip the product's rounding).
// Threads: the forward splits rows, the backward splits unique items; each row / item is computed whole by one
// thread in a fixed order, so results do not depend on the thread count (pool.h's determinism rule).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "history_pool.h"

#include <algorithm>
#include <vector>

#include "pool.h"
#include "simd.h"

namespace tl {

namespace {

// o_j ← float(double(o_j) · s)
inline void scale_row(float* o, double s, int64_t d) {
  int64_t j = 0;
#if TL_AVX2
  const __m256d vs = _mm256_set1_pd(s);
  for (; j + 4 <= d; j += 4) {
    const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(o + j));
    _mm_storeu_ps(o + j, _mm256_cvtpd_ps(_mm256_mul_pd(v, vs)));
  }
#endif
  for (; j < d; ++j) o[j] = float(double(o[j]) * s);
}

// o_j ← float(double(o_j) + w · double(e_j)), the product rounded to double first (no FMA: see the pragma above;
// the empty asm keeps the product a separate value even where a compiler would contract regardless).
inline void add_scaled(float* o, double w, const float* e, int64_t d) {
  int64_t j = 0;
#if TL_AVX2
  const __m256d vw = _mm256_set1_pd(w);
  for (; j + 8 <= d; j += 8) {
    __m256d p0 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(e + j)), vw);
    __m256d p1 = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(e + j + 4)), vw);
    __asm__("" : "+x"(p0), "+x"(p1));
    const __m256d s0 = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(o + j)), p0);
    const __m256d s1 = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(o + j + 4)), p1);
    _mm_storeu_ps(o + j, _mm256_cvtpd_ps(s0));
    _mm_storeu_ps(o + j + 4, _mm256_cvtpd_ps(s1));
  }
#endif
  for (; j < d; ++j) {
    double p = w * double(e[j]);
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+x"(p));
#elif defined(__aarch64__)
    __asm__("" : "+w"(p));
#endif
    o[j] = float(double(o[j]) + p);
  }
}

}  // namespace

void history_pool_forward(const HistoryPoolArgs& a, const float* table, float* x) {
  const int64_t n = a.n, d = a.dim;
  if (n <= 0 || d <= 0) return;
  const double g = a.gate;
  int64_t picks = 0;
  for (int64_t r = 0; r < n; ++r) picks += history_count(a, a.ids[r]);
  const double costPerRow = (double(picks) / double(n) + 1.0) * double(d) * 3.0;
  parallel_ranges(n, 1, costPerRow, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      float* o = x + r * d;
      scale_row(o, g, d);
      const int64_t u = a.ids[r];
      const int64_t c = history_count(a, u);
      if (c == 0) continue;
      const double w = (1.0 - g) / double(c);
      for (int64_t k = 0; k < c; ++k) add_scaled(o, w, table + int64_t(a.cols[history_pick(a, u, k)]) * d, d);
    }
  });
}

int64_t history_pool_backward(const HistoryPoolArgs& a, int64_t tableRows, float* dX, int32_t* uniq, float* grads) {
  const int64_t n = a.n, d = a.dim;
  if (n <= 0) return 0;
  // Serial pass: slots in first-use order (rows, then k), and each use's (slot, row).
  thread_local std::vector<int32_t> slot, useSlot, useRow, start, byItem;
  if (int64_t(slot.size()) < tableRows) slot.assign(size_t(tableRows), -1);
  int64_t picks = 0;
  for (int64_t r = 0; r < n; ++r) picks += history_count(a, a.ids[r]);
  useSlot.resize(size_t(picks));
  useRow.resize(size_t(picks));
  int64_t u = 0, p = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t user = a.ids[r];
    const int64_t c = history_count(a, user);
    for (int64_t k = 0; k < c; ++k) {
      const int32_t item = a.cols[history_pick(a, user, k)];
      int32_t s = slot[item];
      if (s < 0) {
        s = int32_t(u);
        slot[item] = s;
        uniq[u++] = item;
      }
      useSlot[p] = s;
      useRow[p++] = int32_t(r);
    }
  }
  for (int64_t s = 0; s < u; ++s) slot[uniq[s]] = -1;
  // Uses grouped by slot, stable (each item's uses stay in (row, k) order): a counting sort.
  start.assign(size_t(u + 1), 0);
  for (int64_t q = 0; q < picks; ++q) ++start[useSlot[q] + 1];
  for (int64_t s = 0; s < u; ++s) start[s + 1] += start[s];
  byItem.resize(size_t(picks));
  for (int64_t q = 0; q < picks; ++q) byItem[start[useSlot[q]]++] = useRow[q];  // start[s] ends at slot s's end
  for (int64_t s = u; s > 0; --s) start[s] = start[s - 1];
  start[0] = 0;
  if (d > 0 && u > 0) {
    const double g = a.gate;
    const double costPerItem = (double(picks) / double(u)) * double(d) * 3.0;
    // The scratch is this thread's (thread_local): workers must reach it through pointers, not by name.
    const int32_t* st = start.data();
    const int32_t* rowOf = byItem.data();
    parallel_ranges(u, 1, costPerItem, [&](int64_t s0, int64_t s1, int) {
      for (int64_t s = s0; s < s1; ++s) {
        float* o = grads + s * d;
        std::fill(o, o + d, 0.f);
        for (int32_t q = st[s]; q < st[s + 1]; ++q) {
          const int64_t r = rowOf[q];
          const double w = (1.0 - g) / double(history_count(a, a.ids[r]));
          add_scaled(o, w, dX + r * d, d);
        }
      }
    });
    parallel_ranges(n, 16, double(d), [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) scale_row(dX + r * d, g, d);
    });
  }
  return u;
}

}  // namespace tl
