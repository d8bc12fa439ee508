#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace tl {
namespace {

int env_int(const char* name, int fallback) {
  const char* s = std::getenv(name);
  if (!s || !*s) return fallback;
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  return (end && *end == 0 && v > 0 && v < 1024) ? int(v) : fallback;
}

class Pool {
 public:
  Pool() {
    unsigned hc = std::thread::hardware_concurrency();
    size_ = env_int("TOWERLAB_THREADS", hc ? int(hc) : 2);
    active_ = size_;
    // How long an idle worker keeps polling before it sleeps: long enough to bridge the JS glue between
    // the kernels of one training step, short enough not to burn a core between steps.
    spin_ns_ = int64_t(env_int("TOWERLAB_SPIN_US", 300)) * 1000;
    // Threads are never joined: the pool lives until the process exits (a joinable std::thread destroyed
    // at exit would call std::terminate).
    for (int i = 1; i < size_; ++i) {
      auto* t = new std::thread([this, i] { worker(i); });
      t->detach();
      delete t;
    }
  }

  int size() const { return size_; }
  int active() const { return active_.load(std::memory_order_relaxed); }
  int set_active(int n) {
    n = n < 1 ? 1 : (n > size_ ? size_ : n);
    active_.store(n, std::memory_order_relaxed);
    return n;
  }

  void run(JobFn fn, void* ctx, int n) {
    if (n > active()) n = active();
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (n <= 1 || !call.owns_lock()) {
      fn(ctx, 0, 1);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    // Every worker acknowledges every epoch (even those with no share), so none can lag into the next job.
    remaining_.store(size_ - 1, std::memory_order_seq_cst);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
    fn(ctx, 0, n);
    for (uint32_t spins = 0; remaining_.load(std::memory_order_acquire) > 0; ++spins) {
      if (spins < 20000) cpu_relax();
      else std::this_thread::yield();
    }
  }

 private:
  void worker(int id) {
    uint32_t seen = epoch_.load(std::memory_order_acquire);
    for (;;) {
      uint32_t e = wait_epoch(seen);
      seen = e;
      if (id < n_) fn_(ctx_, id, n_);
      remaining_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  uint32_t wait_epoch(uint32_t seen) {
    auto t0 = std::chrono::steady_clock::now();
    for (uint32_t i = 1;; ++i) {
      uint32_t e = epoch_.load(std::memory_order_acquire);
      if (e != seen) return e;
      cpu_relax();
      if ((i & 255) == 0 &&
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count() >
              spin_ns_)
        break;
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    uint32_t e;
    while ((e = epoch_.load(std::memory_order_seq_cst)) == seen) cv_.wait(lk);
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    return e;
  }

  int size_ = 1;
  std::atomic<int> active_{1};
  int64_t spin_ns_ = 0;
  std::mutex call_mu_;  // one job at a time (JS worker_threads may share the process-wide pool)
  JobFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int n_ = 1;
  std::atomic<uint32_t> epoch_{0};
  std::atomic<int> remaining_{0};
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose, see the constructor
  return *p;
}

}  // namespace

int threads() { return pool().active(); }
int set_threads(int n) { return pool().set_active(n); }
int max_threads() { return pool().size(); }
void run(JobFn fn, void* ctx, int nthreads) { pool().run(fn, ctx, nthreads); }

}  // namespace tl
