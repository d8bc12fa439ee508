// Template part of pool.h.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace tl {

template <class F>
struct RangesJob {
  F* body;
  int64_t total, grain;
  static void call(void* p, int tid, int n) {
    auto* j = static_cast<RangesJob*>(p);
    int64_t chunks = (j->total + j->grain - 1) / j->grain;
    int64_t c0 = chunks * tid / n, c1 = chunks * (tid + 1) / n;
    int64_t b = std::min(j->total, c0 * j->grain), e = std::min(j->total, c1 * j->grain);
    if (b < e) (*j->body)(b, e, tid);
  }
};

template <class F>
void parallel_ranges(int64_t total, int64_t grain, double cost_per_item, F&& body) {
  if (total <= 0) return;
  if (grain < 1) grain = 1;
  int n = threads();
  if (n <= 1 || double(total) * cost_per_item < kParallelMinWork || total <= grain) {
    body(int64_t(0), total, 0);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  RangesJob<Fn> job{&body, total, grain};
  run(&RangesJob<Fn>::call, &job, n);
}

}  // namespace tl
