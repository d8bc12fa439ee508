// Row-wise top-k with a size-k min-heap; a vector compare against the heap's worst value skips most
// columns once the heap is full.
#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "min_heap.h"
#include "ops.h"
#include "pool.h"
#include "simd.h"

namespace tl {
namespace {

void topk_row(const float* s, int64_t cols, int64_t k, ScoredId* h, int32_t* outIdx, float* outVal) {
  const float ninf = -std::numeric_limits<float>::infinity();
  int64_t cnt = 0, j = 0;
  for (; j < cols && cnt < k; ++j) {
    if (s[j] > ninf) {  // skips -inf and NaN
      h[cnt] = {s[j], int32_t(j)};
      sift_up(h, cnt++);
    }
  }
  if (cnt == k && k > 0) {
    // Later columns have higher indices, so only a strictly greater value can displace the root.
    auto offer = [&](int64_t jj) {
      if (s[jj] > h[0].v) {
        h[0] = {s[jj], int32_t(jj)};
        sift_down(h, k, 0);
      }
    };
#if TL_AVX2
    __m256 thr = _mm256_set1_ps(h[0].v);
    for (; j + 8 <= cols; j += 8) {
      unsigned m = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(s + j), thr, _CMP_GT_OQ)));
      if (!m) continue;
      for (; m; m &= m - 1) offer(j + __builtin_ctz(m));
      thr = _mm256_set1_ps(h[0].v);
    }
#endif
    for (; j < cols; ++j) offer(j);
  }
  std::sort(h, h + cnt, [](const ScoredId& a, const ScoredId& b) { return worse(b, a); });
  for (int64_t x = 0; x < k; ++x) {
    outIdx[x] = x < cnt ? h[x].i : -1;
    outVal[x] = x < cnt ? h[x].v : ninf;
  }
}

}  // namespace

void topk_rows(const float* scores, int64_t rows, int64_t cols, int64_t k, int32_t* outIdx, float* outVal) {
  if (k <= 0) return;
  const int64_t hk = std::min(k, cols);
  parallel_ranges(rows, 1, double(cols) + double(hk) * 8.0, [&](int64_t r0, int64_t r1, int) {
    thread_local std::vector<ScoredId> heap;
    if (int64_t(heap.size()) < hk) heap.resize(size_t(hk));
    for (int64_t r = r0; r < r1; ++r)
      topk_row(scores + r * cols, cols, k, heap.data(), outIdx + r * k, outVal + r * k);
  });
}

}  // namespace tl
