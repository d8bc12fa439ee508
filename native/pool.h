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

// How many times a pool worker has taken part in a job (ran fn); for diagnostics and tests that need to know
// whether work was really shared.
int64_t worker_jobs();

// Pieces of work (ranges of parallel_ranges, chunks of parallel_chunks) each thread id has run so far, for tests
// that must know a second thread really computed something (not only joined a job). Counted per tid < 64;
// parallel_ranges/parallel_chunks count for their bodies, a job run through run() directly calls it per piece.
void count_task(int tid);
int64_t thread_tasks(int tid);

// Runs fn as described above with up to min(nthreads, threads()) participants and returns when the caller's
// fn has returned and every worker that joined has left. A call made while another thread's job runs (JS
// worker_threads) or from inside a job runs fn(ctx, 0) alone.
void run(JobFn fn, void* ctx, int nthreads);

// Determinism rule for every kernel: its output must be bit-identical whatever the number of threads that
// actually run a job (threads(), TOWERLAB_THREADS, workers joining late or not at all, the oversubscription
// guard running a job on the caller alone). So work is cut into pieces that depend on the problem size only,
// never on the thread count, and anything summed across pieces (loss sums, split-K products, column sums,
// gradient partials) is kept per piece and reduced in piece order afterwards. Threads only decide who
// computes which piece.

// Splits [0, total) into ranges of at least `grain` items handed out dynamically; body(begin, end, tid)
// may be called several times per tid. Runs inline when total * cost_per_item is below kParallelMinWork.
// The split depends on the thread count, so body must compute each item independently of the range it
// falls in (elementwise or row-wise work; keep `grain` a multiple of the SIMD width so vector/scalar-tail
// boundaries stay where a single range would put them). For sums across items use parallel_chunks.
template <class F>
void parallel_ranges(int64_t total, int64_t grain, double cost_per_item, F&& body);

// Runs body(chunk, tid) once for every chunk in [0, nchunks), handed out dynamically (in increasing order
// on any one thread). The caller fixes nchunks from the problem size, so per-chunk results (partial sums
// reduced in chunk order afterwards) do not depend on how many threads ran. Runs inline, in chunk order,
// when nchunks * cost_per_chunk is below kParallelMinWork.
template <class F>
void parallel_chunks(int64_t nchunks, double cost_per_chunk, F&& body);

// Fixed chunk size for reductions over [0, total): ceil(total / max_chunks) rounded up to a multiple of
// `grain`, and at least `grain`; depends on the problem size only.
inline int64_t fixed_chunk(int64_t total, int64_t max_chunks, int64_t grain) {
  if (grain < 1) grain = 1;
  if (max_chunks < 1) max_chunks = 1;
  int64_t c = (total + max_chunks - 1) / max_chunks;
  c = (c + grain - 1) / grain * grain;
  return c < grain ? grain : c;
}

// Minimum estimated work (roughly in flops) before splitting a job across threads pays for the dispatch.
constexpr double kParallelMinWork = 200000.0;

}  // namespace tl

#include "pool_inl.h"
