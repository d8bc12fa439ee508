// IVF-Flat search (src/index/ivf-index.ts): score the query against every list centroid, keep the nprobe
// best lists, scan their vectors (stored contiguously per list) with a dot-product kernel and keep the k
// best in a min-heap. One query on the calling thread: a server answers many small queries concurrently.
#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "min_heap.h"
#include "ops.h"
#include "simd.h"

namespace tl {
namespace {

class TopK {
 public:
  TopK(std::vector<ScoredId>& buf, int64_t k) : h_(buf), k_(k) {
    if (int64_t(h_.size()) < k) h_.resize(size_t(k));
  }
  float threshold() const { return n_ < k_ ? -std::numeric_limits<float>::infinity() : h_[0].v; }
  void offer(float v, int32_t i) {
    if (!(v > -std::numeric_limits<float>::infinity())) return;  // -inf and NaN never enter
    if (n_ < k_) {
      h_[size_t(n_)] = {v, i};
      sift_up(h_.data(), n_++);
    } else if (worse(h_[0], ScoredId{v, i})) {
      h_[0] = {v, i};
      sift_down(h_.data(), k_, 0);
    }
  }
  // Best first into out; returns the count.
  int64_t drain(int32_t* idx, float* val) {
    std::sort(h_.begin(), h_.begin() + n_, [](const ScoredId& a, const ScoredId& b) { return worse(b, a); });
    for (int64_t x = 0; x < n_; ++x) {
      idx[x] = h_[size_t(x)].i;
      val[x] = h_[size_t(x)].v;
    }
    return n_;
  }

 private:
  std::vector<ScoredId>& h_;
  int64_t k_, n_ = 0;
};


// Four rows at once: the query stays in registers and the four horizontal sums overlap.
inline void dot4(const float* q, const float* r, int64_t d, float* out) {
#if TL_AVX2
  if (d % 8 == 0) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (int64_t t = 0; t < d; t += 8) {
      const __m256 qv = _mm256_loadu_ps(q + t);
      s0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + t), s0);
      s1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + d + t), s1);
      s2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + 2 * d + t), s2);
      s3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(r + 3 * d + t), s3);
    }
    // Transpose-add: lane sums of s0..s3 into one 128-bit vector.
    const __m256 h01 = _mm256_hadd_ps(s0, s1), h23 = _mm256_hadd_ps(s2, s3);
    const __m256 h = _mm256_hadd_ps(h01, h23);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    return;
  }
#endif
  for (int x = 0; x < 4; ++x) out[x] = dot(q, r + x * d, d);
}

}  // namespace

int64_t ivf_search(const float* q, const float* cent, int64_t lists, const int32_t* off, const float* vec,
                   const int32_t* ids, int64_t n, int64_t d, int64_t nprobe, int64_t k, int32_t* outIdx,
                   float* outVal) {
  thread_local std::vector<ScoredId> probeBuf, hitBuf;
  thread_local std::vector<int32_t> order;
  thread_local std::vector<float> orderScore;
  nprobe = std::min(nprobe, lists);
  if (k <= 0 || nprobe <= 0) return 0;
  // The nprobe closest lists, by centroid score.
  TopK probe(probeBuf, nprobe);
  int64_t l = 0;
  float s4[4];
  for (; l + 4 <= lists; l += 4) {
    dot4(q, cent + l * d, d, s4);
    for (int x = 0; x < 4; ++x) probe.offer(s4[x], int32_t(l + x));
  }
  for (; l < lists; ++l) probe.offer(dot(q, cent + l * d, d), int32_t(l));
  if (int64_t(order.size()) < nprobe) order.resize(size_t(nprobe)), orderScore.resize(size_t(nprobe));
  const int64_t np = probe.drain(order.data(), orderScore.data());

  TopK top(hitBuf, k);
  for (int64_t p = 0; p < np; ++p) {
    const int64_t li = order[size_t(p)];
    const int64_t b = off[li], e = off[li + 1];
    if (b < 0 || e < b || e > n) continue;  // malformed offsets (checked at load; never read out of range)
    int64_t j = b;
    for (; j + 4 <= e; j += 4) {
      dot4(q, vec + j * d, d, s4);
      const float thr = top.threshold();
      for (int x = 0; x < 4; ++x)
        if (s4[x] >= thr) top.offer(s4[x], ids[j + x]);
    }
    for (; j < e; ++j) top.offer(dot(q, vec + j * d, d), ids[j]);
  }
  return top.drain(outIdx, outVal);
}

}  // namespace tl
