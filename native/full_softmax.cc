#include "full_softmax.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"
#include "gemm_bf16.h"
#include "pool.h"
#include "scratch.h"
#include "simd.h"

namespace tl {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Items per pass-1 tile: the logits tile (T1 x 256 floats) stays in L2, and its depth is one KC block of the
// P e product.
constexpr int64_t kItemTile1 = KC;
// Items per pass-2 tile (a multiple of MR) and rows per pass-2 row tile (a multiple of NR, so a row tile
// starts on a panel of the pre-packed q^T).
constexpr int64_t kItemTile2 = 192;
constexpr int64_t kRowTile2 = 256;

// Rows per pass-1 tile: large tiles read the item table fewer times; at least ~8 tiles once R allows, so two
// threads have work to share. Depends on R only.
int64_t row_tile1(int64_t R) {
  int64_t t = (R + 7) / 8;
  t = (t + MR - 1) / MR * MR;
  return std::max<int64_t>(48, std::min<int64_t>(192, t));
}

inline int64_t padded_ld(int64_t n) {
  int64_t ld = (n + 15) / 16 * 16;
  if (ld % 1024 == 0) ld += 16;
  return ld;
}

// One row of a pass-1 tile: z = scale*s; folds the tile into the running max m and sum-exp, leaves
// exp(z - m_new) in s, and returns the factor exp(m_old - m_new) the row's earlier accumulations need.
inline float online_row(float* s, int64_t n, float scale, float& m, float& sum) {
  float mt = -kInf;
  int64_t j = 0;
#if TL_AVX2
  {
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 vm = _mm256_set1_ps(-kInf);
    for (; j + 8 <= n; j += 8) {
      const __m256 z = _mm256_mul_ps(_mm256_loadu_ps(s + j), vs);
      _mm256_storeu_ps(s + j, z);
      vm = _mm256_max_ps(vm, z);
    }
    mt = hmax(vm);
  }
#endif
  for (; j < n; ++j) {
    s[j] *= scale;
    mt = std::max(mt, s[j]);
  }
  const float mNew = std::max(m, mt);
  const float alpha = m == -kInf ? 0.f : std::exp(m - mNew);
  float acc = 0.f;
  j = 0;
#if TL_AVX2
  {
    const __m256 vm = _mm256_set1_ps(mNew);
    __m256 va = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
      const __m256 x = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
      _mm256_storeu_ps(s + j, x);
      va = _mm256_add_ps(va, x);
    }
    acc = hsum(va);
  }
#endif
  for (; j < n; ++j) {
    const float x = std::exp(s[j] - mNew);
    s[j] = x;
    acc += x;
  }
  sum = sum * alpha + acc;
  m = mNew;
  return alpha;
}

struct Ctx {
  const FullSoftmaxIn* in;
  float invSumW;
  int64_t T1, nRowTiles1;
  float* lse;         // R
  float* coef;        // R: scale * w_i / sum w
  const float* qT;    // q packed as B of e q^T (depth d, R columns)
  const float* qB;    // q packed as B of P^T q (depth R, d columns)
  const uint16_t* qT16 = nullptr;  // bf16: the same two packings
  const uint16_t* qB16 = nullptr;
  double* tileLoss;   // per pass-1 row tile
};

