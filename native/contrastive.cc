#include "contrastive.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "gemm.h"
#include "pool.h"
#include "scratch.h"
#include "simd.h"

namespace tl {
namespace {

constexpr int kMaxThreads = 64;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Query rows per tile, a multiple of MR. Larger tiles amortise the dc update (its depth is the tile height)
// and the per-tile packing, up to where the tile's logits (T x N floats) leave L2. Large problems get at
// least kMinTiles tiles so there is work to share. Depends on the problem size only (never on the thread
// count): the dc sums' order follows the tiling. TOWERLAB_CTILE overrides (for tuning).
constexpr int64_t kMinTiles = 6;
int64_t tile_rows(int64_t B, int64_t N, bool parallel) {
  static const long forced = [] {
    const char* s = std::getenv("TOWERLAB_CTILE");
    return s ? std::strtol(s, nullptr, 10) : 0L;
  }();
  if (forced >= MR && forced <= 1024) return int64_t(forced) / MR * MR;
  const int64_t tmax = std::max<int64_t>(48, std::min<int64_t>(144, 131072 / std::max<int64_t>(N, 1)));
  int64_t tiles = (B + tmax - 1) / tmax;
  if (parallel) tiles = std::max(tiles, kMinTiles);
  const int64_t t = (B + tiles - 1) / tiles;
  return std::max<int64_t>(MR, (t + MR - 1) / MR * MR);
}

// Chunks: runs of consecutive tiles, the unit handed to a thread, each with its own dc partial (N x d) and
// loss sum. Their number depends on B only, never on the threads. Adding a chunk's partial into dc moves
// N x d floats against its 6 x rows x N x d flops, so chunks of about 256+ rows keep that near 2%; an even
// count balances two threads. TOWERLAB_CCHUNKS overrides (1..64, for tuning).
int64_t max_chunks(int64_t B) {
  static const long forced = [] {
    const char* s = std::getenv("TOWERLAB_CCHUNKS");
    const long x = s ? std::strtol(s, nullptr, 10) : 0L;
    return x >= 1 && x <= 64 ? x : 0L;
  }();
  if (forced) return int64_t(forced);
  return 2 * std::max<int64_t>(1, std::min<int64_t>(8, (B + 256) / 512));
}

constexpr int64_t kMaxChunks = 64;

struct Job {
  const ContrastiveIn* in;
  float invSumW;
  const float* cBt;  // c packed as the B operand of q c^T (depth d, N columns)
  const float* cB;   // c packed as the B operand of G c (depth N, d columns); null without dq
  int64_t T, ldS;
  int64_t tilesPerChunk, nchunks;
  std::atomic<int64_t> next{0};
  double loss[kMaxChunks] = {};  // per chunk
  // dc = p0 + p1 + p2 + ... added elementwise in chunk order, p_c being chunk c's partial. Chunk 0 writes dc
  // itself; chunk c > 0 is added ("folded") into dc as soon as it and every chunk before it are finished.
  // A chunk that starts with all earlier chunks folded will be folded right after it ends, so it uses a
  // reused per-thread buffer (cache-hot); otherwise it keeps its partial in its own slot until its turn.
  float* dcSlots = nullptr;  // chunk c's slot: dcSlots + (c-1)*N*d
  const float* dcSrc[kMaxChunks] = {};
  std::atomic<bool> done[kMaxChunks];
  std::atomic<int64_t> folded{0};  // chunks [0, folded) are in dc
  std::atomic<int> folding{0};     // 1 while a thread folds
  Job() {
    for (auto& x : done) x.store(false, std::memory_order_relaxed);
  }
};

// Folds finished chunks into dc in order, as far as they go. One thread folds at a time; a thread that finds
// another folding leaves, and the folder looks again after it stops, so no finished chunk is left behind.
void try_fold(Job& job) {
  const ContrastiveIn& in = *job.in;
  const int64_t nd = in.N * in.d;
  for (;;) {
    if (job.folding.exchange(1, std::memory_order_seq_cst)) return;
    int64_t f = job.folded.load(std::memory_order_relaxed);
    while (f < job.nchunks && job.done[f].load(std::memory_order_seq_cst)) {
      if (f > 0) {
        const float* __restrict p = job.dcSrc[f];
        float* __restrict dc = in.dc;
        for (int64_t x = 0; x < nd; ++x) dc[x] += p[x];
      }
      job.folded.store(++f, std::memory_order_release);
    }
    job.folding.store(0, std::memory_order_seq_cst);
    if (!(f < job.nchunks && job.done[f].load(std::memory_order_seq_cst))) return;
  }
}

// Turns one row of raw similarities into scaled gradient coefficients in place and returns its loss:
// z = scale*s + bias with masked entries at -inf; G = scale * w/sumW * (softmax - onehot).
inline double softmax_row(const ContrastiveIn& in, int64_t i, float* z, bool grads, float invSumW,
                          int32_t* maskedOut) {
  const int64_t N = in.N;
  const int32_t p = in.pos[i];
  const float sPos = z[p];
  float thr = in.absThreshold;
  if (in.margin != kInf && !std::isnan(in.margin)) thr = std::min(thr, sPos - in.margin);
  const bool fnOn = thr < kInf;  // false for +inf and NaN
  int32_t rk[2] = {0, 0};
  const int32_t* ck[2] = {nullptr, nullptr};
  int nk = 0;
  for (int k = 0; k < in.nmasks; ++k) {
    if (in.rowKey[k][i] >= 0) {
      rk[nk] = in.rowKey[k][i];
      ck[nk] = in.colKey[k];
      ++nk;
    }
  }
  const float scale = in.scale;
  const float* bias = in.colBias;
  const bool wide = simd_wide();  // 16-lane passes with the same results as the 8-lane ones
  (void)wide;
  const float zPos = scale * sPos + (bias ? bias[p] : 0.f);
  int32_t masked = 0;
  float mx = -kInf;
  int64_t j = 0;
#if TL_AVX2
  {
    const __m256 vs = _mm256_set1_ps(scale), vthr = _mm256_set1_ps(thr), ninf = _mm256_set1_ps(-kInf);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), vpos = _mm256_set1_epi32(p);
    const __m256i vk0 = _mm256_set1_epi32(nk > 0 ? rk[0] : 0), vk1 = _mm256_set1_epi32(nk > 1 ? rk[1] : 0);
    __m256 vmx = ninf;
#if TL_AVX512
    if (wide) {
      // 16 lanes: the same elementwise operations (so the same values), the max is order-free.
      const __m512 ws = _mm512_set1_ps(scale), wthr = _mm512_set1_ps(thr), wninf = _mm512_set1_ps(-kInf);
      const __m512i wk0 = _mm512_set1_epi32(nk > 0 ? rk[0] : 0), wk1 = _mm512_set1_epi32(nk > 1 ? rk[1] : 0);
      __m512 wmx = wninf;
      for (; j + 16 <= N; j += 16) {
        const __m512 sv = _mm512_loadu_ps(z + j);
        __m512 v = bias ? _mm512_fmadd_ps(sv, ws, _mm512_loadu_ps(bias + j)) : _mm512_mul_ps(sv, ws);
        __mmask16 m = 0;
        if (nk > 0) m = _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(ck[0] + j), wk0);
        if (nk > 1) m |= _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(ck[1] + j), wk1);
        if (fnOn) m |= _mm512_cmp_ps_mask(sv, wthr, _CMP_GT_OQ);
        if (m) {
          if (p >= j && p < j + 16) m &= __mmask16(~(1u << (p - j)));
          masked += __builtin_popcount(unsigned(m));
          v = _mm512_mask_mov_ps(v, m, wninf);
        }
        _mm512_storeu_ps(z + j, v);
        wmx = _mm512_max_ps(wmx, v);
      }
      vmx = _mm256_max_ps(_mm512_castps512_ps256(wmx), _mm512_extractf32x8_ps(wmx, 1));
    }
#endif
    for (; j + 8 <= N; j += 8) {
      const __m256 s = _mm256_loadu_ps(z + j);
      __m256 v = bias ? _mm256_fmadd_ps(s, vs, _mm256_loadu_ps(bias + j)) : _mm256_mul_ps(s, vs);
      __m256i m = _mm256_setzero_si256();
      if (nk > 0) m = _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i*)(ck[0] + j)), vk0);
      if (nk > 1) m = _mm256_or_si256(m, _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i*)(ck[1] + j)), vk1));
      if (fnOn) m = _mm256_or_si256(m, _mm256_castps_si256(_mm256_cmp_ps(s, vthr, _CMP_GT_OQ)));
      if (!_mm256_testz_si256(m, m)) {
        m = _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_add_epi32(iota, _mm256_set1_epi32(int(j))), vpos), m);
        const __m256 mf = _mm256_castsi256_ps(m);
        masked += __builtin_popcount(unsigned(_mm256_movemask_ps(mf)));
        v = _mm256_blendv_ps(v, ninf, mf);
      }
      _mm256_storeu_ps(z + j, v);
      vmx = _mm256_max_ps(vmx, v);
    }
    mx = hmax(vmx);
  }
