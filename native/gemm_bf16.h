// bf16 products with float32 accumulation, for the full-catalogue softmax's opt-in "bf16" precision.
// Operands are rounded to bfloat16 (round to nearest even: 8 significant bits) when packed; every product of two
// bf16 values is exact in float32, and the sums are float32, so the only loss against the float32 kernel is the
// rounding of the inputs (relative 2^-9 per value). Where the CPU has AVX512-BF16 (vdpbf16ps, e.g. AMD Zen 4,
// Intel Sapphire Rapids) a 16-lane instruction does 32 such multiply-adds: twice the float32 FMA rate. Elsewhere
// a portable kernel computes the same products from the same packed values with float32 FMAs (same values up to
// the order of the two additions inside a pair), so a model trains the same way on any CPU, only slower.
//
// Packed layouts (uint16_t, depth k taken in pairs, an odd depth padded with a zero):
//   A: ceil(mc/MRB) panels; panel r, pair p holds rows r*MRB .. r*MRB+MRB-1 as (A[i][2p], A[i][2p+1]).
//   B: ceil(nc/NRB) panels; panel q, pair p holds columns q*NRB .. q*NRB+NRB-1 as (B[2p][j], B[2p+1][j]).
// So a depth offset of 2t inside a packed operand is t pairs: A panel + t*2*MRB, B panel + t*2*NRB.
#pragma once
#include <cstdint>
#include <cstring>

namespace tl {

constexpr int MRB = 8;    // rows per A panel (one broadcast each)
constexpr int NRB = 16;   // columns per B panel (one 16-lane accumulator each)

inline int64_t bf16_pairs(int64_t k) { return (k + 1) / 2; }
// Sizes in uint16_t elements.
inline int64_t packed_a_bf16_size(int64_t mc, int64_t kc) { return (mc + MRB - 1) / MRB * MRB * 2 * bf16_pairs(kc); }
inline int64_t packed_b_bf16_size(int64_t kc, int64_t nc) { return (nc + NRB - 1) / NRB * NRB * 2 * bf16_pairs(kc); }
// Stride between A panels / B panels of an operand packed with depth kc.
inline int64_t a_bf16_panel_stride(int64_t kc) { return int64_t(MRB) * 2 * bf16_pairs(kc); }
inline int64_t b_bf16_panel_stride(int64_t kc) { return int64_t(NRB) * 2 * bf16_pairs(kc); }

// Element (i, p) of the source is src[i*rs + p*cs] (A: mc x kc) / element (p, j) is src[p*rs + j*cs] (B: kc x nc).
void pack_a_bf16(int64_t mc, int64_t kc, const float* src, int64_t rs, int64_t cs, uint16_t* dst);
void pack_b_bf16(int64_t kc, int64_t nc, const float* src, int64_t rs, int64_t cs, uint16_t* dst);

// C[mc x nc] (leading dimension ldc) = alpha * Ap * Bp + beta * C (beta == 0 never reads C). Ap is packed with
// depth kc (panel stride a_bf16_panel_stride(kc)); B panel q starts at Bp + q * b_panel_stride.
void macro_kernel_bf16(int64_t mc, int64_t nc, int64_t kc, const uint16_t* Ap, const uint16_t* Bp,
                       int64_t b_panel_stride, float* C, int64_t ldc, float alpha, float beta);

// float32 -> bf16, round to nearest even; zero and subnormal inputs give a signed zero (as vcvtneps2bf16); NaN
// stays a (quiet) NaN. bf16 -> float32 exactly. Inline so that loops over arrays vectorise.
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) return uint16_t((u >> 16) & 0x8000u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);  // an overflow rounds to infinity
  return uint16_t(u >> 16);
}

inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// "avx512-bf16" when vdpbf16ps runs the products, else "emulated". set_bf16_native(false) forces the portable
// kernel (tests compare the two); returns whether the instruction is used now.
const char* bf16_kernel();
bool set_bf16_native(bool on);

}  // namespace tl