void pass1_tile(const Ctx& cx, int64_t tile) {
  const FullSoftmaxIn& in = *cx.in;
  const int64_t N = in.N, d = in.d, r0 = tile * cx.T1, rows = std::min(cx.T1, in.R - r0);
  const int64_t ldS = padded_ld(kItemTile1);
  thread_local Scratch aq, bet, be, sb, ag, ob, mb;
  float* Aq = aq.floats(size_t(packed_a_size(cx.T1, d)));
  float* Bet = bet.floats(size_t(packed_b_size(d, kItemTile1)));
  float* Be = be.floats(size_t(packed_b_size(kItemTile1, d)));
  float* S = sb.floats(size_t(cx.T1 * ldS));
  float* Ag = ag.floats(size_t(packed_a_size(cx.T1, kItemTile1)));
  float* O = ob.floats(size_t(cx.T1 * std::max<int64_t>(d, 1)));
  float* ms = mb.floats(size_t(2 * cx.T1));
  float* sums = ms + cx.T1;
  const float* q = in.q + r0 * d;
  // bf16: the same products on the bf16 tile (the scratch buffers hold the packed halves).
  const bool h = in.bf16;
  uint16_t* Aq16 = h ? reinterpret_cast<uint16_t*>(aq.floats(size_t(packed_a_bf16_size(cx.T1, d) + 1) / 2)) : nullptr;
  uint16_t* Bet16 = h ? reinterpret_cast<uint16_t*>(bet.floats(size_t(packed_b_bf16_size(d, kItemTile1) + 1) / 2)) : nullptr;
  uint16_t* Be16 = h ? reinterpret_cast<uint16_t*>(be.floats(size_t(packed_b_bf16_size(kItemTile1, d) + 1) / 2)) : nullptr;
  uint16_t* Ag16 = h ? reinterpret_cast<uint16_t*>(ag.floats(size_t(packed_a_bf16_size(cx.T1, kItemTile1) + 1) / 2)) : nullptr;
  if (h) pack_a_bf16(rows, d, q, d, 1, Aq16);
  else pack_a(rows, d, q, d, 1, Aq);
  std::fill(ms, ms + rows, -kInf);
  std::fill(sums, sums + rows, 0.f);
  std::memset(O, 0, size_t(rows * d) * sizeof(float));
  for (int64_t j0 = 0; j0 < N; j0 += kItemTile1) {
    const int64_t nt = std::min(kItemTile1, N - j0);
    const float* e = in.e + j0 * d;
    if (h) {
      pack_b_bf16(d, nt, e, 1, d, Bet16);
      macro_kernel_bf16(rows, nt, d, Aq16, Bet16, b_bf16_panel_stride(d), S, ldS, 1.f, 0.f);
    } else {
      pack_b(d, nt, e, 1, d, Bet);  // e_tile^T: element (p, j) = e[j*d + p]
      macro_kernel_wide(rows, nt, d, Aq, Bet, d * NR, S, ldS, 1.f, 0.f);
    }
    for (int64_t t = 0; t < rows; ++t) {
      const float a = online_row(S + t * ldS, nt, in.scale, ms[t], sums[t]);
      if (a != 1.f) {
        float* o = O + t * d;
        for (int64_t k = 0; k < d; ++k) o[k] *= a;
      }
    }
    if (in.dq && h) {  // O += exp(z - m) e_tile
      pack_a_bf16(rows, nt, S, ldS, 1, Ag16);
      pack_b_bf16(nt, d, e, d, 1, Be16);
      macro_kernel_bf16(rows, d, nt, Ag16, Be16, b_bf16_panel_stride(nt), O, d, 1.f, 1.f);
    } else if (in.dq) {
      pack_a(rows, nt, S, ldS, 1, Ag);
      pack_b(nt, d, e, d, 1, Be);
      macro_kernel_wide(rows, d, nt, Ag, Be, nt * NR, O, d, 1.f, 1.f);
    }
  }
  double loss = 0.0;
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t i = r0 + t;
    const int32_t tg = in.target[i];
    const float* et = in.e + int64_t(tg) * d;
    double zt;
    if (h) {  // the target's logit from the same rounded operands as the products
      float acc = 0.f;
      for (int64_t k = 0; k < d; ++k) acc += from_bf16(to_bf16(in.q[i * d + k])) * from_bf16(to_bf16(et[k]));
      zt = double(in.scale) * double(acc);
    } else {
      zt = double(in.scale) * double(dot(in.q + i * d, et, d));
    }
    const double lse = double(ms[t]) + std::log(double(sums[t]));
    const double li = lse - zt;
    const double w = in.rowWeight ? double(in.rowWeight[i]) : 1.0;
    loss += w * li;
    if (in.rowLoss) in.rowLoss[i] = float(li);
    cx.lse[i] = float(lse);
    if (in.dq) {
      const float c = cx.coef[i], f = float(double(c) / double(sums[t]));
      float* g = in.dq + i * d;
      const float* o = O + t * d;
      if (h)
        for (int64_t k = 0; k < d; ++k) g[k] = f * o[k] - c * from_bf16(to_bf16(et[k]));
      else
        for (int64_t k = 0; k < d; ++k) g[k] = f * o[k] - c * et[k];
    }
  }
  cx.tileLoss[tile] = loss;
}

