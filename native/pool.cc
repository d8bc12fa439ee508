#include "pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <new>
#include <mutex>
#include <thread>

#ifdef __linux__
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace tl {
namespace {

int env_int(const char* name, int fallback, int lo, int hi) {
  const char* s = std::getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  return (end && *end == 0 && v >= lo && v <= hi) ? int(v) : fallback;
}

thread_local bool tInJob = false;
using Clock = std::chrono::steady_clock;

// Job state in one word: generation (high 32 bits) | open flag | number of workers inside the job.
constexpr uint64_t kOpen = uint64_t(1) << 31;
constexpr uint64_t kCountMask = kOpen - 1;
inline uint32_t gen_of(uint64_t s) { return uint32_t(s >> 32); }

class Pool {
 public:
  Pool() {
    const unsigned hc = std::thread::hardware_concurrency();
    size_ = env_int("TOWERLAB_THREADS", hc ? int(std::min(hc, 64u)) : 2, 1, 64);  // kernels keep per-thread state for <= 64
    active_ = size_;
    // How long an idle worker polls before sleeping: long enough to bridge the JS glue between the kernels
    // of a training step, short enough not to burn a core between steps.
    spin_ns_ = int64_t(env_int("TOWERLAB_SPIN_US", 100, 0, 1000000)) * 1000;
    guard_ = env_int("TOWERLAB_PARALLEL_GUARD", 1, 0, 1) == 1;
    // Workers are never joined: the pool lives until the process exits (destroying a joinable std::thread
    // at exit would call std::terminate).
    for (int i = 1; i < size_; ++i) std::thread([this, i] { worker(i); }).detach();
  }

  int size() const { return size_; }
  int64_t backoffs() const { return backoffs_.load(std::memory_order_relaxed); }
  int64_t worker_jobs() const { return worker_jobs_.load(std::memory_order_relaxed); }
  int active() const { return active_.load(std::memory_order_relaxed); }
  int set_active(int n) {
    n = n < 1 ? 1 : (n > size_ ? size_ : n);
    active_.store(n, std::memory_order_relaxed);
    return n;
  }

  void run(JobFn fn, void* ctx, int n) {
    if (n > active()) n = active();
    if (n <= 1 || tInJob) {
      alone(fn, ctx);
      return;
    }
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock() || Clock::now() < backoff_until_) {
      alone(fn, ctx);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
#ifdef __linux__
    caller_cpu_ = sched_getcpu();
#endif
    const uint32_t g = ++gen_;
    state_.store((uint64_t(g) << 32) | kOpen, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
    // An exception (only allocation failure) must not leave the job open: finish the protocol, then throw.
    std::exception_ptr err;
    const auto t0 = Clock::now();
    try {
      alone(fn, ctx);
    } catch (...) {
      err = std::current_exception();
    }
    const auto t1 = Clock::now();
    close_and_wait();
    note_wait(t1 - t0, Clock::now() - t1, t1);
    if (worker_failed_.exchange(false) && !err) err = std::make_exception_ptr(std::bad_alloc());
    if (err) std::rethrow_exception(err);
  }

 private:
  static void alone(JobFn fn, void* ctx) {
    struct Flag {
      bool outer = tInJob;
      Flag() { tInJob = true; }
      ~Flag() { tInJob = outer; }
    } flag;
    fn(ctx, 0);
  }

  // Oversubscription guard. On a machine busier than its cores, a worker that took a share of a job can be
  // descheduled for a whole time slice, and the caller then waits far longer than the job took it. After a
  // few such jobs in a row the pool runs jobs on the calling thread alone for a while, then tries again.
  void note_wait(Clock::duration work, Clock::duration wait, Clock::time_point now) {
    if (!guard_) return;
    if (wait > std::chrono::microseconds(50) && wait > work / 2) {
      if (++strikes_ >= 3) {
        strikes_ = 0;
        ++backoffs_;
        backoff_until_ = now + std::chrono::seconds(1);
      }
    } else if (strikes_ > 0) {
      --strikes_;
    }
  }

  // Close the job; then only workers already inside remain, and they are working, not waking up.
  void close_and_wait() {
    const uint64_t s = state_.fetch_and(~kOpen, std::memory_order_seq_cst);
    if ((s & kCountMask) == 0) return;
    // Spin briefly, then block: on a busy machine a spinning caller would hold the very core that the
    // descheduled worker it waits for could run on.
    for (uint32_t i = 0; i < 2000; ++i) {
      cpu_relax();
      if ((state_.load(std::memory_order_acquire) & kCountMask) == 0) return;
    }
    std::unique_lock<std::mutex> lk(done_mu_);
    caller_waiting_.store(true, std::memory_order_seq_cst);
    while ((state_.load(std::memory_order_seq_cst) & kCountMask) != 0) done_cv_.wait(lk);
    caller_waiting_.store(false, std::memory_order_relaxed);
  }

  void worker(int id) {
    tInJob = true;
    uint32_t seen = gen_of(state_.load(std::memory_order_acquire));
    for (;;) {
      uint64_t s = wait_new_gen(seen);
      seen = gen_of(s);
      // Join only while the job is open (CAS, so a close in between is seen).
      bool joined = false;
      while ((s & kOpen) && gen_of(s) == seen) {
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;
#ifdef __linux__
      // Woken onto the caller's core (the scheduler does that when the other cores are busy): working here
      // would only preempt the caller. Leave the job to it and sleep rather than spin.
      if (caller_cpu_ >= 0 && sched_getcpu() == caller_cpu_) {
        state_.fetch_sub(1, std::memory_order_seq_cst);
        notify_if_last_out();
        skip_spin_ = true;
        continue;
      }
#endif
      if (id < n_) {
        worker_jobs_.fetch_add(1, std::memory_order_relaxed);
        try {
          fn_(ctx_, id);
        } catch (...) {
          worker_failed_.store(true, std::memory_order_relaxed);
        }
      }
      state_.fetch_sub(1, std::memory_order_seq_cst);
      notify_if_last_out();
    }
  }

  // After a worker leaves: wake the caller if it sleeps waiting for the job's last worker.
  void notify_if_last_out() {
    const uint64_t s = state_.load(std::memory_order_seq_cst);
    if ((s & kCountMask) == 0 && !(s & kOpen) && caller_waiting_.load(std::memory_order_seq_cst)) {
      std::lock_guard<std::mutex> lk(done_mu_);
      done_cv_.notify_one();
    }
  }

  uint64_t wait_new_gen(uint32_t seen) {
    // Spin first, unless spinning was recently seen to be preempted: then the cores are oversubscribed and
    // a spinning worker only takes CPU time from the threads doing the work.
    auto last = Clock::now();
    const auto t0 = last;
    const bool spin = spin_ns_ > 0 && t0 >= no_spin_until_ && !skip_spin_;
    skip_spin_ = false;
    for (uint32_t i = 1; spin; ++i) {
      const uint64_t s = state_.load(std::memory_order_acquire);
      if (gen_of(s) != seen) return s;
      cpu_relax();
      if ((i & 127) == 0) {
        const auto now = Clock::now();
        if (now - last > std::chrono::microseconds(200)) {  // 128 pauses take a few microseconds
          no_spin_until_ = now + std::chrono::seconds(1);
          break;
        }
        if (now - t0 > std::chrono::nanoseconds(spin_ns_)) break;
        last = now;
      }
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    uint64_t s;
    while (gen_of(s = state_.load(std::memory_order_seq_cst)) == seen) cv_.wait(lk);
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    return s;
  }

  int size_ = 1;
  std::atomic<int> active_{1};
  int64_t spin_ns_ = 0;
  static thread_local Clock::time_point no_spin_until_;  // per worker
  static thread_local bool skip_spin_;
  std::mutex call_mu_;  // one job at a time (JS worker_threads share this process-wide pool)
  // Published before the state word opens a job; read by workers only after joining it.
  JobFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_ = 1;
  int caller_cpu_ = -1;
  uint32_t gen_ = 0;
  std::atomic<uint64_t> state_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mu_;  // sleeping workers
  std::condition_variable cv_;
  std::atomic<bool> caller_waiting_{false};
  std::atomic<bool> worker_failed_{false};
  std::atomic<int64_t> worker_jobs_{0};
  // Oversubscription guard state (guarded by call_mu_); TOWERLAB_PARALLEL_GUARD=0 turns it off.
  bool guard_ = true;
  int strikes_ = 0;
  Clock::time_point backoff_until_{};
  std::atomic<int64_t> backoffs_{0};  // the caller sleeps until the last worker leaves
  std::mutex done_mu_;
  std::condition_variable done_cv_;
};

thread_local Clock::time_point Pool::no_spin_until_{};
thread_local bool Pool::skip_spin_ = false;

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose, see the constructor
  return *p;
}

}  // namespace

int threads() { return pool().active(); }
int set_threads(int n) { return pool().set_active(n); }
int max_threads() { return pool().size(); }
int64_t parallel_backoffs() { return pool().backoffs(); }
int64_t worker_jobs() { return pool().worker_jobs(); }

namespace {
std::atomic<int64_t> g_thread_tasks[64];
}
void count_task(int tid) {
  if (tid >= 0 && tid < 64) g_thread_tasks[tid].fetch_add(1, std::memory_order_relaxed);
}
int64_t thread_tasks(int tid) { return tid >= 0 && tid < 64 ? g_thread_tasks[tid].load(std::memory_order_relaxed) : 0; }
void run(JobFn fn, void* ctx, int nthreads) { pool().run(fn, ctx, nthreads); }

}  // namespace tl