#endif
  for (; j < N; ++j) {
    const float s = z[j];
    float v = scale * s + (bias ? bias[j] : 0.f);
    bool m = false;
    for (int k = 0; k < nk; ++k) m |= ck[k][j] == rk[k];
    if (fnOn) m |= s > thr;
    if (m && j != p) {
      ++masked;
      v = -kInf;
    }
    z[j] = v;
    mx = std::max(mx, v);
  }
  z[p] = zPos;  // the positive is never masked (recomputed so its value is exactly zPos)
  mx = std::max(mx, zPos);

  float sum = 0.f;
  j = 0;
#if TL_AVX2
  {
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
#if TL_AVX512
    if (wide) {
      // exp512 gives exp256's values lane by lane; the two halves go into the 8-lane sum in the AVX2 order.
      const __m512 wmx = _mm512_set1_ps(mx);
      for (; j + 16 <= N; j += 16) {
        const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(z + j), wmx));
        _mm512_storeu_ps(z + j, e);
        acc = _mm256_add_ps(acc, _mm512_castps512_ps256(e));
        acc = _mm256_add_ps(acc, _mm512_extractf32x8_ps(e, 1));
      }
    }
#endif
    for (; j + 8 <= N; j += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j), vmx));
      _mm256_storeu_ps(z + j, e);
      acc = _mm256_add_ps(acc, e);
    }
    sum = hsum(acc);
  }