void pass2_tile(const Ctx& cx, int64_t tile) {
  const FullSoftmaxIn& in = *cx.in;
  const int64_t R = in.R, d = in.d, j0 = tile * kItemTile2, nt = std::min(kItemTile2, in.N - j0);
  const int64_t ldS = padded_ld(kRowTile2);
  thread_local Scratch ae, sb, ag;
  const bool h = in.bf16;
  float* Ae = h ? nullptr : ae.floats(size_t(packed_a_size(kItemTile2, d)));
  float* S = sb.floats(size_t(kItemTile2 * ldS));
  float* Ag = h ? nullptr : ag.floats(size_t(packed_a_size(kItemTile2, kRowTile2)));
  uint16_t* Ae16 = h ? reinterpret_cast<uint16_t*>(ae.floats(size_t(packed_a_bf16_size(kItemTile2, d) + 1) / 2)) : nullptr;
  uint16_t* Ag16 = h ? reinterpret_cast<uint16_t*>(ag.floats(size_t(packed_a_bf16_size(kItemTile2, kRowTile2) + 1) / 2)) : nullptr;
  if (h) pack_a_bf16(nt, d, in.e + j0 * d, d, 1, Ae16);
  else pack_a(nt, d, in.e + j0 * d, d, 1, Ae);
  const float scale = in.scale;
  for (int64_t r0 = 0; r0 < R; r0 += kRowTile2) {
    const int64_t rows = std::min(kRowTile2, R - r0);
    // S = e_tile q_rows^T: transposed logits (items x rows).
    if (h) macro_kernel_bf16(nt, rows, d, Ae16, cx.qT16 + (r0 / NRB) * b_bf16_panel_stride(d), b_bf16_panel_stride(d), S, ldS, 1.f, 0.f);
    else macro_kernel_wide(nt, rows, d, Ae, cx.qT + (r0 / NR) * d * NR, d * NR, S, ldS, 1.f, 0.f);
    const float* lse = cx.lse + r0;
    const float* coef = cx.coef + r0;
    for (int64_t a = 0; a < nt; ++a) {
      float* s = S + a * ldS;
      int64_t i = 0;
#if TL_AVX2
      const __m256 vs = _mm256_set1_ps(scale);
      for (; i + 8 <= rows; i += 8) {
        const __m256 z = _mm256_fmsub_ps(_mm256_loadu_ps(s + i), vs, _mm256_loadu_ps(lse + i));
        _mm256_storeu_ps(s + i, _mm256_mul_ps(exp256(z), _mm256_loadu_ps(coef + i)));
      }
#endif
      for (; i < rows; ++i) s[i] = std::exp(s[i] * scale - lse[i]) * coef[i];
    }
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t a = int64_t(in.target[r0 + i]) - j0;
      if (a >= 0 && a < nt) S[a * ldS + i] -= coef[i];
    }
    // de_tile += G^T_tile q_rows (depth = rows <= KC).
    if (h) {
      pack_a_bf16(nt, rows, S, ldS, 1, Ag16);
      macro_kernel_bf16(nt, d, rows, Ag16, cx.qB16 + r0 * NRB, b_bf16_panel_stride(R), in.de + j0 * d, d, 1.f, 1.f);
    } else {
      pack_a(nt, rows, S, ldS, 1, Ag);
      macro_kernel_wide(nt, d, rows, Ag, cx.qB + r0 * NR, R * NR, in.de + j0 * d, d, 1.f, 1.f);
    }
  }
}

