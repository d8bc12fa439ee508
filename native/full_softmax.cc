#include "full_softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gemm.h"
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
  pack_a(rows, d, q, d, 1, Aq);
  std::fill(ms, ms + rows, -kInf);
  std::fill(sums, sums + rows, 0.f);
  std::memset(O, 0, size_t(rows * d) * sizeof(float));
  for (int64_t j0 = 0; j0 < N; j0 += kItemTile1) {
    const int64_t nt = std::min(kItemTile1, N - j0);
    const float* e = in.e + j0 * d;
    pack_b(d, nt, e, 1, d, Bet);  // e_tile^T: element (p, j) = e[j*d + p]
    macro_kernel(rows, nt, d, Aq, Bet, d * NR, S, ldS, 1.f, 0.f, {});
    for (int64_t t = 0; t < rows; ++t) {
      const float a = online_row(S + t * ldS, nt, in.scale, ms[t], sums[t]);
      if (a != 1.f) {
        float* o = O + t * d;
        for (int64_t k = 0; k < d; ++k) o[k] *= a;
      }
    }
    if (in.dq) {  // O += exp(z - m) e_tile
      pack_a(rows, nt, S, ldS, 1, Ag);
      pack_b(nt, d, e, d, 1, Be);
      macro_kernel(rows, d, nt, Ag, Be, nt * NR, O, d, 1.f, 1.f, {});
    }
  }
  double loss = 0.0;
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t i = r0 + t;
    const int32_t tg = in.target[i];
    const float* et = in.e + int64_t(tg) * d;
    const double zt = double(in.scale) * double(dot(in.q + i * d, et, d));
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
  float* Ae = ae.floats(size_t(packed_a_size(kItemTile2, d)));
  float* S = sb.floats(size_t(kItemTile2 * ldS));
  float* Ag = ag.floats(size_t(packed_a_size(kItemTile2, kRowTile2)));
  pack_a(nt, d, in.e + j0 * d, d, 1, Ae);
  const float scale = in.scale;
  for (int64_t r0 = 0; r0 < R; r0 += kRowTile2) {
    const int64_t rows = std::min(kRowTile2, R - r0);
    // S = e_tile q_rows^T: transposed logits (items x rows).
    macro_kernel(nt, rows, d, Ae, cx.qT + (r0 / NR) * d * NR, d * NR, S, ldS, 1.f, 0.f, {});
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
    pack_a(nt, rows, S, ldS, 1, Ag);
    macro_kernel(nt, d, rows, Ag, cx.qB + r0 * NR, R * NR, in.de + j0 * d, d, 1.f, 1.f, {});
  }
}

}  // namespace

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

  if (in.de) {
    float* qT = qtb.floats(size_t(packed_b_size(d, R)));
    pack_b(d, R, in.q, 1, d, qT);
    float* qB = qbb.floats(size_t(packed_b_size(R, d)));
    pack_b(R, d, in.q, d, 1, qB);
    cx.qT = qT;
    cx.qB = qB;
    const int64_t nItemTiles = (N + kItemTile2 - 1) / kItemTile2;
    const double flopsItemTile = 4.0 * double(kItemTile2) * double(R) * double(std::max<int64_t>(d, 1));
    parallel_chunks(nItemTiles, flopsItemTile, [&](int64_t tile, int) { pass2_tile(cx, tile); });
  }
  double loss = 0.0;
  for (double l : tileLoss) loss += l;
  return loss / sumW;
}

}  // namespace tl
