// Template part of pool.h.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

namespace tl {

template <class F>
struct RangesJob {
  F* body;
  int64_t total, chunk;
  std::atomic<int64_t> next{0};
  static void call(void* p, int tid) {
    auto* j = static_cast<RangesJob*>(p);
    for (;;) {
      const int64_t b = j->next.fetch_add(j->chunk, std::memory_order_relaxed);
      if (b >= j->total) return;
      (*j->body)(b, std::min(j->total, b + j->chunk), tid);
      count_task(tid);
    }
  }
};

template <class F>
void parallel_ranges(int64_t total, int64_t grain, double cost_per_item, F&& body) {
  if (total <= 0) return;
  if (grain < 1) grain = 1;
  const int n = threads();
  if (n <= 1 || double(total) * cost_per_item < kParallelMinWork || total <= grain) {
    body(int64_t(0), total, 0);
    count_task(0);
    return;
  }
  // About 4 chunks per thread: small enough to rebalance when a thread is late, large enough to amortise.
  int64_t chunk = (total + 4 * n - 1) / (4 * n);
  chunk = (std::max(chunk, grain) + grain - 1) / grain * grain;
  using Fn = std::remove_reference_t<F>;
  RangesJob<Fn> job;
  job.body = &body;
  job.total = total;
  job.chunk = chunk;
  run(&RangesJob<Fn>::call, &job, n);
}

template <class F>
struct ChunksJob {
  F* body;
  int64_t nchunks;
  std::atomic<int64_t> next{0};
  static void call(void* p, int tid) {
    auto* j = static_cast<ChunksJob*>(p);
    for (;;) {
      const int64_t c = j->next.fetch_add(1, std::memory_order_relaxed);
      if (c >= j->nchunks) return;
      (*j->body)(c, tid);
      count_task(tid);
    }
  }
};

template <class F>
void parallel_chunks(int64_t nchunks, double cost_per_chunk, F&& body) {
  if (nchunks <= 0) return;
  const int n = threads();
  if (n <= 1 || nchunks == 1 || double(nchunks) * cost_per_chunk < kParallelMinWork) {
    for (int64_t c = 0; c < nchunks; ++c) body(c, 0), count_task(0);
    return;
  }
  using Fn = std::remove_reference_t<F>;
  ChunksJob<Fn> job;
  job.body = &body;
  job.nchunks = nchunks;
  run(&ChunksJob<Fn>::call, &job, int(std::min<int64_t>(n, nchunks)));
}

}  // namespace tl