// ---- Stored-tile path (catalogues up to a few tens of thousands of items) ----
// For a tile of T rows, the T x N logits of the tile are kept (T is chosen so the tile fits kStoreBytes), so
// each logit is computed once and each exp once: three products per row tile instead of pass 1 + pass 2's four.
//   A (parallel over item chunks): S = q_T e_chunk^T; per row and chunk the max m_c and sum-exp s_c, S <- exp(z - m_c).
//   combine (caller, row order): lse = log-sum-exp over chunks in chunk order; f_c = coef exp(m_c - lse).
//   B (parallel over item chunks): S <- f_c S - coef 1[target] = G;  de_chunk += G_chunk^T q_T (each item chunk is
//      one piece, row tiles run in order, so de is summed in the same order whatever the threads).
//   C (parallel over 12-row pieces): dq_rows = G_rows e (depth blocks of KC in order).
// Every piece boundary depends on R, N, d only, so results are bit-identical for any thread count.
// Budget of the stored tile; TOWERLAB_FULL_SOFTMAX_STORE_MIB overrides it (0 = always recompute), read per call
// so tests can exercise both paths in one process.
constexpr int64_t kStoreBytesDefault = int64_t(8) << 20;
int64_t store_bytes() {
  const char* s = std::getenv("TOWERLAB_FULL_SOFTMAX_STORE_MIB");
  if (!s || !*s) return kStoreBytesDefault;
  return int64_t(std::strtod(s, nullptr) * double(1 << 20));
}
constexpr int64_t kChunkS = 256;   // items per chunk (multiple of 2 NR)
constexpr int64_t kMinRowsS = 48;  // below this many rows per tile the stored path is not worth it
constexpr int64_t kMaxRowsS = 192;
constexpr int64_t kRowPieceS = 2 * MR;

// Rows per tile of the stored path, or 0 when the catalogue is too large for it. Depends on R, N only.
int64_t stored_rows(int64_t R, int64_t N) {
  const int64_t cap = std::min(kMaxRowsS, store_bytes() / (padded_ld(N) * int64_t(sizeof(float))) / kRowPieceS * kRowPieceS);
  if (cap < kMinRowsS) return 0;
  const int64_t tiles = (R + cap - 1) / cap;
  const int64_t t = (R + tiles - 1) / tiles;
  return (t + kRowPieceS - 1) / kRowPieceS * kRowPieceS;
}

// Max of scale*z over n values, then s <- exp(scale*z - max); returns the sum through `sum`. Fast: the cheaper
// exp (simd.h) where the values are rounded to bf16 afterwards.
template <bool Fast = false>
inline float chunk_exp(float* s, int64_t n, float scale, float& sum) {
  float m = -kInf;
  int64_t j = 0;
#if TL_AVX512
  {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vm = _mm512_set1_ps(-kInf);
    for (; j + 16 <= n; j += 16) vm = _mm512_max_ps(vm, _mm512_mul_ps(_mm512_loadu_ps(s + j), vs));
    m = _mm512_reduce_max_ps(vm);
  }
#endif
  for (; j < n; ++j) m = std::max(m, s[j] * scale);
  float acc = 0.f;
  j = 0;
#if TL_AVX512
  {
    const __m512 vs = _mm512_set1_ps(scale), vm = _mm512_set1_ps(m);
    __m512 va = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
      const __m512 z = _mm512_fmsub_ps(_mm512_loadu_ps(s + j), vs, vm);
      const __m512 x = Fast ? exp512_fast(z) : exp512(z);
      _mm512_storeu_ps(s + j, x);
      va = _mm512_add_ps(va, x);
    }
    acc = _mm512_reduce_add_ps(va);
  }
#elif TL_AVX2
  {
    const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(m);
    __m256 va = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
      const __m256 x = exp256(_mm256_fmsub_ps(_mm256_loadu_ps(s + j), vs, vm));
      _mm256_storeu_ps(s + j, x);
      va = _mm256_add_ps(va, x);
    }
    acc = hsum(va);
  }
#endif
  for (; j < n; ++j) {
    const float x = std::exp(s[j] * scale - m);
    s[j] = x;
    acc += x;
  }
  sum = acc;
  return m;
}

// Chunks per piece of phase B: a piece owns its item chunks' rows of de and one partial of dq (summed over its
// chunks in order), so the pieces' dq partials are reduced in piece order afterwards. About 8 pieces once the
// catalogue allows, so two threads have work to share; depends on N only.
int64_t chunks_per_piece(int64_t nC) { return std::max<int64_t>(1, std::min<int64_t>(4, nC / 8)); }

