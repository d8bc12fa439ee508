// A size-k min-heap of (score, id) with the worst entry at the root, shared by row-wise top-k and IVF search.
// Worse = lower score, or equal score and higher id: ties go to low ids, so results do not depend on scan order.
#pragma once
#include <cstdint>
#include <utility>

namespace tl {

struct ScoredId {
  float v;
  int32_t i;
};

inline bool worse(const ScoredId& a, const ScoredId& b) { return a.v < b.v || (a.v == b.v && a.i > b.i); }

inline void sift_up(ScoredId* h, int64_t x) {
  while (x > 0) {
    const int64_t p = (x - 1) / 2;
    if (!worse(h[x], h[p])) break;
    std::swap(h[x], h[p]);
    x = p;
  }
}

inline void sift_down(ScoredId* h, int64_t n, int64_t x) {
  for (;;) {
    const int64_t l = 2 * x + 1, r = l + 1;
    int64_t w = x;
    if (l < n && worse(h[l], h[w])) w = l;
    if (r < n && worse(h[r], h[w])) w = r;
    if (w == x) return;
    std::swap(h[x], h[w]);
    x = w;
  }
}

}  // namespace tl
