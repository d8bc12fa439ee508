// Growable, 64-byte aligned scratch buffers. Declared thread_local by their users, so each OS thread (pool
// workers and any JS thread calling in) owns its own and the hot path never allocates after warm-up.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

namespace tl {

class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }

  // At least n floats; contents are unspecified after growth.
  float* floats(size_t n) {
    size_t bytes = n * sizeof(float);
    if (bytes > cap_) {
      std::free(p_);
      cap_ = (bytes + 4095) & ~size_t(4095);  // page multiple, also satisfies aligned_alloc's size rule
      p_ = std::aligned_alloc(64, cap_);
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
    }
    return static_cast<float*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace tl