// G = f exp(z - m) - coef 1[target] for one row of one chunk: s (exp values) -> g.
inline void g_row(const float* s, float* g, int64_t nt, float f, int64_t a, float coef) {
  int64_t j = 0;
#if TL_AVX512
  const __m512 vf = _mm512_set1_ps(f);
  for (; j + 16 <= nt; j += 16) _mm512_storeu_ps(g + j, _mm512_mul_ps(_mm512_loadu_ps(s + j), vf));
#elif TL_AVX2
  const __m256 vf = _mm256_set1_ps(f);
  for (; j + 8 <= nt; j += 8) _mm256_storeu_ps(g + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), vf));
#endif
  for (; j < nt; ++j) g[j] = s[j] * f;
  if (a >= 0 && a < nt) g[a] = s[a] * f - coef;
}

double full_softmax_stored(const FullSoftmaxIn& in, double sumW, int64_t T) {
  const int64_t R = in.R, N = in.N, d = in.d;
  const int64_t ldN = padded_ld(N);
  const int64_t nC = (N + kChunkS - 1) / kChunkS;
  const int64_t cpp = chunks_per_piece(nC), nPieces = (nC + cpp - 1) / cpp;
  const float scale = in.scale;
  thread_local Scratch sb, eTb, eBb, qAb, qBb, statb, rowb, lossb, dqPb, ztb;
  float* S = sb.floats(size_t(T * ldN));
  float* eT = in.bf16 ? nullptr : eTb.floats(size_t(packed_b_size(d, N)));  // B of q e^T: depth d, N columns
  float* qA = in.bf16 ? nullptr : qAb.floats(size_t(packed_a_size(R, d)));  // A of q e^T
  float* mC = statb.floats(size_t(3 * nC * T));         // per chunk and row: max, sum, then factor
  float* sC = mC + nC * T;
  float* fC = sC + nC * T;
  float* rowv = rowb.floats(size_t(2 * R));
  float* coef = rowv;
  float* lse = rowv + R;
  double* rowL = reinterpret_cast<double*>(lossb.floats(size_t(2 * T)));  // each row's loss l_i (row order sum)
  for (int64_t i = 0; i < R; ++i)
    coef[i] = float(double(scale) * (in.rowWeight ? double(in.rowWeight[i]) : 1.0) / sumW);
  const double packCost = double(kChunkS) * double(d) * 4.0;
  // bf16: every operand packed per item chunk (chunk c at c * its full-chunk size), q per row tile.
  const bool h = in.bf16;
  const int64_t eT16Size = packed_b_bf16_size(d, kChunkS), eB16Size = packed_b_bf16_size(kChunkS, d);
  uint16_t* eT16 = h ? reinterpret_cast<uint16_t*>(eTb.floats(size_t(nC * eT16Size + 1) / 2)) : nullptr;
  uint16_t* qA16 = h ? reinterpret_cast<uint16_t*>(qAb.floats(size_t(packed_a_bf16_size(T, d) + 1) / 2)) : nullptr;
  float* zt = h ? ztb.floats(size_t(T)) : nullptr;  // bf16: each row's target logit, taken from S
  parallel_chunks(nC, packCost, [&](int64_t c, int) {
    const int64_t j0 = c * kChunkS, nt = std::min(kChunkS, N - j0);
    if (h) pack_b_bf16(d, nt, in.e + j0 * d, 1, d, eT16 + c * eT16Size);
    else pack_b(d, nt, in.e + j0 * d, 1, d, eT + j0 * d);
  });
  if (!h) pack_a(R, d, in.q, d, 1, qA);
  float* eB = nullptr;  // B of G e: depth N (items), d columns: panel p holds e[:, 16p .. 16p+15]
  float* qB = nullptr;  // B of G^T q_T: depth = the tile's rows, d columns
  float* dqP = nullptr;  // per piece of phase B: its partial of dq for the tile's rows (T x d)
  uint16_t* eB16 = nullptr;  // bf16: B of G e per item chunk (depth = the chunk's items)
  uint16_t* qB16 = nullptr;  // bf16: B of G^T q_T
  const int64_t dPanels = (d + NR - 1) / NR;
  if (in.dq && h) {
    eB16 = reinterpret_cast<uint16_t*>(eBb.floats(size_t(nC * eB16Size + 1) / 2));
    dqP = dqPb.floats(size_t(nPieces * T * d));
    parallel_chunks(nC, packCost, [&](int64_t c, int) {
      const int64_t j0 = c * kChunkS, nt = std::min(kChunkS, N - j0);
      pack_b_bf16(nt, d, in.e + j0 * d, d, 1, eB16 + c * eB16Size);
    });
  } else if (in.dq) {
    eB = eBb.floats(size_t(packed_b_size(N, d)));
    dqP = dqPb.floats(size_t(nPieces * T * d));
    parallel_chunks(nC, packCost, [&](int64_t c, int) {
      const int64_t j0 = c * kChunkS, nt = std::min(kChunkS, N - j0);
      for (int64_t p = 0; p < dPanels; ++p) {
        float* dst = eB + p * N * NR + j0 * NR;
        const int64_t w = std::min<int64_t>(NR, d - p * NR);
        for (int64_t j = 0; j < nt; ++j) {
          const float* src = in.e + (j0 + j) * d + p * NR;
          float* o = dst + j * NR;
          int64_t k = 0;
          for (; k < w; ++k) o[k] = src[k];
          for (; k < NR; ++k) o[k] = 0.f;
        }
      }
    });
  }
  if (in.de && h) qB16 = reinterpret_cast<uint16_t*>(qBb.floats(size_t(packed_b_bf16_size(T, d) + 1) / 2));
  else if (in.de) qB = qBb.floats(size_t(packed_b_size(T, d)));
  double loss = 0.0;
  const double gemmChunk = 2.0 * double(T) * double(kChunkS) * double(std::max<int64_t>(d, 1));
  for (int64_t r0 = 0; r0 < R; r0 += T) {
    const int64_t rows = std::min(T, R - r0);
    // A: logits and per-chunk exp.
    if (h) pack_a_bf16(rows, d, in.q + r0 * d, d, 1, qA16);
    parallel_chunks(nC, gemmChunk * 1.5, [&](int64_t c, int) {
      const int64_t j0 = c * kChunkS, nt = std::min(kChunkS, N - j0);
      if (h) {
        macro_kernel_bf16(rows, nt, d, qA16, eT16 + c * eT16Size, b_bf16_panel_stride(d), S + j0, ldN, 1.f, 0.f);
        // The loss takes the target's logit from these same products, so it matches the gradient.
        for (int64_t t = 0; t < rows; ++t) {
          const int64_t a = int64_t(in.target[r0 + t]) - j0;
          if (a >= 0 && a < nt) zt[t] = S[t * ldN + j0 + a] * scale;
        }
      } else {
        macro_kernel_wide(rows, nt, d, qA + r0 * d, eT + j0 * d, d * NR, S + j0, ldN, 1.f, 0.f);
      }
      for (int64_t t = 0; t < rows; ++t)
        mC[c * T + t] = h ? chunk_exp<true>(S + t * ldN + j0, nt, scale, sC[c * T + t])
                          : chunk_exp(S + t * ldN + j0, nt, scale, sC[c * T + t]);
    });
    // combine, each row on its own (pieces of rows in parallel): lse over the chunks in chunk order,
    // f_c = coef exp(m_c - lse), the row's loss; the loss is summed in row order below.
    const int64_t nRowPieces = (rows + kRowPieceS - 1) / kRowPieceS;
    parallel_chunks(nRowPieces, double(kRowPieceS) * double(nC) * 60.0, [&](int64_t pc, int) {
      const int64_t t1 = std::min(rows, (pc + 1) * kRowPieceS);
      for (int64_t t = pc * kRowPieceS; t < t1; ++t) {
        const int64_t i = r0 + t;
        float M = -kInf;
        for (int64_t c = 0; c < nC; ++c) M = std::max(M, mC[c * T + t]);
        double sum = 0.0;
        for (int64_t c = 0; c < nC; ++c) sum += double(sC[c * T + t]) * std::exp(double(mC[c * T + t]) - double(M));
        const double l = double(M) + std::log(sum);
        lse[i] = float(l);
        for (int64_t c = 0; c < nC; ++c) fC[c * T + t] = float(double(coef[i]) * std::exp(double(mC[c * T + t]) - l));
        const int32_t tg = in.target[i];
        const double z = h ? double(zt[t]) : double(scale) * double(dot(in.q + i * d, in.e + int64_t(tg) * d, d));
        rowL[t] = l - z;
      }
    });
    for (int64_t t = 0; t < rows; ++t) {
      const int64_t i = r0 + t;
      loss += (in.rowWeight ? double(in.rowWeight[i]) : 1.0) * rowL[t];
      if (in.rowLoss) in.rowLoss[i] = float(rowL[t]);
    }
    if (!in.dq && !in.de) continue;
    // B (parallel over pieces of item chunks): per chunk G = f exp(z - m) - coef 1[target] into a small
    // cache-resident buffer (S itself is only read), then
    //   de_chunk += G_chunk^T q_T   (straight into de's rows; row tiles run in order), and
    //   dqP_piece (+)= G_chunk e_chunk   (the piece's chunks in order; pieces reduced in order after).
    if (in.de && h) pack_b_bf16(rows, d, in.q + r0 * d, d, 1, qB16);
    else if (in.de) pack_b(rows, d, in.q + r0 * d, d, 1, qB);
    parallel_chunks(nPieces, gemmChunk * double(cpp) * 2.0, [&](int64_t pc, int) {
      constexpr int64_t ldG = kChunkS + NR;  // padded so rows of the buffer do not alias in cache
      thread_local Scratch gbb, agb, atb, tdb;
      float* Gb = gbb.floats(size_t(T * ldG));
      float* deT = in.de ? tdb.floats(size_t(kChunkS * d)) : nullptr;  // this chunk's G^T q_T, then added to de
      float* Ag = in.dq && !h ? agb.floats(size_t(packed_a_size(T, kChunkS))) : nullptr;
      float* At = in.de && !h ? atb.floats(size_t(packed_a_size(kChunkS, T))) : nullptr;
      uint16_t* Ag16 = in.dq && h ? reinterpret_cast<uint16_t*>(agb.floats(size_t(packed_a_bf16_size(T, kChunkS) + 1) / 2)) : nullptr;
      uint16_t* At16 = in.de && h ? reinterpret_cast<uint16_t*>(atb.floats(size_t(packed_a_bf16_size(kChunkS, T) + 1) / 2)) : nullptr;
      const int64_t c0 = pc * cpp, c1 = std::min(nC, c0 + cpp);
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t j0 = c * kChunkS, nt = std::min(kChunkS, N - j0);
        for (int64_t t = 0; t < rows; ++t)
          g_row(S + t * ldN + j0, Gb + t * ldG, nt, fC[c * T + t], int64_t(in.target[r0 + t]) - j0, coef[r0 + t]);
        if (in.de) {
          // Into a cache-resident buffer, then one sequential pass over de's rows (the product's own
          // accumulation into de would load de's lines tile by tile, each a cache miss).
          if (h) {
            pack_a_bf16(nt, rows, Gb, 1, ldG, At16);
            macro_kernel_bf16(nt, d, rows, At16, qB16, b_bf16_panel_stride(rows), deT, d, 1.f, 0.f);
          } else {
            pack_a(nt, rows, Gb, 1, ldG, At);
            macro_kernel_wide(nt, d, rows, At, qB, rows * NR, deT, d, 1.f, 0.f);
          }
          float* o = in.de + j0 * d;
          const int64_t len = nt * d;
          int64_t k = 0;
#if TL_AVX512
          for (; k + 16 <= len; k += 16) _mm512_storeu_ps(o + k, _mm512_add_ps(_mm512_loadu_ps(o + k), _mm512_loadu_ps(deT + k)));
#endif
          for (; k < len; ++k) o[k] += deT[k];
        }
        if (in.dq && h) {
          pack_a_bf16(rows, nt, Gb, ldG, 1, Ag16);
          macro_kernel_bf16(rows, d, nt, Ag16, eB16 + c * eB16Size, b_bf16_panel_stride(nt), dqP + pc * T * d, d, 1.f,
                            c == c0 ? 0.f : 1.f);
        } else if (in.dq) {
          pack_a(rows, nt, Gb, ldG, 1, Ag);
          macro_kernel_wide(rows, d, nt, Ag, eB + j0 * NR, N * NR, dqP + pc * T * d, d, 1.f, c == c0 ? 0.f : 1.f);
        }
      }
    });
    if (!in.dq) continue;
    // dq of the tile's rows: the pieces' partials summed in piece order (elementwise, so any split is exact).
    float* out = in.dq + r0 * d;
    parallel_ranges(rows * d, 64, double(nPieces), [&](int64_t b, int64_t e, int) {
      std::memcpy(out + b, dqP + b, size_t(e - b) * sizeof(float));
      for (int64_t p = 1; p < nPieces; ++p) {
        const float* src = dqP + p * T * d;
        int64_t k = b;
#if TL_AVX512
        for (; k + 16 <= e; k += 16) _mm512_storeu_ps(out + k, _mm512_add_ps(_mm512_loadu_ps(out + k), _mm512_loadu_ps(src + k)));
#endif
        for (; k < e; ++k) out[k] += src[k];
      }
    });
  }
  return loss / sumW;
}

}  // namespace

