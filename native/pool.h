// Persistent thread pool with late-join semantics. The calling thread always works (tid 0); workers join
// a job only if they wake up while it is still open, so a descheduled worker (busy machine) never stalls
// the caller: jobs hand out work dynamically (atomic counters) and the caller finishes whatever is left.
#pragma once
#include <atomic>
#include <cstdint>

namespace tl {

// fn(ctx, tid) runs on the caller (tid 0) and on each worker that joins (tid in [1, n)). It must claim its
// work from ctx (e.g. an atomic counter) and return when none is left; it may also not be called at all
// for a given tid.
using JobFn = void (*)(void* ctx, int tid);

// Threads jobs may use (1 = calling thread only). Initially TOWERLAB_THREADS, else hardware_concurrency.
int threads();
// Clamp to [1, pool size] and use that many from now on; returns the value set.
int set_threads(int n);
// The pool size fixed at first use (the most set_threads accepts).
int max_threads();

// How many times the pool has fallen back to the calling thread alone for a second because workers kept
// arriving late (the machine is busier than its cores); for diagnostics.
int64_t parallel_backoffs();

// Runs fn as described above with up to min(nthreads, threads()) participants and returns when the caller's
// fn has returned and every worker that joined has left. A call made while another thread's job runs (JS
// worker_threads) or from inside a job runs fn(ctx, 0) alone.
void run(JobFn fn, void* ctx, int nthreads);

// Splits [0, total) into chunks of at least `grain` items handed out dynamically; body(begin, end, tid)
// may be called several times per tid. Runs inline when total * cost_per_item is below kParallelMinWork.
template <class F>
void parallel_ranges(int64_t total, int64_t grain, double cost_per_item, F&& body);

// Minimum estimated work (roughly in flops) before splitting a job across threads pays for the dispatch.
constexpr double kParallelMinWork = 200000.0;

}  // namespace tl

#include "pool_inl.h"