#endif
  for (; j < N; ++j) {
    const float e = std::exp(z[j] - mx);
    z[j] = e;
    sum += e;
  }
  const double w = in.rowWeight ? double(in.rowWeight[i]) : 1.0;
  const double loss = double(mx) + std::log(double(sum)) - double(zPos);
  if (maskedOut) *maskedOut = masked;
  if (grads) {
    const float coef = float(double(scale) * w * double(invSumW));
    const float f = float(double(coef) / double(sum));
    j = 0;
#if TL_AVX2
#if TL_AVX512
    if (wide) {
      const __m512 wf = _mm512_set1_ps(f);
      for (; j + 16 <= N; j += 16) _mm512_storeu_ps(z + j, _mm512_mul_ps(_mm512_loadu_ps(z + j), wf));
    }
#endif
    const __m256 vf = _mm256_set1_ps(f);
    for (; j + 8 <= N; j += 8) _mm256_storeu_ps(z + j, _mm256_mul_ps(_mm256_loadu_ps(z + j), vf));
#endif
    for (; j < N; ++j) z[j] *= f;
    z[p] -= coef;
  }
  return w * loss;
}

// One chunk: its tiles in order; the dc partial is overwritten by the first tile, accumulated by the rest.
void run_chunk(Job& job, int64_t chunk) {
  const ContrastiveIn& in = *job.in;
  const int64_t N = in.N, d = in.d, T = job.T, ldS = job.ldS;
  const bool grads = in.dq || in.dc;
  thread_local Scratch sbuf, aqbuf, agbuf, bqbuf, dcbuf;
  float* S = sbuf.floats(size_t(T * ldS));
  float* Aq = aqbuf.floats(size_t(packed_a_size(T, d)));
  float* Ag = agbuf.floats(size_t(std::max(packed_a_size(T, std::min(N, KC)), packed_a_size(MC, T))));
  float* Bq = in.dc ? bqbuf.floats(size_t(packed_b_size(T, d))) : nullptr;
  float* dcp = nullptr;  // this chunk's dc partial (see Job)
  if (in.dc) {
    if (chunk == 0)
      dcp = in.dc;
    else if (job.folded.load(std::memory_order_acquire) == chunk)
      dcp = dcbuf.floats(size_t(N * d));  // folded as soon as it is finished: nothing else can be pending
    else
      dcp = job.dcSlots + (chunk - 1) * N * d;
  }
  double loss = 0.0;
  const int64_t tile0 = chunk * job.tilesPerChunk;
  for (int64_t tile = tile0; tile < tile0 + job.tilesPerChunk; ++tile) {
    const int64_t r0 = tile * T;
    if (r0 >= in.B) break;
    const int64_t rows = std::min(T, in.B - r0);
    const float* q = in.q + r0 * d;
    // Logits tile: S = q_tile c^T (raw similarities).
    pack_a(rows, d, q, d, 1, Aq);
    macro_kernel(rows, N, d, Aq, job.cBt, d * NR, S, ldS, 1.f, 0.f, {});
    for (int64_t t = 0; t < rows; ++t)
      loss += softmax_row(in, r0 + t, S + t * ldS, grads, job.invSumW,
                          in.maskedCount ? in.maskedCount + r0 + t : nullptr);
    if (!grads) continue;
    if (in.dq) {  // dq_tile = G c, accumulated over candidate chunks
      for (int64_t k0 = 0; k0 < N; k0 += KC) {
        const int64_t kc = std::min(KC, N - k0);
        pack_a(rows, kc, S + k0, ldS, 1, Ag);
        macro_kernel(rows, d, kc, Ag, job.cB + k0 * NR, N * NR, in.dq + r0 * d, d, 1.f, k0 == 0 ? 0.f : 1.f, {});
      }
      if (N == 0) std::memset(in.dq + r0 * d, 0, size_t(rows * d) * sizeof(float));
    }
    if (dcp) {  // dc_partial (=|+=) G^T q_tile, over candidate blocks
      pack_b(rows, d, q, d, 1, Bq);
      for (int64_t k0 = 0; k0 < N; k0 += MC) {
        const int64_t mc = std::min(MC, N - k0);
        pack_a(mc, rows, S + k0, 1, ldS, Ag);
        macro_kernel(mc, d, rows, Ag, Bq, rows * NR, dcp + k0 * d, d, 1.f, tile == tile0 ? 0.f : 1.f, {});
      }
    }
  }
  job.loss[chunk] = loss;
  if (dcp) {
    job.dcSrc[chunk] = dcp;
    job.done[chunk].store(true, std::memory_order_seq_cst);
    try_fold(job);
  }
}