static double full_softmax_recompute(const FullSoftmaxIn& in, double sumW);

double full_softmax(const FullSoftmaxIn& in) {
  const int64_t R = in.R, N = in.N, d = in.d;
  double sumW = double(R);
  if (in.rowWeight) {
    sumW = 0.0;
    for (int64_t i = 0; i < R; ++i) sumW += in.rowWeight[i];
  }
  if (R == 0 || N == 0 || sumW == 0.0) {
    if (in.dq) std::memset(in.dq, 0, size_t(R * d) * sizeof(float));
    if (in.rowLoss) std::fill(in.rowLoss, in.rowLoss + R, 0.f);
    return 0.0;
  }
  if (const int64_t T = stored_rows(R, N)) return full_softmax_stored(in, sumW, T);
  return full_softmax_recompute(in, sumW);
}

static double full_softmax_recompute(const FullSoftmaxIn& in, double sumW) {
  const int64_t R = in.R, N = in.N, d = in.d;
  Ctx cx;
  cx.in = &in;
  cx.invSumW = float(1.0 / sumW);
  cx.T1 = row_tile1(R);
  cx.nRowTiles1 = (R + cx.T1 - 1) / cx.T1;
  thread_local Scratch lseb, qtb, qbb;
  float* lc = lseb.floats(size_t(2 * R));
  cx.lse = lc;
  cx.coef = lc + R;
  for (int64_t i = 0; i < R; ++i)
    cx.coef[i] = float(double(in.scale) * (in.rowWeight ? double(in.rowWeight[i]) : 1.0) / sumW);
  std::vector<double> tileLoss(size_t(cx.nRowTiles1), 0.0);
  cx.tileLoss = tileLoss.data();

  const double flopsRowTile = 4.0 * double(cx.T1) * double(N) * double(std::max<int64_t>(d, 1));
  parallel_chunks(cx.nRowTiles1, flopsRowTile, [&](int64_t tile, int) { pass1_tile(cx, tile); });

  if (in.de && in.bf16) {
    uint16_t* qT16 = reinterpret_cast<uint16_t*>(qtb.floats(size_t(packed_b_bf16_size(d, R) + 1) / 2));
    pack_b_bf16(d, R, in.q, 1, d, qT16);
    uint16_t* qB16 = reinterpret_cast<uint16_t*>(qbb.floats(size_t(packed_b_bf16_size(R, d) + 1) / 2));
    pack_b_bf16(R, d, in.q, d, 1, qB16);
    cx.qT16 = qT16;
    cx.qB16 = qB16;
  } else if (in.de) {
    float* qT = qtb.floats(size_t(packed_b_size(d, R)));
    pack_b(d, R, in.q, 1, d, qT);
    float* qB = qbb.floats(size_t(packed_b_size(R, d)));
    pack_b(R, d, in.q, d, 1, qB);
    cx.qT = qT;
    cx.qB = qB;
  }
  if (in.de) {
    const int64_t nItemTiles = (N + kItemTile2 - 1) / kItemTile2;
    const double flopsItemTile = 4.0 * double(kItemTile2) * double(R) * double(std::max<int64_t>(d, 1));
    parallel_chunks(nItemTiles, flopsItemTile, [&](int64_t tile, int) { pass2_tile(cx, tile); });
  }
  double loss = 0.0;
  for (double l : tileLoss) loss += l;
  return loss / sumW;
}

}  // namespace tl
