// Persistent thread pool. The calling thread takes part as thread 0, so `threads()` = workers + 1.
// Workers spin briefly after each job (calls arrive back to back within a training step) and then sleep.
#pragma once
#include <cstdint>

namespace tl {

using JobFn = void (*)(void* ctx, int tid, int nthreads);

// Number of threads jobs use (1 = calling thread only). Initially TOWERLAB_THREADS, else
// hardware_concurrency, else 2.
int threads();
// Clamp to [1, threads the pool was created with] and use that many from now on; returns the value set.
int set_threads(int n);
// Largest value set_threads accepts.
int max_threads();

// Runs fn(ctx, tid, n) for tid in [0, n) with n = min(nthreads, threads()), the caller doing tid 0, and
// returns when all are done. Runs single-threaded (n = 1) when nthreads <= 1 or the pool is busy with a
// call from another JS thread.
void run(JobFn fn, void* ctx, int nthreads);

// Convenience: split [0, total) into contiguous ranges, one per thread, each a multiple of `grain`
// (except the last), and call body(begin, end, tid). Runs inline when total * cost_per_item is small.
template <class F>
void parallel_ranges(int64_t total, int64_t grain, double cost_per_item, F&& body);

// Minimum estimated work (in flop-like units) before a job is worth splitting across threads.
constexpr double kParallelMinWork = 200000.0;

}  // namespace tl

#include "pool_inl.h"