void worker(void* ctx, int tid) {
  Job& job = *static_cast<Job*>(ctx);
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.nchunks) return;
    run_chunk(job, c);
    count_task(tid);
  }
}

}  // namespace

double contrastive(const ContrastiveIn& in) {
  const int64_t B = in.B, N = in.N, d = in.d;
  double sumW = double(B);
  if (in.rowWeight) {
    sumW = 0.0;
    for (int64_t i = 0; i < B; ++i) sumW += in.rowWeight[i];
  }
  if (B == 0 || sumW == 0.0) {
    // Nothing to learn from: zero loss and gradients, but still report the masks.
    if (in.dq) std::memset(in.dq, 0, size_t(B * d) * sizeof(float));
    if (in.dc) std::memset(in.dc, 0, size_t(N * d) * sizeof(float));
    if (B == 0 || !in.maskedCount) return 0.0;
  }
  const bool grads = sumW != 0.0 && (in.dq || in.dc);
  ContrastiveIn run_in = in;
  if (!grads) run_in.dq = run_in.dc = nullptr;

  thread_local Scratch cbt, cb;
  float* cBt = cbt.floats(size_t(packed_b_size(d, N)));
  pack_b(d, N, in.c, 1, d, cBt);
  float* cB = nullptr;
  if (run_in.dq) {
    cB = cb.floats(size_t(packed_b_size(N, d)));
    pack_b(N, d, in.c, d, 1, cB);
  }
  Job job;
  job.in = &run_in;
  job.invSumW = sumW != 0.0 ? float(1.0 / sumW) : 0.f;
  job.cBt = cBt;
  job.cB = cB;
  // Tiles and chunks depend on the problem size only; threads just pick up chunks (see pool.h).
  const double flops = 6.0 * double(B) * double(N) * double(std::max<int64_t>(d, 1));
  const bool parallel = flops >= 1.0e6;  // as for GEMM: below ~15 us of work a dispatch does not pay
  job.T = tile_rows(B, N, parallel);
  // Row stride of the logits tile: a 4 KiB-multiple stride would map all rows of a micro-tile to the
  // same L1 sets.
  job.ldS = (N + 15) / 16 * 16;
  if (job.ldS % 1024 == 0) job.ldS += 16;
  const int64_t tiles = (B + job.T - 1) / job.T;
  const int64_t chunksWanted = parallel ? max_chunks(B) : 1;
  job.tilesPerChunk = (tiles + chunksWanted - 1) / chunksWanted;
  job.nchunks = (tiles + job.tilesPerChunk - 1) / job.tilesPerChunk;
  thread_local Scratch dcslots;
  job.dcSlots = run_in.dc ? dcslots.floats(size_t((job.nchunks - 1) * N * d)) : nullptr;

  const int nt = int(std::min<int64_t>(std::min(threads(), kMaxThreads), job.nchunks));
  run(&worker, &job, parallel ? nt : 1);
  if (run_in.dc) try_fold(job);  // every chunk is done: normally a no-op, all were folded in the job

  double loss = 0.0;
  for (int64_t c = 0; c < job.nchunks; ++c) loss += job.loss[c];
  return sumW != 0.0 ? loss / sumW : 0.0;
}

}  // namespace tl
